// EVP_PKEY_get1_EC_KEY and friends are deprecated in OpenSSL 3 but are the fast path; see
// setPublicKey().
#define OPENSSL_SUPPRESS_DEPRECATED
#include "control-plane/ca.h"

#include <openssl/ec.h>
#include <openssl/rsa.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>

#include "common/csr.h"
#include "common/trust_bundle.h"
#include "common/x509_svid.h"
#include "policy/dns_name.h"

namespace palisade::cp {

using common::EvpPkeyPtr;
using common::X509Ptr;
using common::X509StorePtr;

namespace {

std::time_t nowOr(std::time_t t) { return t != 0 ? t : std::time(nullptr); }

// 128 random bits, positive (RFC 5280 4.1.2.2 wants a positive serial of at most 20 octets).
Status randomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return common::opensslError("ca: no randomness for a serial number");
  }
  bytes[0] &= 0x7f;
  bytes[0] |= 0x40;  // keep all 128 bits significant
  common::BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert));
  return Ok{};
}

Status addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) {
    return common::opensslError(std::string("ca: cannot make extension ") + OBJ_nid2sn(nid));
  }
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return Ok{};
}

Status addSans(X509* cert, const std::vector<std::string>& uris,
               const std::vector<std::string>& dns, bool critical) {
  auto names = common::makeGeneralNames(uris, dns);
  if (!names.ok()) {
    return names.error();
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names->get(), critical ? 1 : 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return common::opensslError("ca: cannot add subjectAltName");
  }
  return Ok{};
}

void setName(X509* cert, const std::vector<std::pair<const char*, std::string>>& parts) {
  X509_NAME* name = X509_get_subject_name(cert);
  for (const auto& [field, value] : parts) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
  }
}

Status signWith(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) {
    return common::opensslError("ca: cannot sign the certificate");
  }
  return Ok{};
}

// A CA certificate: self-signed when `issuer` is null.
Result<X509Ptr> makeCaCertificate(EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                                  const std::string& trust_domain, const std::string& cn,
                                  std::time_t now, std::chrono::seconds ttl, int path_len) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  if (Status s = randomSerial(cert.get()); !s.ok()) {
    return s.error();
  }
  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -60, &now);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, static_cast<long>(ttl.count()), &now);
  X509_set_pubkey(cert.get(), key);
  setName(cert.get(), {{"O", "palisade"}, {"CN", cn}});
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  const std::string bc =
      "critical,CA:TRUE" + (path_len >= 0 ? ",pathlen:" + std::to_string(path_len) : std::string());
  for (Status s : {addExtension(cert.get(), signer, NID_basic_constraints, bc.c_str()),
                   addExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"),
                   addExtension(cert.get(), signer, NID_subject_key_identifier, "hash"),
                   addExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always"),
                   // "the SPIFFE ID of a signing certificate MUST NOT have a path component"
                   addSans(cert.get(), {"spiffe://" + trust_domain}, {}, false)}) {
    if (!s.ok()) {
      return s.error();
    }
  }
  if (Status s = signWith(cert.get(), issuer_key != nullptr ? issuer_key : key); !s.ok()) {
    return s.error();
  }
  return cert;
}

// Sets the CSR's public key on `cert`. X509_set_pubkey with a key from OpenSSL 3's providers
// re-encodes it through the provider encoder and decodes it again, which costs more than
// signing the certificate; a legacy (EC_KEY/RSA) copy of the key takes the direct encoding
// path and leaves `cert` with its decoded key, as users of the certificate expect.
Status setPublicKey(EVP_PKEY* pub, X509* cert) {
  EvpPkeyPtr legacy(EVP_PKEY_new());
  bool converted = false;
  if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
    EC_KEY* ec = EVP_PKEY_get1_EC_KEY(pub);
    converted = ec != nullptr && EVP_PKEY_assign_EC_KEY(legacy.get(), ec) == 1;
  } else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
    RSA* rsa = EVP_PKEY_get1_RSA(pub);
    converted = rsa != nullptr && EVP_PKEY_assign_RSA(legacy.get(), rsa) == 1;
  }
  if (X509_set_pubkey(cert, converted ? legacy.get() : pub) != 1) {
    return common::opensslError("ca: cannot set the certificate's public key");
  }
  return Ok{};
}

