#include "tests/mocks/common/cert_factory.h"

#include <openssl/rsa.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "common/csr.h"

namespace palisade::common::test_certs {
namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "cert_factory: %s: %s\n", what.c_str(), opensslErrors().c_str());
  std::abort();
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    die(std::string("cannot make ") + OBJ_nid2sn(nid) + "=" + value);
  }
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

}  // namespace

CertSpec leafSpec(const std::string& uri) {
  CertSpec spec;
  spec.cn = "workload";
  spec.uris = {uri};
  spec.basic_constraints = "critical,CA:FALSE";
  spec.key_usage = "critical,digitalSignature";
  spec.ext_key_usage = "serverAuth,clientAuth";
  return spec;
}

CertSpec caSpec(const std::string& trust_domain, const std::string& cn) {
  CertSpec spec;
  spec.cn = cn;
  spec.uris = {"spiffe://" + trust_domain};
  spec.basic_constraints = "critical,CA:TRUE";
  spec.key_usage = "critical,keyCertSign,cRLSign";
  spec.not_before = kNow - kDay;
  spec.not_after = kNow + 365 * kDay;
  return spec;
}

EvpPkeyPtr p256Key() {
  auto key = generateP256Key();
  if (!key.ok()) {
    die("cannot make a P-256 key");
  }
  return std::move(*key);
}

EvpPkeyPtr rsaKey(int bits) {
  EVP_PKEY* key = EVP_RSA_gen(static_cast<unsigned int>(bits));
  if (key == nullptr) {
    die("cannot make an RSA key");
  }
  return EvpPkeyPtr(key);
}

X509Ptr makeCertificate(const CertSpec& spec, EVP_PKEY* subject_key, const Credential* issuer) {
  // Serial numbers only need to differ between the fixtures of one run.
  static std::atomic<std::int64_t> serial{0x1000};
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()), ++serial);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), spec.not_before);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), spec.not_after);
  X509_set_pubkey(cert.get(), subject_key);
  if (!spec.cn.empty()) {
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  }
  X509* signer = issuer != nullptr ? issuer->cert.get() : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (spec.basic_constraints) {
    addExtension(cert.get(), signer, NID_basic_constraints, *spec.basic_constraints);
  }
  if (spec.key_usage) {
    addExtension(cert.get(), signer, NID_key_usage, *spec.key_usage);
  }
  if (spec.ext_key_usage) {
    addExtension(cert.get(), signer, NID_ext_key_usage, *spec.ext_key_usage);
  }
  if (spec.key_ids) {
    addExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
    addExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  }
  if (!spec.uris.empty() || !spec.dns.empty()) {
    auto names = makeGeneralNames(spec.uris, spec.dns);
    if (!names.ok() || X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names->get(), 0,
                                         X509V3_ADD_APPEND) != 1) {
      die("cannot add subjectAltName");
    }
  }
  for (const auto& [nid, value] : spec.extra) {
    addExtension(cert.get(), signer, nid, value);
  }
  EVP_PKEY* signing_key = issuer != nullptr ? issuer->key.get() : subject_key;
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) <= 0) {
    die("cannot sign a certificate");
  }
  return cert;
}

Credential makeCredential(const CertSpec& spec, const Credential* issuer) {
  Credential out;
  out.key = p256Key();
  out.cert = makeCertificate(spec, out.key.get(), issuer);
  return out;
}

CertFactory::CertFactory(std::string trust_domain) : trust_domain_(std::move(trust_domain)) {
  root_ = makeCredential(caSpec(trust_domain_, trust_domain_ + " root"), nullptr);
  CertSpec intermediate = caSpec(trust_domain_, trust_domain_ + " intermediate");
  intermediate.not_after = kNow + 30 * kDay;
  intermediate_ = makeCredential(intermediate, &root_);
  leaf_key_ = p256Key();
}

std::string CertFactory::workloadId() const { return "spiffe://" + trust_domain_ + "/workload"; }

std::string CertFactory::leaf(const CertSpec& spec) const { return leafSignedBy(spec, root_); }

std::string CertFactory::leafSignedBy(const CertSpec& spec, const Credential& issuer) const {
  X509Ptr cert = makeCertificate(spec, leaf_key_.get(), &issuer);
  return certificatePem(cert.get());
}

std::string CertFactory::validLeaf() const { return leaf(leafSpec(workloadId())); }

std::string CertFactory::leafWithDnsSans() const {
  CertSpec spec = leafSpec(workloadId());
  spec.dns = {"web.example.com", "web"};
  return leaf(spec);
}

std::string CertFactory::leafWithEveryLeafKeyUsage() const {
  CertSpec spec = leafSpec(workloadId());
  spec.key_usage = "critical,digitalSignature,keyEncipherment,keyAgreement";
  return leaf(spec);
}

std::string CertFactory::leafWithoutEku() const {
  CertSpec spec = leafSpec(workloadId());
  spec.ext_key_usage.reset();
  return leaf(spec);
}

std::string CertFactory::leafViaIntermediate() const {
  return leafOfIntermediateAlone() + intermediate_.certPem();
}

