#pragma once

// CertificateAuthority: the mesh's CA. Makes a root (and optionally an intermediate that
// signs leaves), or imports one made with openssl or exported from Vault's PKI engine, and
// signs CSRs into X509-SVIDs. The CA, not the CSR, decides what a certificate says: exactly
// the attested SPIFFE ID as URI SAN (DNS names only when asked for a gateway or server
// certificate), keyUsage digitalSignature (+keyEncipherment for RSA keys), EKU serverAuth and
// clientAuth, CA:FALSE, SKI/AKI, a 128-bit random serial and a TTL capped at the CA's own
// validity. Revocation lists serials and signs a CRL.
//
// On disk (save/load), DIR holds: ca.crt (the signing certificate), ca.key (its key, 0600),
// ca-chain.pem (certificates between the signing certificate and the root, often none),
// root.crt (the trust bundle: root certificates), root.key (0600, only when the root was made
// here and is not the signing certificate), trust-domain, revoked (serial and time per line).
// Thread: const methods may run on any thread; revoke() and save() need external ordering.

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/openssl.h"
#include "policy/spiffe_id.h"

namespace palisade::cp {

inline constexpr std::chrono::seconds kDefaultLeafTtl{3600};
inline constexpr std::chrono::seconds kMinLeafTtl{60};

// One constant per refusal, so tests compare exact text (some are followed by detail).
inline constexpr std::string_view kCaCsrSignature = "ca: the CSR's signature does not verify";
inline constexpr std::string_view kCaTtlTooShort = "ca: ttl must be at least 1m";
inline constexpr std::string_view kCaWrongTrustDomain =
    "ca: SPIFFE ID is not in this CA's trust domain: ";
inline constexpr std::string_view kCaIdWithoutPath =
    "ca: a workload SPIFFE ID needs a path (spiffe://TD/...): ";
inline constexpr std::string_view kCaKeyType = "ca: unsupported public key in the CSR: ";
inline constexpr std::string_view kCaBadDnsName = "ca: bad DNS name: ";
inline constexpr std::string_view kCaExpired = "ca: the CA certificate has expired";
inline constexpr std::string_view kCaImportNotCa =
    "ca import: the certificate is not a CA (basicConstraints CA:TRUE is missing)";
inline constexpr std::string_view kCaImportNoKeyCertSign =
    "ca import: the CA certificate's key usage lacks keyCertSign (SPIFFE signing certificates "
    "must set it; with openssl add -addext keyUsage=critical,keyCertSign,cRLSign)";
inline constexpr std::string_view kCaImportKeyMismatch =
    "ca import: the private key does not match the certificate";
inline constexpr std::string_view kCaImportNoRoot =
    "ca import: an intermediate CA needs its chain up to the root in the certificate file";
inline constexpr std::string_view kCaImportBrokenChain =
    "ca import: the CA certificate does not chain to the root given: ";
inline constexpr std::string_view kCaBadSerial = "ca: bad serial number (hex expected): ";

// A serial number as the CA stores and prints it: uppercase hex without leading zeros.
std::string canonicalSerial(std::string_view hex);

struct CaInitOptions {
  std::string trust_domain;
  bool intermediate = false;  // sign leaves from an intermediate under the root
  std::chrono::seconds root_ttl{std::chrono::hours(24 * 3650)};
  std::chrono::seconds intermediate_ttl{std::chrono::hours(24 * 365)};
  std::time_t now = 0;  // 0: the current time
};

struct IssueOptions {
  std::vector<std::string> dns_names;  // only for gateway/server certificates
  std::chrono::seconds ttl = kDefaultLeafTtl;
  std::time_t now = 0;  // 0: the current time
};

struct IssuedCertificate {
  common::X509Ptr certificate;
  std::vector<common::X509Ptr> intermediates;  // between the leaf and the root
};

struct Revocation {
  std::string serial;  // uppercase hex
  std::time_t when = 0;
};

class CertificateAuthority {
 public:
  static Result<CertificateAuthority> create(const CaInitOptions& options);
  static Result<CertificateAuthority> load(const std::string& dir);
  // `cert_pem`: the CA certificate first, then (for an intermediate) its chain up to the root.
  // The trust domain comes from the certificate's SPIFFE ID, else `trust_domain`, else
  // "cluster.local".
  static Result<CertificateAuthority> import(std::string_view cert_pem, std::string_view key_pem,
                                             const std::optional<std::string>& trust_domain,
                                             std::time_t now = 0);
  Status save(const std::string& dir) const;

  // Signs `csr` for `id`. Precondition: `id` was attested by the caller.
  Result<IssuedCertificate> sign(X509_REQ* csr, const policy::SpiffeId& id,
                                 const IssueOptions& options = {}) const;

  Status revoke(std::string_view serial_hex, std::time_t now = 0);
  const std::vector<Revocation>& revoked() const { return revoked_; }
  Result<common::X509CrlPtr> crl(std::time_t now = 0,
                                 std::chrono::seconds next_update = std::chrono::hours(24 *
                                                                                       7)) const;

  const std::string& trustDomain() const { return trust_domain_; }
  X509* signingCertificate() const { return signing_cert_.get(); }
  const std::vector<common::X509Ptr>& chain() const { return chain_; }  // excluding root
  const std::vector<common::X509Ptr>& roots() const { return roots_; }

 private:
  CertificateAuthority() = default;

  std::string trust_domain_;
  common::X509Ptr signing_cert_;
  common::EvpPkeyPtr signing_key_;
  std::vector<common::X509Ptr> chain_;  // issuers of signing_cert_ below the root
  std::vector<common::X509Ptr> roots_;
  common::EvpPkeyPtr root_key_;  // when made here and distinct from the signing key
  std::vector<Revocation> revoked_;
};

}  // namespace palisade::cp