// True if the CSR's EC key names P-256, P-384 or P-521 rather than spelling out parameters.
bool namedCurve(X509_REQ* csr) {
  X509_ALGOR* algor = nullptr;
  if (X509_PUBKEY_get0_param(nullptr, nullptr, nullptr, &algor, X509_REQ_get_X509_PUBKEY(csr)) !=
      1) {
    return false;
  }
  const void* param = nullptr;
  int type = V_ASN1_UNDEF;
  X509_ALGOR_get0(nullptr, &type, &param, algor);
  if (type != V_ASN1_OBJECT) {
    return false;
  }
  const int nid = OBJ_obj2nid(static_cast<const ASN1_OBJECT*>(param));
  return nid == NID_X9_62_prime256v1 || nid == NID_secp384r1 || nid == NID_secp521r1;
}

bool selfSigned(X509* cert) { return X509_check_issued(cert, cert) == X509_V_OK; }

bool validSerial(std::string_view s) {
  return !s.empty() && s.size() <= 40 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(c) != 0; });
}

}  // namespace

std::string canonicalSerial(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  // Canonical form: no leading zeros.
  std::size_t first = out.find_first_not_of('0');
  return first == std::string::npos ? "0" : out.substr(first);
}

Result<CertificateAuthority> CertificateAuthority::create(const CaInitOptions& options) {
  if (Status td = policy::SpiffeId::validateTrustDomain(options.trust_domain); !td.ok()) {
    return td.error();
  }
  const std::time_t now = nowOr(options.now);
  CertificateAuthority ca;
  ca.trust_domain_ = options.trust_domain;
  auto root_key = common::generateP256Key();
  if (!root_key.ok()) {
    return root_key.error();
  }
  auto root = makeCaCertificate(root_key->get(), nullptr, nullptr, ca.trust_domain_,
                                "palisade root CA " + ca.trust_domain_, now, options.root_ttl,
                                options.intermediate ? 1 : -1);
  if (!root.ok()) {
    return root.error();
  }
  if (!options.intermediate) {
    ca.signing_cert_ = common::share(root->get());
    ca.signing_key_ = std::move(*root_key);
    ca.roots_.push_back(std::move(*root));
    return ca;
  }
  auto key = common::generateP256Key();
  if (!key.ok()) {
    return key.error();
  }
  const std::chrono::seconds ttl = std::min(options.intermediate_ttl, options.root_ttl);
  auto intermediate =
      makeCaCertificate(key->get(), root->get(), root_key->get(), ca.trust_domain_,
                        "palisade intermediate CA " + ca.trust_domain_, now, ttl, 0);
  if (!intermediate.ok()) {
    return intermediate.error();
  }
  ca.signing_cert_ = std::move(*intermediate);
  ca.signing_key_ = std::move(*key);
  ca.root_key_ = std::move(*root_key);
  ca.roots_.push_back(std::move(*root));
  return ca;
}

