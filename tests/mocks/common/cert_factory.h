#pragma once

// Certificate fixtures for the identity tests, made at test time with the OpenSSL C API so no
// key is ever committed. Each defect has a factory function named for it (STYLE.md "Tests":
// leaf_is_ca.pem becomes leafIsCa()) that returns PEM text, leaf first, then any intermediate.
// Validity windows are fixed around kNow, which tests pass as VerifyOptions.at: nothing depends
// on the wall clock. Keys are P-256 and made once per factory; build one factory per test
// suite (SetUpTestSuite). Thread: one thread.

#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/openssl.h"

namespace palisade::common::test_certs {

// 2027-01-15T08:00:00Z: "now" for every fixture.
inline constexpr std::time_t kNow = 1'800'000'000;
inline constexpr std::time_t kMinute = 60;
inline constexpr std::time_t kHour = 3600;
inline constexpr std::time_t kDay = 86400;

// What a certificate says. An extension whose optional is empty is left out; values use the
// openssl.cnf syntax ("critical,CA:TRUE", "critical,digitalSignature").
struct CertSpec {
  std::string cn;  // subject CN; the subject is empty when this is
  std::vector<std::string> uris;
  std::vector<std::string> dns;
  std::optional<std::string> basic_constraints;
  std::optional<std::string> key_usage;
  std::optional<std::string> ext_key_usage;
  bool key_ids = true;  // subjectKeyIdentifier and authorityKeyIdentifier
  // Appended after the others, as given (a repeated NID makes a duplicate extension).
  std::vector<std::pair<int, std::string>> extra;
  std::time_t not_before = kNow - kHour;
  std::time_t not_after = kNow + kHour;
};

// A leaf SVID as the standard wants it: CA:FALSE, critical keyUsage digitalSignature, EKU
// serverAuth and clientAuth, one URI SAN (`uri`), valid kNow-1h to kNow+1h.
CertSpec leafSpec(const std::string& uri);
// A signing certificate: critical CA:TRUE, critical keyCertSign and cRLSign, URI SAN
// "spiffe://<trust_domain>", valid kNow-1d to kNow+365d.
CertSpec caSpec(const std::string& trust_domain, const std::string& cn);
// `spec` made valid from `before` seconds before the real clock's now to `after` seconds
// after it, for code that checks certificates against the wall clock.
CertSpec aroundNow(CertSpec spec, std::time_t before, std::time_t after);

// A certificate and its key.
struct Credential {
  X509Ptr cert;
  EvpPkeyPtr key;

  std::string certPem() const { return certificatePem(cert.get()); }
  std::string keyPem() const { return privateKeyPem(key.get()); }
};

EvpPkeyPtr p256Key();
EvpPkeyPtr rsaKey(int bits);

// Signs `spec` over `subject_key` with `issuer` (self-signed when `issuer` is null). Aborts
// the test binary when OpenSSL refuses: a fixture that cannot be built is a bug in the test.
X509Ptr makeCertificate(const CertSpec& spec, EVP_PKEY* subject_key, const Credential* issuer);
// The same with a fresh P-256 key.
Credential makeCredential(const CertSpec& spec, const Credential* issuer);

// A root CA for one trust domain ("<trust_domain> root", so two factories of one trust domain
// are a CA rotation: same subject, new key), an intermediate under it, and one leaf key.
class CertFactory {
 public:
  explicit CertFactory(std::string trust_domain);

  const std::string& trustDomain() const { return trust_domain_; }
  const Credential& root() const { return root_; }
  const Credential& intermediate() const { return intermediate_; }
  std::string rootPem() const { return root_.certPem(); }
  // "spiffe://<trust domain>/workload"
  std::string workloadId() const;

  // `spec` over the shared leaf key, signed by the root.
  std::string leaf(const CertSpec& spec) const;
  // `spec` over the shared leaf key, signed by `issuer`.
  std::string leafSignedBy(const CertSpec& spec, const Credential& issuer) const;

  // Valid SVIDs.
  std::string validLeaf() const;
  std::string leafWithDnsSans() const;
  std::string leafWithEveryLeafKeyUsage() const;  // + keyEncipherment, keyAgreement
  std::string leafWithoutEku() const;
  std::string leafViaIntermediate() const;      // leaf, intermediate
  std::string leafOfIntermediateAlone() const;  // leaf signed by the intermediate, no chain

  // Defective leaves, signed by the root.
  std::string leafWithoutSan() const;
  std::string leafDnsOnly() const;
  std::string leafTwoUriSans() const;
  std::string leafSpiffeAndHttpsUris() const;
  std::string leafHttpUri() const;
  std::string leafWrongScheme() const;  // sparfe://
  std::string leafUppercaseTrustDomain() const;
  std::string leafBadPathChars() const;
  std::string leafWithoutPath() const;  // spiffe://<td>
  std::string leafIsCa() const;
  std::string leafKeyCertSign() const;
  std::string leafCrlSign() const;
  std::string leafWithoutKeyUsage() const;
  std::string leafKeyEnciphermentOnly() const;
  std::string leafDuplicateBasicConstraints() const;
  std::string leafExpired() const;      // kNow-2h to kNow-1h
  std::string leafNotYetValid() const;  // kNow+1h to kNow+2h
  std::string leafOfTrustDomain(const std::string& trust_domain) const;
  std::string selfSignedLeaf() const;

  // Defective signers: leaf, then the signer.
  std::string leafViaNonCaIntermediate() const;  // a CA:FALSE leaf SVID signing a leaf
  std::string leafViaIntermediateWithoutKeyCertSign() const;
  // Validity of the chain: the intermediate ends before the leaf does.
  std::string leafOutlivingIntermediate() const;
  std::time_t shortIntermediateNotAfter() const { return kNow + 2 * kHour; }

 private:
  std::string trust_domain_;
  Credential root_;
  Credential intermediate_;
  EvpPkeyPtr leaf_key_;
};

}  // namespace palisade::common::test_certs
