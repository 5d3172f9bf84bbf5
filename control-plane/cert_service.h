#pragma once

// The certificate service's decisions, without sockets (palisade-cp serves it over gRPC,
// proto/palisade/v1/ca.proto): who is asking (a join token, a Kubernetes service-account
// token, or for a renewal the valid SVID on the TLS connection), whether the CSR asks for
// exactly that identity, whether the lifetime fits inside the CA's own, then the CA's
// signature. Every refusal has a reason label for metrics and a message for the caller.
// Thread: the control plane's loop; the CA may be swapped between calls (rotation).

#include <chrono>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/grpc/wire.h"
#include "common/tls_context.h"
#include "control-plane/ca.h"
#include "palisade/v1/ca.pb.h"
#include "policy/result.h"

namespace palisade::cp {

// An attestation plugin: the SPIFFE ID a credential proves, or why not. `reason` is a short
// label ("expired", "exhausted", ...) that metrics count by.
struct AttestationError {
  std::string reason;
  std::string message;
};
struct Attestation {
  std::string spiffe_id;  // when ok
  std::optional<AttestationError> error;
};
using Attestor = std::function<Attestation(const std::string& credential, std::time_t now)>;

struct CertServiceOptions {
  std::chrono::seconds default_ttl{3600};
  std::chrono::seconds max_ttl{24 * 3600};
  Attestor join_token;             // unset: join tokens refused
  Attestor service_account_token;  // unset: service-account tokens refused
};

struct IssueOutcome {
  common::grpc::Status status;
  palisade::v1::CertificateResponse response;  // when status is OK
  std::string method;                          // "join_token", "k8s_psat", "renewal" or "none"
  std::string reason;              // refusal label, "" when issued
  std::string attestation_reason;  // the attestor's label when attestation failed
  std::string spiffe_id;                       // the attested identity, when attestation succeeded
};

// Refusal labels (metrics) — one per way a request fails.
inline constexpr const char* kRefuseNoAttestation = "no_attestation";
inline constexpr const char* kRefuseAttestation = "attestation_failed";
inline constexpr const char* kRefuseBadCsr = "bad_csr";
inline constexpr const char* kRefuseIdentityMismatch = "identity_mismatch";
inline constexpr const char* kRefuseOutlivesCa = "outlives_ca";
inline constexpr const char* kRefuseBadTtl = "bad_ttl";
inline constexpr const char* kRefuseSign = "sign_failed";

class CertService {
 public:
  CertService(std::shared_ptr<const CertificateAuthority> ca, CertServiceOptions options);

  // The CA that signs from now on; `bundle_roots` are every root the trust bundle carries
  // (during a rotation, more than the signing CA's).
  void setCa(std::shared_ptr<const CertificateAuthority> ca);
  void setExtraRoots(std::vector<common::X509Ptr> roots);
  const CertificateAuthority& ca() const { return *ca_; }

  IssueOutcome create(const palisade::v1::CertificateRequest& request,
                      const common::PeerIdentity& peer, std::time_t now = 0) const;

  // The trust bundles as the API sends them, and their version (a digest of the roots).
  std::vector<palisade::v1::TrustBundle> bundles() const;
  std::string bundleVersion() const;

 private:
  std::shared_ptr<const CertificateAuthority> ca_;
  std::vector<common::X509Ptr> extra_roots_;
  CertServiceOptions options_;
};

}  // namespace palisade::cp