Result<CertificateAuthority> CertificateAuthority::import(
    std::string_view cert_pem, std::string_view key_pem,
    const std::optional<std::string>& trust_domain, std::time_t now) {
  auto certs = common::parseCertificatesPem(cert_pem);
  if (!certs.ok()) {
    return Error{certs.error().code, "ca import: " + certs.error().message};
  }
  auto key = common::parsePrivateKeyPem(key_pem);
  if (!key.ok()) {
    return Error{key.error().code, "ca import: " + key.error().message};
  }
  X509* cert = certs->front().get();
  const uint32_t flags = X509_get_extension_flags(cert);
  if (!(flags & EXFLAG_CA)) {
    return invalidArgument(std::string(kCaImportNotCa));
  }
  // "SVID signing certificates MUST set keyCertSign" (X509-SVID 4.3): a CA without a key
  // usage extension (openssl's stock v3_ca) would sign leaves no strict verifier accepts.
  if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
    return invalidArgument(std::string(kCaImportNoKeyCertSign));
  }
  if (X509_check_private_key(cert, key->get()) != 1) {
    ERR_clear_error();
    return invalidArgument(std::string(kCaImportKeyMismatch));
  }
  if (common::notAfter(cert) <= nowOr(now)) {
    return invalidArgument(std::string(kCaExpired));
  }
  CertificateAuthority ca;
  if (auto td = common::trustDomainOfCa(cert)) {
    ca.trust_domain_ = *td;
  } else {
    ca.trust_domain_ = trust_domain.value_or("cluster.local");
  }
  if (Status td = policy::SpiffeId::validateTrustDomain(ca.trust_domain_); !td.ok()) {
    return td.error();
  }
  ca.signing_key_ = std::move(*key);
  ca.signing_cert_ = std::move(certs->front());
  if (selfSigned(ca.signing_cert_.get())) {
    ca.roots_.push_back(common::share(ca.signing_cert_.get()));
    return ca;
  }
  // An intermediate: the rest of the file is its chain; the self-signed one is the root.
  for (std::size_t i = 1; i < certs->size(); ++i) {
    X509Ptr& c = (*certs)[i];
    if (selfSigned(c.get())) {
      ca.roots_.push_back(std::move(c));
    } else {
      ca.chain_.push_back(std::move(c));
    }
  }
  if (ca.roots_.empty()) {
    return invalidArgument(std::string(kCaImportNoRoot));
  }
  // The chain given must lead from the CA certificate to one of the roots given.
  X509StorePtr store(X509_STORE_new());
  for (const X509Ptr& root : ca.roots_) {
    X509_STORE_add_cert(store.get(), root.get());
  }
  common::X509StackPtr untrusted(sk_X509_new_null());
  for (const X509Ptr& c : ca.chain_) {
    sk_X509_push(untrusted.get(), c.get());
  }
  common::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), ca.signing_cert_.get(), untrusted.get());
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), nowOr(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return invalidArgument(std::string(kCaImportBrokenChain) + X509_verify_cert_error_string(err));
  }
  return ca;
}

