#include "control-plane/cert_service.h"

#include <openssl/x509v3.h>

#include <algorithm>
#include <set>

#include "common/openssl.h"
#include "common/x509_svid.h"
#include "policy/spiffe_id.h"

namespace palisade::cp {

namespace {

using common::grpc::Status;
using common::grpc::StatusCode;

IssueOutcome refuse(IssueOutcome out, StatusCode code, const char* reason, std::string message) {
  out.status = {code, std::move(message)};
  out.reason = reason;
  return out;
}

// The URI SANs a CSR asks for.
std::vector<std::string> csrUris(X509_REQ* req) {
  std::vector<std::string> out;
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  if (exts == nullptr) {
    return out;
  }
  common::ExtensionStackPtr owned(exts);
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) {
      continue;
    }
    common::GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
    if (names == nullptr) {
      continue;
    }
    for (int j = 0; j < sk_GENERAL_NAME_num(names.get()); ++j) {
      GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), j);
      if (gn->type == GEN_URI) {
        const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
        out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<std::size_t>(ASN1_STRING_length(s)));
      }
    }
  }
  return out;
}

}  // namespace

CertService::CertService(std::shared_ptr<const CertificateAuthority> ca, CertServiceOptions options)
    : ca_(std::move(ca)), options_(std::move(options)) {}

void CertService::setCa(std::shared_ptr<const CertificateAuthority> ca) { ca_ = std::move(ca); }

void CertService::setExtraRoots(std::vector<common::X509Ptr> roots) {
  extra_roots_ = std::move(roots);
}

std::vector<palisade::v1::TrustBundle> CertService::bundles() const {
  palisade::v1::TrustBundle b;
  b.set_trust_domain(ca_->trustDomain());
  std::set<std::string> seen;
  auto add = [&](X509* cert) {
    std::string pem = common::certificatePem(cert);
    if (seen.insert(pem).second) {
      b.add_roots(pem);
    }
  };
  for (const auto& r : ca_->roots()) {
    add(r.get());
  }
  for (const auto& r : extra_roots_) {
    add(r.get());
  }
  return {b};
}

std::string CertService::bundleVersion() const {
  std::string all;
  for (const auto& r : ca_->roots()) {
    auto h = common::certificateSha256(r.get());
    all += common::hex(h.data(), 8);
  }
  for (const auto& r : extra_roots_) {
    auto h = common::certificateSha256(r.get());
    all += common::hex(h.data(), 8);
  }
  return all;
}

