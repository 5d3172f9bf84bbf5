// Fuzz target: certificates from the network or a file (PEM, else DER), the SPIFFE ID
// extraction and X509-SVID verification against a fixed bundle. Any input must give an
// identity or an error, never a crash, and an identity must be a valid SPIFFE ID.

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/openssl.h"
#include "common/trust_bundle.h"
#include "common/x509_svid.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace palisade;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<common::X509Ptr> certs;
  if (auto pem = common::parseCertificatesPem(text); pem.ok()) {
    certs = std::move(*pem);
  } else {
    const unsigned char* p = data;
    if (X509* der = d2i_X509(nullptr, &p, static_cast<long>(size))) {
      certs.emplace_back(der);
    }
  }
  ERR_clear_error();
  if (certs.empty()) {
    return 0;
  }
  // The first certificate as its own bundle: a self-signed input can chain to it.
  common::BundleSet bundles;
  std::vector<X509*> intermediates;
  for (std::size_t i = 1; i < certs.size(); ++i) {
    intermediates.push_back(certs[i].get());
  }
  if (auto td = common::trustDomainOfCa(certs.back().get())) {
    bundles.add(*td, common::share(certs.back().get()));
  }
  if (auto id = common::spiffeIdOf(certs.front().get()); id.ok()) {
    if (!policy::SpiffeId::parse(id->uri()).ok()) {
      std::abort();
    }
  }
  common::VerifyOptions at_epoch;
  at_epoch.at = 1800000000;  // a fixed time: the result must not depend on the clock
  auto verified = common::verifySvid(certs.front().get(), intermediates, bundles, at_epoch);
  if (verified.ok() && verified->id.path().empty()) {
    std::abort();  // a leaf SVID always has a path
  }
  common::uriSans(certs.front().get());
  common::dnsSans(certs.front().get());
  common::serialHex(certs.front().get());
  ERR_clear_error();
  return 0;
}