Result<IssuedCertificate> CertificateAuthority::sign(X509_REQ* csr, const policy::SpiffeId& id,
                                                     const IssueOptions& options) const {
  EVP_PKEY* pub = X509_REQ_get0_pubkey(csr);
  if (pub == nullptr || X509_REQ_verify(csr, pub) != 1) {
    ERR_clear_error();
    return invalidArgument(std::string(kCaCsrSignature));
  }
  if (id.trustDomain() != trust_domain_) {
    return invalidArgument(std::string(kCaWrongTrustDomain) + std::string(id.uri()));
  }
  if (id.path().empty()) {
    return invalidArgument(std::string(kCaIdWithoutPath) + std::string(id.uri()));
  }
  if (options.ttl < kMinLeafTtl) {
    return invalidArgument(std::string(kCaTtlTooShort));
  }
  for (const std::string& dns : options.dns_names) {
    if (!policy::isDnsName(dns)) {
      return invalidArgument(std::string(kCaBadDnsName) + dns);
    }
  }
  const int key_type = EVP_PKEY_get_base_id(pub);
  const bool rsa = key_type == EVP_PKEY_RSA;
  if (rsa ? EVP_PKEY_get_bits(pub) < 2048 : key_type != EVP_PKEY_EC) {
    return invalidArgument(std::string(kCaKeyType) +
                           (rsa ? "RSA keys need at least 2048 bits" : "use ECDSA or RSA"));
  }
  if (!rsa && !namedCurve(csr)) {
    // "specifiedCurve ... MUST NOT be used in PKIX" (RFC 5480 section 2.1.1).
    return invalidArgument(std::string(kCaKeyType) +
                           "ECDSA keys must name their curve (P-256, P-384 or P-521)");
  }

  const std::time_t now = nowOr(options.now);
  // Never outlive the issuer: the certificate ends with the shortest-lived CA above it.
  std::time_t ca_end = common::notAfter(signing_cert_.get());
  X509* top = signing_cert_.get();
  for (const X509Ptr& c : chain_) {
    ca_end = std::min(ca_end, common::notAfter(c.get()));
    top = c.get();
  }
  for (const X509Ptr& root : roots_) {
    if (X509_check_issued(root.get(), top) == X509_V_OK) {
      ca_end = std::min(ca_end, common::notAfter(root.get()));
    }
  }
  if (ca_end <= now) {
    return invalidArgument(std::string(kCaExpired));
  }
  const std::time_t not_after = std::min<std::time_t>(now + options.ttl.count(), ca_end);
  // A little backdating absorbs clock skew between the CA and the peers that verify.
  const std::time_t not_before =
      std::max<std::time_t>(now - 60, common::notBefore(signing_cert_.get()));

  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  if (Status s = randomSerial(cert.get()); !s.ok()) {
    return s.error();
  }
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), not_before);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after);
  // Whatever else the CSR asks for (subject, extensions) is ignored: only its key is used.
  if (Status s = setPublicKey(pub, cert.get()); !s.ok()) {
    return s.error();
  }
  std::vector<std::pair<const char*, std::string>> subject = {{"O", "palisade"}};
  if (!options.dns_names.empty()) {
    subject.emplace_back("CN", options.dns_names.front());
  }
  setName(cert.get(), subject);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signing_cert_.get()));
  X509* issuer = signing_cert_.get();
  const char* usage =
      rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature";
  for (Status s : {addExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE"),
                   addExtension(cert.get(), issuer, NID_key_usage, usage),
                   addExtension(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth"),
                   addExtension(cert.get(), issuer, NID_subject_key_identifier, "hash"),
                   addExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always"),
                   addSans(cert.get(), {std::string(id.uri())}, options.dns_names, false)}) {
    if (!s.ok()) {
      return s.error();
    }
  }
  if (Status s = signWith(cert.get(), signing_key_.get()); !s.ok()) {
    return s.error();
  }
  IssuedCertificate out;
  out.certificate = std::move(cert);
  if (!selfSigned(signing_cert_.get())) {
    out.intermediates.push_back(common::share(signing_cert_.get()));
  }
  for (const X509Ptr& c : chain_) {
    out.intermediates.push_back(common::share(c.get()));
  }
  return out;
}

Status CertificateAuthority::revoke(std::string_view serial_hex, std::time_t now) {
  if (!validSerial(serial_hex)) {
    return invalidArgument(std::string(kCaBadSerial) + std::string(serial_hex));
  }
  std::string serial = canonicalSerial(serial_hex);
  for (const Revocation& r : revoked_) {
    if (r.serial == serial) {
      return Ok{};
    }
  }
  revoked_.push_back(Revocation{serial, nowOr(now)});
  return Ok{};
}

Result<common::X509CrlPtr> CertificateAuthority::crl(std::time_t now,
                                                     std::chrono::seconds next_update) const {
  now = nowOr(now);
  common::X509CrlPtr crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(signing_cert_.get()));
  common::Asn1TimePtr last(ASN1_TIME_set(nullptr, now));
  common::Asn1TimePtr next(ASN1_TIME_set(nullptr, now + next_update.count()));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (const Revocation& r : revoked_) {
    BIGNUM* raw = nullptr;
    BN_hex2bn(&raw, r.serial.c_str());
    common::BignumPtr bn(raw);
    X509_REVOKED* rev = X509_REVOKED_new();
    ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn.get(), nullptr);
    X509_REVOKED_set_serialNumber(rev, serial);
    ASN1_INTEGER_free(serial);
    common::Asn1TimePtr when(ASN1_TIME_set(nullptr, r.when));
    X509_REVOKED_set_revocationDate(rev, when.get());
    X509_CRL_add0_revoked(crl.get(), rev);
  }
  X509_CRL_sort(crl.get());
  // The CRL number grows with time, so every CRL this CA signs supersedes the previous one.
  common::Asn1IntegerPtr number(ASN1_INTEGER_new());
  ASN1_INTEGER_set_int64(number.get(), now);
  X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, X509V3_ADD_DEFAULT);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, signing_cert_.get(), nullptr, nullptr, crl.get(), 0);
  if (X509_EXTENSION* aki =
          X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always")) {
    X509_CRL_add_ext(crl.get(), aki, -1);
    X509_EXTENSION_free(aki);
  }
  if (X509_CRL_sign(crl.get(), signing_key_.get(), EVP_sha256()) <= 0) {
    return common::opensslError("ca: cannot sign the CRL");
  }
  return crl;
}