IssueOutcome CertService::create(const palisade::v1::CertificateRequest& request,
                                 const common::PeerIdentity& peer, std::time_t now) const {
  if (now == 0) {
    now = std::time(nullptr);
  }
  IssueOutcome out;
  switch (request.attestation_case()) {
    case palisade::v1::CertificateRequest::kJoinToken:
      out.method = "join_token";
      break;
    case palisade::v1::CertificateRequest::kServiceAccountToken:
      out.method = "k8s_psat";
      break;
    default:
      out.method = peer.id != nullptr ? "renewal" : "none";
  }
  // 1. The request itself, checked before a credential is spent (a one-time join token
  // must not be used up by a request that fails anyway).
  auto csr = common::parseCsrPem(request.csr());
  if (!csr.ok()) {
    return refuse(std::move(out), StatusCode::kInvalidArgument, kRefuseBadCsr,
                  "bad CSR: " + csr.error().message);
  }
  // 2. A lifetime that fits inside the CA's.
  std::chrono::seconds ttl = request.validity_duration() > 0
                                 ? std::chrono::seconds(request.validity_duration())
                                 : options_.default_ttl;
  if (ttl < kMinLeafTtl) {
    return refuse(std::move(out), StatusCode::kInvalidArgument, kRefuseBadTtl,
                  "validity_duration must be at least 60 s");
  }
  ttl = std::min(ttl, options_.max_ttl);
  std::time_t ca_end = common::notAfter(ca_->signingCertificate());
  for (const auto& c : ca_->chain()) {
    ca_end = std::min(ca_end, common::notAfter(c.get()));
  }
  if (now + ttl.count() > ca_end) {
    return refuse(std::move(out), StatusCode::kFailedPrecondition, kRefuseOutlivesCa,
                  "refused: a certificate for " + std::to_string(ttl.count()) +
                      " s would outlive the issuing CA, which expires at " +
                      common::formatTime(ca_end) + " (rotate the CA)");
  }
  // 3. Who is asking.
  Attestation att;
  switch (request.attestation_case()) {
    case palisade::v1::CertificateRequest::kJoinToken:
      out.method = "join_token";
      if (!options_.join_token) {
        out.attestation_reason = "disabled";
        return refuse(std::move(out), StatusCode::kUnauthenticated, kRefuseAttestation,
                      "join tokens are not accepted by this control plane");
      }
      att = options_.join_token(request.join_token(), now);
      break;
    case palisade::v1::CertificateRequest::kServiceAccountToken:
      out.method = "k8s_psat";
      if (!options_.service_account_token) {
        out.attestation_reason = "disabled";
        return refuse(std::move(out), StatusCode::kUnauthenticated, kRefuseAttestation,
                      "service-account tokens are not accepted: palisade-cp has no --jwks");
      }
      att = options_.service_account_token(request.service_account_token(), now);
      break;
    default:
      out.method = "renewal";
      if (peer.id == nullptr) {
        out.method = "none";
        return refuse(std::move(out), StatusCode::kUnauthenticated, kRefuseNoAttestation,
                      "no attestation: send a join token or a service-account token, or renew "
                      "over TLS with a current SVID as client certificate");
      }
      if (peer.expires != 0 && peer.expires <= now) {
        return refuse(std::move(out), StatusCode::kUnauthenticated, kRefuseNoAttestation,
                      "renewal refused: the client certificate on this connection expired at " +
                          common::formatTime(peer.expires) + "; attest again");
      }
      att.spiffe_id = std::string(peer.id->uri());
      break;
  }
  if (att.error) {
    out.reason = kRefuseAttestation;
    out.attestation_reason = att.error->reason;
    out.status = {StatusCode::kUnauthenticated,
                  out.method + " refused (" + att.error->reason + "): " + att.error->message};
    return out;
  }
  out.spiffe_id = att.spiffe_id;
  auto id = policy::SpiffeId::parse(att.spiffe_id);
  if (!id.ok()) {
    return refuse(std::move(out), StatusCode::kInternal, kRefuseAttestation,
                  "attested identity is not a SPIFFE ID: " + id.error().message);
  }
  // 4. The CSR must ask for that identity and nothing else.
  for (const std::string& uri : csrUris(csr->get())) {
    if (uri != att.spiffe_id) {
      return refuse(std::move(out), StatusCode::kPermissionDenied, kRefuseIdentityMismatch,
                    "identity mismatch: the CSR asks for " + uri + " but the caller attested as " +
                        att.spiffe_id);
    }
  }
  IssueOptions issue;
  issue.ttl = ttl;
  issue.now = now;
  auto signed_cert = ca_->sign(csr->get(), *id, issue);
  if (!signed_cert.ok()) {
    return refuse(std::move(out), StatusCode::kInvalidArgument, kRefuseSign,
                  signed_cert.error().message);
  }
  out.response.set_spiffe_id(att.spiffe_id);
  out.response.add_cert_chain(common::certificatePem(signed_cert->certificate.get()));
  for (const auto& c : signed_cert->intermediates) {
    out.response.add_cert_chain(common::certificatePem(c.get()));
  }
  for (auto& b : bundles()) {
    *out.response.add_trust_bundles() = std::move(b);
  }
  out.response.set_expires_unix(common::notAfter(signed_cert->certificate.get()));
  return out;
}

}  // namespace palisade::cp