std::string CertFactory::leafOfIntermediateAlone() const {
  return leafSignedBy(leafSpec(workloadId()), intermediate_);
}

std::string CertFactory::leafWithoutSan() const {
  CertSpec spec = leafSpec(workloadId());
  spec.uris.clear();
  return leaf(spec);
}

std::string CertFactory::leafDnsOnly() const {
  CertSpec spec = leafSpec(workloadId());
  spec.uris.clear();
  spec.dns = {"web.example.com"};
  return leaf(spec);
}

std::string CertFactory::leafTwoUriSans() const {
  CertSpec spec = leafSpec(workloadId());
  spec.uris.push_back("spiffe://" + trust_domain_ + "/other");
  return leaf(spec);
}

std::string CertFactory::leafSpiffeAndHttpsUris() const {
  CertSpec spec = leafSpec(workloadId());
  spec.uris.push_back("https://web.example.com/");
  return leaf(spec);
}

std::string CertFactory::leafHttpUri() const {
  return leaf(leafSpec("http://" + trust_domain_ + "/workload"));
}

std::string CertFactory::leafWrongScheme() const {
  return leaf(leafSpec("sparfe://" + trust_domain_ + "/workload"));
}

std::string CertFactory::leafUppercaseTrustDomain() const {
  return leaf(leafSpec("spiffe://TD.example/workload"));
}

std::string CertFactory::leafBadPathChars() const {
  return leaf(leafSpec("spiffe://" + trust_domain_ + "/work load$"));
}

std::string CertFactory::leafWithoutPath() const {
  return leaf(leafSpec("spiffe://" + trust_domain_));
}

std::string CertFactory::leafIsCa() const {
  CertSpec spec = leafSpec(workloadId());
  spec.basic_constraints = "critical,CA:TRUE";
  return leaf(spec);
}

std::string CertFactory::leafKeyCertSign() const {
  CertSpec spec = leafSpec(workloadId());
  spec.key_usage = "critical,digitalSignature,keyCertSign";
  return leaf(spec);
}

std::string CertFactory::leafCrlSign() const {
  CertSpec spec = leafSpec(workloadId());
  spec.key_usage = "critical,digitalSignature,cRLSign";
  return leaf(spec);
}

std::string CertFactory::leafWithoutKeyUsage() const {
  CertSpec spec = leafSpec(workloadId());
  spec.key_usage.reset();
  return leaf(spec);
}

std::string CertFactory::leafKeyEnciphermentOnly() const {
  CertSpec spec = leafSpec(workloadId());
  spec.key_usage = "critical,keyEncipherment";
  return leaf(spec);
}

std::string CertFactory::leafDuplicateBasicConstraints() const {
  CertSpec spec = leafSpec(workloadId());
  spec.extra = {{NID_basic_constraints, "critical,CA:FALSE"}};
  return leaf(spec);
}

std::string CertFactory::leafExpired() const {
  CertSpec spec = leafSpec(workloadId());
  spec.not_before = kNow - 2 * kHour;
  spec.not_after = kNow - kHour;
  return leaf(spec);
}

std::string CertFactory::leafNotYetValid() const {
  CertSpec spec = leafSpec(workloadId());
  spec.not_before = kNow + kHour;
  spec.not_after = kNow + 2 * kHour;
  return leaf(spec);
}

std::string CertFactory::leafOfTrustDomain(const std::string& trust_domain) const {
  return leaf(leafSpec("spiffe://" + trust_domain + "/workload"));
}

std::string CertFactory::selfSignedLeaf() const {
  X509Ptr cert = makeCertificate(leafSpec(workloadId()), leaf_key_.get(), nullptr);
  return certificatePem(cert.get());
}

std::string CertFactory::leafViaNonCaIntermediate() const {
  // A workload's own SVID (CA:FALSE, digitalSignature) used to mint another SVID.
  CertSpec signer = leafSpec("spiffe://" + trust_domain_ + "/signer");
  signer.cn = "not a CA";
  Credential not_ca = makeCredential(signer, &root_);
  return leafSignedBy(leafSpec(workloadId()), not_ca) + not_ca.certPem();
}

std::string CertFactory::leafViaIntermediateWithoutKeyCertSign() const {
  CertSpec signer = caSpec(trust_domain_, "no keyCertSign");
  signer.key_usage = "critical,digitalSignature,cRLSign";
  Credential ca = makeCredential(signer, &root_);
  return leafSignedBy(leafSpec(workloadId()), ca) + ca.certPem();
}

std::string CertFactory::leafOutlivingIntermediate() const {
  CertSpec signer = caSpec(trust_domain_, trust_domain_ + " short intermediate");
  signer.not_after = shortIntermediateNotAfter();
  Credential ca = makeCredential(signer, &root_);
  CertSpec leaf = leafSpec(workloadId());
  leaf.not_after = kNow + 3 * kHour;
  return leafSignedBy(leaf, ca) + ca.certPem();
}

CertSpec aroundNow(CertSpec spec, std::time_t before, std::time_t after) {
  const std::time_t now = std::time(nullptr);
  spec.not_before = now - before;
  spec.not_after = now + after;
  return spec;
}

}  // namespace palisade::common::test_certs