Status CertificateAuthority::save(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Error{ErrorCode::kIo, dir + ": cannot create: " + ec.message()};
  }
  ::chmod(dir.c_str(), 0700);
  auto path = [&](const char* name) { return (std::filesystem::path(dir) / name).string(); };
  std::string revoked;
  for (const Revocation& r : revoked_) {
    revoked += r.serial + " " + common::formatTime(r.when) + "\n";
  }
  struct File {
    const char* name;
    std::string data;
    unsigned mode;
  };
  std::vector<File> files = {
      {"ca.key", common::privateKeyPem(signing_key_.get()), 0600},
      {"ca.crt", common::certificatePem(signing_cert_.get()), 0644},
      {"ca-chain.pem", common::certificatesPem(chain_), 0644},
      {"root.crt", common::certificatesPem(roots_), 0644},
      {"trust-domain", trust_domain_ + "\n", 0644},
      {"revoked", revoked, 0644},
  };
  if (root_key_) {
    files.push_back({"root.key", common::privateKeyPem(root_key_.get()), 0600});
  }
  for (const File& f : files) {
    if (Status s = common::writeFileAtomic(path(f.name), f.data, f.mode); !s.ok()) {
      return s;
    }
  }
  return Ok{};
}

Result<CertificateAuthority> CertificateAuthority::load(const std::string& dir) {
  auto path = [&](const char* name) { return (std::filesystem::path(dir) / name).string(); };
  auto cert = common::readFile(path("ca.crt"));
  auto key = common::readFile(path("ca.key"));
  auto roots = common::readFile(path("root.crt"));
  auto td = common::readFile(path("trust-domain"));
  for (const auto* r : {&cert, &key, &roots, &td}) {
    if (!r->ok()) {
      return Error{r->error().code, "ca: " + r->error().message};
    }
  }
  CertificateAuthority ca;
  ca.trust_domain_ = *td;
  while (!ca.trust_domain_.empty() &&
         std::isspace(static_cast<unsigned char>(ca.trust_domain_.back()))) {
    ca.trust_domain_.pop_back();
  }
  auto certs = common::parseCertificatesPem(*cert);
  auto signing_key = common::parsePrivateKeyPem(*key);
  auto root_certs = common::parseCertificatesPem(*roots);
  if (!certs.ok() || !signing_key.ok() || !root_certs.ok()) {
    return invalidArgument("ca: " + dir +
                           " does not hold a readable CA (ca.crt, ca.key, root.crt)");
  }
  ca.signing_cert_ = std::move(certs->front());
  ca.signing_key_ = std::move(*signing_key);
  ca.roots_ = std::move(*root_certs);
  if (auto chain = common::readFile(path("ca-chain.pem")); chain.ok() && !chain->empty()) {
    auto parsed = common::parseCertificatesPem(*chain);
    if (!parsed.ok()) {
      return Error{parsed.error().code, "ca: ca-chain.pem: " + parsed.error().message};
    }
    ca.chain_ = std::move(*parsed);
  }
  if (auto root_key = common::readFile(path("root.key")); root_key.ok()) {
    auto parsed = common::parsePrivateKeyPem(*root_key);
    if (parsed.ok()) {
      ca.root_key_ = std::move(*parsed);
    }
  }
  if (auto revoked = common::readFile(path("revoked")); revoked.ok()) {
    std::istringstream lines(*revoked);
    std::string serial;
    std::string when;
    while (lines >> serial >> when) {
      auto t = common::parseTime(when);
      ca.revoked_.push_back(Revocation{serial, t.ok() ? *t : 0});
    }
  }
  return ca;
}

}  // namespace palisade::cp
