#pragma once

// Trust bundles: the root certificates of each trust domain. Several roots per domain at
// once (CA rotation: the old and the new root both trusted), several domains in one set
// (federation). An SVID is only ever checked against the bundle of its own trust domain.
// Thread: immutable once built; share as shared_ptr<const BundleSet>.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/openssl.h"

namespace palisade::common {

class BundleSet {
 public:
  // Adds `root` to the bundle of `trust_domain`; a certificate already there is skipped.
  void add(const std::string& trust_domain, X509Ptr root);

  // Adds every certificate of a PEM text. A root whose URI SAN is a SPIFFE ID
  // ("spiffe://td", as signing certificates SHOULD carry) joins that ID's trust domain;
  // any other root joins `default_trust_domain`, and is an error when there is none.
  Status addPem(std::string_view pem, const std::optional<std::string>& default_trust_domain);
  Status addPemFile(const std::string& path,
                    const std::optional<std::string>& default_trust_domain);

  // The roots of `trust_domain`; nullptr when the set has no bundle for it.
  const std::vector<X509Ptr>* roots(std::string_view trust_domain) const;
  // An OpenSSL store holding those roots, built once when they were added; nullptr when none.
  // OpenSSL allows concurrent verifications against one store.
  X509_STORE* store(std::string_view trust_domain) const;
  std::vector<std::string> trustDomains() const;
  bool empty() const { return bundles_.empty(); }

 private:
  std::map<std::string, std::vector<X509Ptr>, std::less<>> bundles_;
  std::map<std::string, X509StorePtr, std::less<>> stores_;
};

// The trust domain named by a CA certificate's SPIFFE ID URI SAN, if it has one.
std::optional<std::string> trustDomainOfCa(X509* cert);

}  // namespace palisade::common
