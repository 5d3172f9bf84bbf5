#include "control-plane/ca.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/csr.h"
#include "common/trust_bundle.h"
#include "common/x509_svid.h"
#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// CertificateAuthority: what it makes (create), what it accepts (import), what it issues
// (sign), what it remembers (save/load) and what it revokes (revoke/crl). Every issued leaf is
// checked with our own X509-SVID verifier (github.com/spiffe/spiffe standards/X509-SVID.md);
// CRLs and CLI-made CAs go through the openssl command-line tool. CAs made here are pinned to
// test_certs::kNow; CAs the openssl CLI makes start at the wall clock, read once per suite.

namespace palisade::cp {
namespace {

using common::BundleSet;
using common::EvpPkeyPtr;
using common::X509Ptr;
using common::X509ReqPtr;
using common::test_certs::CertSpec;
using common::test_certs::Credential;
using common::test_certs::kDay;
using common::test_certs::kHour;
using common::test_certs::kMinute;
using common::test_certs::kNow;
using common::test_env::CommandResult;
using common::test_env::runCommand;
using common::test_env::TempDir;

constexpr const char* kTd = "ca.test";

std::string str(std::string_view s) { return std::string(s); }

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// A SPIFFE ID the test itself spells; a typo is a bug in the test.
policy::SpiffeId spiffeId(const std::string& text) {
  auto id = policy::SpiffeId::parse(text);
  if (!id.ok()) {
    std::fprintf(stderr, "bad test SPIFFE ID %s: %s\n", text.c_str(), id.error().message.c_str());
    std::abort();
  }
  return std::move(*id);
}

std::string workload(const std::string& td = kTd) {
  return "spiffe://" + td + "/ns/default/sa/web";
}

X509ReqPtr csrFor(EVP_PKEY* key, const std::vector<std::string>& uris = {},
                  const std::vector<std::string>& dns = {}) {
  auto csr = common::makeCsr(key, uris, dns);
  if (!csr.ok()) {
    std::fprintf(stderr, "makeCsr: %s\n", csr.error().message.c_str());
    std::abort();
  }
  return std::move(*csr);
}

// A CSR signed by `signer` while it carries `key`'s public key.
X509ReqPtr csrSignedByAnotherKey(EVP_PKEY* key, EVP_PKEY* signer) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_pubkey(req.get(), key);
  X509_REQ_sign(req.get(), signer, EVP_sha256());
  return req;
}

// The CSR with one bit of its signature flipped.
X509ReqPtr corruptSignature(X509_REQ* csr) {
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(csr, &der);
  std::vector<unsigned char> bytes(der, der + len);
  OPENSSL_free(der);
  bytes[bytes.size() - 2] ^= 0x01;  // inside the signature's last INTEGER
  const unsigned char* p = bytes.data();
  return X509ReqPtr(d2i_X509_REQ(nullptr, &p, static_cast<long>(bytes.size())));
}

// A CSR asking for much more than a workload gets: a subject, CA:TRUE, keyCertSign and SANs.
X509ReqPtr greedyCsr(EVP_PKEY* key) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_pubkey(req.get(), key);
  X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("admin"), -1, -1, 0);
  common::ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
  sk_X509_EXTENSION_push(
      exts.get(), X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE"));
  sk_X509_EXTENSION_push(exts.get(), X509V3_EXT_conf_nid(nullptr, nullptr, NID_key_usage,
                                                         "critical,keyCertSign,cRLSign"));
  auto names = common::makeGeneralNames({"spiffe://ca.test/admin"}, {"admin.example"});
  sk_X509_EXTENSION_push(exts.get(), X509V3_EXT_i2d(NID_subject_alt_name, 0, names->get()));
  X509_REQ_add_extensions(req.get(), exts.get());
  X509_REQ_sign(req.get(), key, EVP_sha256());
  return req;
}

BundleSet bundleOf(const CertificateAuthority& ca) {
  BundleSet bundles;
  for (const X509Ptr& root : ca.roots()) {
    bundles.add(ca.trustDomain(), common::share(root.get()));
  }
  return bundles;
}

std::vector<X509*> raw(const std::vector<X509Ptr>& certs) {
  std::vector<X509*> out;
  for (const X509Ptr& c : certs) {
    out.push_back(c.get());
  }
  return out;
}

// The issued leaf checked by our own verifier against `roots_of`'s trust bundle at `at`.
Result<common::VerifiedSvid> verifyIssued(const IssuedCertificate& issued,
                                          const CertificateAuthority& roots_of, std::time_t at) {
  return common::verifySvid(issued.certificate.get(), raw(issued.intermediates), bundleOf(roots_of),
                            {at, std::nullopt});
}

std::string subjectOf(X509* cert) {
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

bool critical(X509* cert, int nid) {
  int i = X509_get_ext_by_NID(cert, nid, -1);
  return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, i)) == 1;
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return 0;
  }
  return st.st_mode & 07777;
}

// What X509-SVID sections 3.2, 4.1 and 4.3 want of a signing certificate made here.
void expectSigningCertificate(X509* cert, const std::string& trust_domain) {
  // "the SPIFFE ID of a signing certificate MUST NOT have a path component" (3.2)
  EXPECT_EQ(common::uriSans(cert), std::vector<std::string>{"spiffe://" + trust_domain});
  const uint32_t flags = X509_get_extension_flags(cert);
  EXPECT_TRUE(flags & EXFLAG_CA) << "CA:TRUE";
  EXPECT_TRUE(critical(cert, NID_basic_constraints));
  EXPECT_TRUE(flags & EXFLAG_KUSAGE);
  EXPECT_TRUE(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN);
  EXPECT_FALSE(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE);
  EXPECT_TRUE(critical(cert, NID_key_usage)) << "4.3: key usage MUST be marked critical";
  EXPECT_NE(X509_get0_subject_key_id(cert), nullptr);
}

CaInitOptions initOptions(bool intermediate = false) {
  CaInitOptions options;
  options.trust_domain = kTd;
  options.intermediate = intermediate;
  options.now = kNow;
  return options;
}

IssueOptions at(std::time_t now) {
  IssueOptions options;
  options.now = now;
  return options;
}

CertificateAuthority mustCreate(const CaInitOptions& options) {
  auto ca = CertificateAuthority::create(options);
  if (!ca.ok()) {
    std::fprintf(stderr, "create: %s\n", ca.error().message.c_str());
    std::abort();
  }
  return std::move(*ca);
}

class CaTest : public ::testing::Test {
 protected:
  // Shared by the suites below; made once per process (RSA key generation is slow).
  static void SetUpTestSuite() {
    if (leaf_key_) {
      return;
    }
    leaf_key_ = common::test_certs::p256Key();
    other_key_ = common::test_certs::p256Key();
    root_ca_ = std::make_unique<CertificateAuthority>(mustCreate(initOptions()));
    intermediate_ca_ = std::make_unique<CertificateAuthority>(mustCreate(initOptions(true)));
  }
  // A leaf for workload() from `ca` at kNow; the test fails when signing does.
  static IssuedCertificate issue(const CertificateAuthority& ca, IssueOptions options = at(kNow),
                                 EVP_PKEY* key = nullptr) {
    X509ReqPtr csr = csrFor(key != nullptr ? key : leaf_key_.get(), {workload()});
    auto issued = ca.sign(csr.get(), spiffeId(workload()), options);
    if (!issued.ok()) {
      ADD_FAILURE() << "sign: " << issued.error().message;
      return {};
    }
    return std::move(*issued);
  }

  static inline EvpPkeyPtr leaf_key_;
  static inline EvpPkeyPtr other_key_;
  // RSA keys are slow to make: only the tests that use them pay, once.
  static EVP_PKEY* rsa2048() {
    static const EvpPkeyPtr key = common::test_certs::rsaKey(2048);
    return key.get();
  }
  static EVP_PKEY* rsa1024() {
    static const EvpPkeyPtr key = common::test_certs::rsaKey(1024);
    return key.get();
  }
  static inline std::unique_ptr<CertificateAuthority> root_ca_;
  static inline std::unique_ptr<CertificateAuthority> intermediate_ca_;
};

// ---- create ----

TEST_F(CaTest, CreateRootOnly) {
  const CertificateAuthority& ca = *root_ca_;
  EXPECT_EQ(ca.trustDomain(), kTd);
  ASSERT_EQ(ca.roots().size(), 1u);
  X509* root = ca.roots()[0].get();
  EXPECT_EQ(X509_cmp(ca.signingCertificate(), root), 0);
  EXPECT_TRUE(ca.chain().empty());
  expectSigningCertificate(root, kTd);
  EXPECT_EQ(X509_check_issued(root, root), X509_V_OK) << "self-signed";
  EXPECT_EQ(common::notBefore(root), kNow - kMinute);
  EXPECT_EQ(common::notAfter(root), kNow + 3650 * kDay);

  IssuedCertificate issued = issue(ca);
  ASSERT_NE(issued.certificate, nullptr);
  EXPECT_TRUE(issued.intermediates.empty());
  auto verified = verifyIssued(issued, ca, kNow);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->id.uri(), workload());
}

TEST_F(CaTest, CreateWithIntermediate) {
  const CertificateAuthority& ca = *intermediate_ca_;
  ASSERT_EQ(ca.roots().size(), 1u);
  X509* root = ca.roots()[0].get();
  X509* intermediate = ca.signingCertificate();
  EXPECT_NE(X509_cmp(intermediate, root), 0);
  EXPECT_TRUE(ca.chain().empty());  // nothing between the intermediate and the root
  expectSigningCertificate(root, kTd);
  expectSigningCertificate(intermediate, kTd);
  EXPECT_EQ(X509_check_issued(root, intermediate), X509_V_OK);
  EXPECT_EQ(X509_verify(intermediate, X509_get0_pubkey(root)), 1);
  EXPECT_LE(common::notAfter(intermediate), common::notAfter(root));

  IssuedCertificate issued = issue(ca);
  ASSERT_NE(issued.certificate, nullptr);
  ASSERT_EQ(issued.intermediates.size(), 1u);
  EXPECT_EQ(X509_cmp(issued.intermediates[0].get(), intermediate), 0);
  auto verified = verifyIssued(issued, ca, kNow);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->id.uri(), workload());

  // The leaf chains via the intermediate: without it there is no path to the root.
  auto alone = common::verifySvid(issued.certificate.get(), {}, bundleOf(ca), {kNow, {}});
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.error().message,
            str(common::kSvidChain) +
                X509_verify_cert_error_string(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
}

TEST_F(CaTest, CreateRefusesABadTrustDomain) {
  struct Case {
    std::string name;
    std::string input;
    std::string_view want_error;
  };
  const Case cases[] = {
      {"empty", "", policy::kSpiffeMissingTrustDomain},
      {"uppercase", "Ca.Test", policy::kSpiffeTrustDomainChars},
      {"port", "ca.test:443", policy::kSpiffePort},
      {"scheme", "spiffe://ca.test", policy::kSpiffePort},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    CaInitOptions options = initOptions();
    options.trust_domain = c.input;
    auto ca = CertificateAuthority::create(options);
    ASSERT_FALSE(ca.ok());
    EXPECT_EQ(ca.error().message, c.want_error);
  }
}

// ---- sign: what the CA, not the CSR, decides ----

TEST_F(CaTest, SignExactlyTheGivenIdWhateverTheCsrAsks) {
  struct Case {
    std::string name;
    X509ReqPtr csr;
  };
  Case cases[] = {
      {"CSR without SANs", csrFor(leaf_key_.get())},
      {"CSR asking for other IDs and DNS names",
       csrFor(leaf_key_.get(), {"spiffe://ca.test/admin", "spiffe://evil.test/x", workload()},
              {"evil.example"})},
      {"CSR asking for a subject, CA:TRUE and keyCertSign", greedyCsr(leaf_key_.get())},
  };
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto issued = root_ca_->sign(c.csr.get(), spiffeId(workload()), at(kNow));
    ASSERT_TRUE(issued.ok()) << issued.error().message;
    X509* leaf = issued->certificate.get();
    EXPECT_EQ(common::uriSans(leaf), std::vector<std::string>{workload()});
    EXPECT_TRUE(common::dnsSans(leaf).empty());
    EXPECT_EQ(subjectOf(leaf), "/O=palisade");
    EXPECT_FALSE(X509_get_extension_flags(leaf) & EXFLAG_CA);
    EXPECT_EQ(X509_get_key_usage(leaf), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf), leaf_key_.get()), 1);
    auto verified = verifyIssued(*issued, *root_ca_, kNow);
    ASSERT_TRUE(verified.ok()) << verified.error().message;
  }
}

TEST_F(CaTest, SignDnsSansOnlyWhenAsked) {
  IssuedCertificate plain = issue(*root_ca_);
  ASSERT_NE(plain.certificate, nullptr);
  EXPECT_TRUE(common::dnsSans(plain.certificate.get()).empty());

  IssueOptions options = at(kNow);
  options.dns_names = {"web.example.com", "*.web.example.com", "web"};
  IssuedCertificate gateway = issue(*root_ca_, options);
  ASSERT_NE(gateway.certificate, nullptr);
  X509* leaf = gateway.certificate.get();
  EXPECT_EQ(common::dnsSans(leaf), options.dns_names);
  EXPECT_EQ(common::uriSans(leaf), std::vector<std::string>{workload()});
  EXPECT_EQ(subjectOf(leaf), "/O=palisade/CN=web.example.com");
  auto verified = verifyIssued(gateway, *root_ca_, kNow);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
}

TEST_F(CaTest, SignLeafExtensions) {
  for (const CertificateAuthority* ca : {root_ca_.get(), intermediate_ca_.get()}) {
    SCOPED_TRACE(ca == root_ca_.get() ? "root signs" : "intermediate signs");
    IssuedCertificate issued = issue(*ca);
    X509* leaf = issued.certificate.get();
    ASSERT_NE(leaf, nullptr);
    const uint32_t flags = X509_get_extension_flags(leaf);
    // CA:FALSE, present and critical (4.1).
    EXPECT_TRUE(flags & EXFLAG_BCONS);
    EXPECT_FALSE(flags & EXFLAG_CA);
    EXPECT_TRUE(critical(leaf, NID_basic_constraints));
    // digitalSignature only for an EC key; critical (4.3).
    EXPECT_EQ(X509_get_key_usage(leaf), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
    EXPECT_TRUE(critical(leaf, NID_key_usage));
    // "When included, fields id-kp-serverAuth and id-kp-clientAuth MUST be set." (4.4)
    EXPECT_TRUE(flags & EXFLAG_XKUSAGE);
    EXPECT_EQ(X509_get_extended_key_usage(leaf),
              static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
    // SKI, and AKI whose keyid is the signer's SKI.
    const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(leaf);
    const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(leaf);
    const ASN1_OCTET_STRING* signer_ski = X509_get0_subject_key_id(ca->signingCertificate());
    ASSERT_NE(ski, nullptr);
    ASSERT_NE(aki, nullptr);
    ASSERT_NE(signer_ski, nullptr);
    EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, signer_ski), 0);
    EXPECT_NE(ASN1_OCTET_STRING_cmp(ski, signer_ski), 0);
    EXPECT_EQ(
        X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca->signingCertificate())),
        0);
    EXPECT_EQ(X509_get_version(leaf), X509_VERSION_3);
  }
}

TEST_F(CaTest, SignRsaKeyGetsKeyEncipherment) {
  IssuedCertificate issued = issue(*root_ca_, at(kNow), rsa2048());
  X509* leaf = issued.certificate.get();
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_get_key_usage(leaf),
            static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  EXPECT_TRUE(critical(leaf, NID_key_usage));
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf), rsa2048()), 1);
  auto verified = verifyIssued(issued, *root_ca_, kNow);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
}

TEST_F(CaTest, SignSerialIs128BitPositiveAndFresh) {
  std::set<std::string> seen;
  for (int i = 0; i < 16; ++i) {
    IssuedCertificate issued = issue(*root_ca_);
    ASSERT_NE(issued.certificate, nullptr);
    const ASN1_INTEGER* serial = X509_get0_serialNumber(issued.certificate.get());
    EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER) << "positive";
    EXPECT_EQ(ASN1_STRING_length(serial), 16) << "128 bits";
    EXPECT_TRUE(seen.insert(common::serialHex(issued.certificate.get())).second)
        << "serial repeated";
  }
}

TEST_F(CaTest, SignTtl) {
  struct Case {
    std::string name;
    std::optional<std::chrono::seconds> ttl;  // empty: the default
    std::time_t want_not_after;
    std::string want_error;
  };
  const Case cases[] = {
      {"default is 1h", std::nullopt, kNow + kHour, ""},
      {"1m is the minimum", std::chrono::seconds(60), kNow + kMinute, ""},
      {"24h", std::chrono::hours(24), kNow + kDay, ""},
      {"59s", std::chrono::seconds(59), 0, str(kCaTtlTooShort)},
      {"zero", std::chrono::seconds(0), 0, str(kCaTtlTooShort)},
      {"negative", std::chrono::seconds(-3600), 0, str(kCaTtlTooShort)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    IssueOptions options = at(kNow);
    if (c.ttl) {
      options.ttl = *c.ttl;
    }
    X509ReqPtr csr = csrFor(leaf_key_.get());
    auto issued = root_ca_->sign(csr.get(), spiffeId(workload()), options);
    if (!c.want_error.empty()) {
      ASSERT_FALSE(issued.ok());
      EXPECT_EQ(issued.error().message, c.want_error);
      continue;
    }
    ASSERT_TRUE(issued.ok()) << issued.error().message;
    EXPECT_EQ(common::notAfter(issued->certificate.get()), c.want_not_after);
    // Backdated a minute for clock skew.
    EXPECT_EQ(common::notBefore(issued->certificate.get()), kNow - kMinute);
  }
}

TEST_F(CaTest, SignTtlCappedAtTheCa) {
  for (bool intermediate : {false, true}) {
    SCOPED_TRACE(intermediate ? "with intermediate" : "root only");
    CaInitOptions init = initOptions(intermediate);
    init.root_ttl = std::chrono::hours(2);
    CertificateAuthority ca = mustCreate(init);
    ASSERT_EQ(common::notAfter(ca.signingCertificate()), kNow + 2 * kHour);

    IssuedCertificate capped = issue(ca, at(kNow + 90 * kMinute));
    ASSERT_NE(capped.certificate, nullptr);
    EXPECT_EQ(common::notAfter(capped.certificate.get()), kNow + 2 * kHour);
    auto verified = verifyIssued(capped, ca, kNow + 2 * kHour - 1);
    EXPECT_TRUE(verified.ok()) << verified.error().message;

    X509ReqPtr csr = csrFor(leaf_key_.get());
    auto late = ca.sign(csr.get(), spiffeId(workload()), at(kNow + 2 * kHour));
    ASSERT_FALSE(late.ok());
    EXPECT_EQ(late.error().message, kCaExpired);
  }
}

struct RefusalCase {
  std::string name;
  X509ReqPtr csr;
  std::string id;
  IssueOptions options;
  std::string want_error;
};

TEST_F(CaTest, SignRefusals) {
  X509ReqPtr good = csrFor(leaf_key_.get(), {workload()});
  EvpPkeyPtr ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(ed25519, nullptr);
  X509ReqPtr ed_csr(X509_REQ_new());
  X509_REQ_set_pubkey(ed_csr.get(), ed25519.get());
  ASSERT_GT(X509_REQ_sign(ed_csr.get(), ed25519.get(), nullptr), 0);
  auto dns = [](std::vector<std::string> names) {
    IssueOptions options = at(kNow);
    options.dns_names = std::move(names);
    return options;
  };
  const std::string label63(63, 'a');
  RefusalCase cases[] = {
      {"CSR signature corrupted", corruptSignature(good.get()), workload(), at(kNow),
       str(kCaCsrSignature)},
      {"CSR signed with another key", csrSignedByAnotherKey(leaf_key_.get(), other_key_.get()),
       workload(), at(kNow), str(kCaCsrSignature)},
      {"ID in another trust domain", csrFor(leaf_key_.get()), workload("other.test"), at(kNow),
       str(kCaWrongTrustDomain) + workload("other.test")},
      {"ID without path", csrFor(leaf_key_.get()), "spiffe://ca.test", at(kNow),
       str(kCaIdWithoutPath) + "spiffe://ca.test"},
      {"RSA 1024", csrFor(rsa1024()), workload(), at(kNow),
       str(kCaKeyType) + "RSA keys need at least 2048 bits"},
      {"Ed25519", std::move(ed_csr), workload(), at(kNow), str(kCaKeyType) + "use ECDSA or RSA"},
      {"underscore", csrFor(leaf_key_.get()), workload(), dns({"bad_name.example"}),
       str(kCaBadDnsName) + "bad_name.example"},
      {"empty", csrFor(leaf_key_.get()), workload(), dns({""}), str(kCaBadDnsName)},
      {"leading hyphen", csrFor(leaf_key_.get()), workload(), dns({"-a.example"}),
       str(kCaBadDnsName) + "-a.example"},
      {"trailing hyphen", csrFor(leaf_key_.get()), workload(), dns({"a-.example"}),
       str(kCaBadDnsName) + "a-.example"},
      {"empty label", csrFor(leaf_key_.get()), workload(), dns({"a..example"}),
       str(kCaBadDnsName) + "a..example"},
      {"trailing dot", csrFor(leaf_key_.get()), workload(), dns({"a.example."}),
       str(kCaBadDnsName) + "a.example."},
      {"wildcard not leftmost", csrFor(leaf_key_.get()), workload(), dns({"a.*.example"}),
       str(kCaBadDnsName) + "a.*.example"},
      {"two wildcards", csrFor(leaf_key_.get()), workload(), dns({"*.*.example"}),
       str(kCaBadDnsName) + "*.*.example"},
      {"bare wildcard", csrFor(leaf_key_.get()), workload(), dns({"*"}), str(kCaBadDnsName) + "*"},
      {"space", csrFor(leaf_key_.get()), workload(), dns({"a b.example"}),
       str(kCaBadDnsName) + "a b.example"},
      {"64-byte label", csrFor(leaf_key_.get()), workload(), dns({label63 + "a.example"}),
       str(kCaBadDnsName) + label63 + "a.example"},
      {"second name bad", csrFor(leaf_key_.get()), workload(), dns({"ok.example", "b@d"}),
       str(kCaBadDnsName) + "b@d"},
  };
  for (RefusalCase& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_NE(c.csr, nullptr);
    auto issued = root_ca_->sign(c.csr.get(), spiffeId(c.id), c.options);
    ASSERT_FALSE(issued.ok()) << "issued " << common::certificatePem(issued->certificate.get());
    EXPECT_EQ(issued.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(issued.error().message, c.want_error);
  }
}

// RFC 5480 section 2.1.1: specifiedCurve (explicit parameters) "MUST NOT be used in PKIX".
// The CA decides what a certificate says (ca.h), so it must not copy such a key into a leaf.
TEST_F(CaTest, SignRefusesExplicitEcParameters) {
  EvpPkeyPtr key = common::test_certs::p256Key();
  ASSERT_EQ(EVP_PKEY_set_utf8_string_param(key.get(), OSSL_PKEY_PARAM_EC_ENCODING,
                                           OSSL_PKEY_EC_ENCODING_EXPLICIT),
            1);
  X509ReqPtr csr = csrFor(key.get());
  auto issued = root_ca_->sign(csr.get(), spiffeId(workload()), at(kNow));
  if (issued.ok()) {
    auto verified = verifyIssued(*issued, *root_ca_, kNow);
    ADD_FAILURE() << "issued a leaf with explicit curve parameters; our verifier says: "
                  << (verified.ok() ? "ok" : verified.error().message);
    return;
  }
  EXPECT_TRUE(startsWith(issued.error().message, str(kCaKeyType))) << issued.error().message;
}

TEST_F(CaTest, SignAcceptsGoodDnsNames) {
  const std::string label63(63, 'a');
  // 253 bytes, the most a DNS name may have: three 63-byte labels and one of 61.
  const std::string long_name =
      label63 + "." + label63 + "." + label63 + "." + std::string(61, 'c');
  ASSERT_EQ(long_name.size(), 253u);
  for (const std::string& name :
       {std::string("a"), std::string("web.example.com"), std::string("*.example.com"),
        std::string("a-b.c-d.example"), std::string("xn--bcher-kva.example"),
        std::string("10.0.0.1"), label63 + ".example", long_name}) {
    SCOPED_TRACE(name);
    IssueOptions options = at(kNow);
    options.dns_names = {name};
    X509ReqPtr csr = csrFor(leaf_key_.get());
    auto issued = root_ca_->sign(csr.get(), spiffeId(workload()), options);
    ASSERT_TRUE(issued.ok()) << issued.error().message;
    EXPECT_EQ(common::dnsSans(issued->certificate.get()), std::vector<std::string>{name});
  }
  IssueOptions too_long = at(kNow);
  too_long.dns_names = {"b." + long_name};
  ASSERT_EQ(too_long.dns_names[0].size(), 255u);
  X509ReqPtr csr = csrFor(leaf_key_.get());
  auto issued = root_ca_->sign(csr.get(), spiffeId(workload()), too_long);
  ASSERT_FALSE(issued.ok());
  EXPECT_EQ(issued.error().message, str(kCaBadDnsName) + too_long.dns_names[0]);
}

// ---- import ----

// CA material made with the openssl command-line tool the way an operator would, once per
// suite (RSA key generation is the slow part).
class CaImportCliTest : public CaTest {
 protected:
  static void SetUpTestSuite() {
    CaTest::SetUpTestSuite();
    if (!common::test_env::haveOpensslCli()) {
      return;
    }
    dir_ = std::make_unique<TempDir>();
    const TempDir& d = *dir_;
    const std::string ca_ku = "keyUsage=critical,keyCertSign,cRLSign";
    const std::string int_ext =
        d.write("int.ext",
                "[v3_int]\nbasicConstraints=critical,CA:TRUE\n"
                "keyUsage=critical,digitalSignature,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n");
    const std::vector<std::vector<std::string>> commands = {
        // RSA, PKCS#8 key.
        {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d.file("rsa8.key"),
         "-out", d.file("rsa8.crt"), "-subj", "/O=Example/CN=Example RSA CA", "-days", "30",
         "-extensions", "v3_ca", "-addext", ca_ku},
        // The same key, openssl.cnf's v3_ca as it is: no keyUsage extension.
        {"openssl", "req", "-x509", "-new", "-key", d.file("rsa8.key"), "-out", d.file("noku.crt"),
         "-subj", "/CN=CA without keyUsage", "-days", "30", "-extensions", "v3_ca"},
        // EC, SEC1 key ("EC PARAMETERS" then "EC PRIVATE KEY"), SPIFFE ID in the certificate.
        {"openssl", "ecparam", "-genkey", "-name", "prime256v1", "-out", d.file("ec.key")},
        {"openssl", "req", "-x509", "-new", "-key", d.file("ec.key"), "-out", d.file("ec.crt"),
         "-subj", "/CN=EC CA", "-days", "30", "-extensions", "v3_ca", "-addext", ca_ku, "-addext",
         "subjectAltName=URI:spiffe://ec.example"},
        // RSA, PKCS#1 key: the same key rewritten as "openssl genrsa -traditional" writes it
        // (RSA key generation is the slow part of this suite).
        {"openssl", "pkey", "-in", d.file("rsa8.key"), "-traditional", "-out", d.file("rsa1.key")},
        {"openssl", "req", "-x509", "-new", "-key", d.file("rsa1.key"), "-out", d.file("rsa1.crt"),
         "-subj", "/CN=PKCS1 CA", "-days", "30", "-extensions", "v3_ca", "-addext", ca_ku},
        // Vault-like: an intermediate signed by an offline root.
        {"openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out",
         d.file("vroot.key")},
        {"openssl", "req", "-x509", "-new", "-key", d.file("vroot.key"), "-out",
         d.file("vroot.crt"), "-subj", "/CN=Vault Root", "-days", "30", "-extensions", "v3_ca",
         "-addext", ca_ku},
        {"openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out",
         d.file("vint.key")},
        {"openssl", "req", "-new", "-key", d.file("vint.key"), "-subj", "/CN=Vault Intermediate",
         "-out", d.file("vint.csr")},
        {"openssl", "x509", "-req", "-in", d.file("vint.csr"), "-CA", d.file("vroot.crt"), "-CAkey",
         d.file("vroot.key"), "-set_serial", "0x1234", "-days", "20", "-extfile", int_ext,
         "-extensions", "v3_int", "-out", d.file("vint.crt")},
    };
    for (const auto& argv : commands) {
      CommandResult r = runCommand(argv);
      if (r.exit_code != 0) {
        setup_error_ += argv[1] + " " + argv.back() + ": " + r.output + "\n";
      }
    }
    // After the certificates exist: the CLI started their validity at its own clock.
    now_ = std::time(nullptr);
  }
  static void TearDownTestSuite() { dir_.reset(); }

  void SetUp() override {
    if (!common::test_env::haveOpensslCli()) {
      GTEST_SKIP() << "the openssl command-line tool is not installed";
    }
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static std::string read(const std::string& name) {
    auto text = common::readFile(dir_->file(name));
    return text.ok() ? *text : "";
  }

  // Imports, issues a leaf for `id` at now_ and verifies it against the CA's own roots.
  static void importAndIssue(const std::string& cert_pem, const std::string& key_pem,
                             const std::optional<std::string>& option,
                             const std::string& want_trust_domain) {
    auto ca = CertificateAuthority::import(cert_pem, key_pem, option, now_);
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    EXPECT_EQ(ca->trustDomain(), want_trust_domain);
    const std::string id = workload(want_trust_domain);
    X509ReqPtr csr = csrFor(leaf_key_.get(), {id});
    auto issued = ca->sign(csr.get(), spiffeId(id), at(now_));
    ASSERT_TRUE(issued.ok()) << issued.error().message;
    EXPECT_EQ(X509_verify(issued->certificate.get(), X509_get0_pubkey(ca->signingCertificate())),
              1);
    auto verified = verifyIssued(*issued, *ca, now_);
    ASSERT_TRUE(verified.ok()) << verified.error().message;
    EXPECT_EQ(verified->id.uri(), id);
  }

  static inline std::unique_ptr<TempDir> dir_;
  static inline std::time_t now_ = 0;
  static inline std::string setup_error_;
};

TEST_F(CaImportCliTest, RsaWithPkcs8Key) {
  const std::string key = read("rsa8.key");
  ASSERT_TRUE(startsWith(key, "-----BEGIN PRIVATE KEY-----")) << key.substr(0, 40);
  importAndIssue(read("rsa8.crt"), key, std::nullopt, "cluster.local");
}

TEST_F(CaImportCliTest, EcWithSec1Key) {
  const std::string key = read("ec.key");
  ASSERT_TRUE(startsWith(key, "-----BEGIN EC PARAMETERS-----")) << key.substr(0, 40);
  ASSERT_NE(key.find("-----BEGIN EC PRIVATE KEY-----"), std::string::npos);
  // The certificate's SPIFFE ID wins over the option.
  importAndIssue(read("ec.crt"), key, "option.example", "ec.example");
}

TEST_F(CaImportCliTest, RsaWithPkcs1Key) {
  const std::string key = read("rsa1.key");
  ASSERT_TRUE(startsWith(key, "-----BEGIN RSA PRIVATE KEY-----")) << key.substr(0, 40);
  importAndIssue(read("rsa1.crt"), key, "option.example", "option.example");
}

TEST_F(CaImportCliTest, VaultLikeIntermediateWithItsRoot) {
  const std::string cert_pem = read("vint.crt") + read("vroot.crt");
  importAndIssue(cert_pem, read("vint.key"), "vault.example", "vault.example");
  auto ca = CertificateAuthority::import(cert_pem, read("vint.key"), "vault.example", now_);
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  ASSERT_EQ(ca->roots().size(), 1u);
  EXPECT_EQ(subjectOf(ca->roots()[0].get()), "/CN=Vault Root");
  EXPECT_EQ(subjectOf(ca->signingCertificate()), "/CN=Vault Intermediate");
  EXPECT_TRUE(ca->chain().empty());
  X509ReqPtr csr = csrFor(leaf_key_.get());
  auto leaf = ca->sign(csr.get(), spiffeId(workload("vault.example")), at(now_));
  ASSERT_TRUE(leaf.ok()) << leaf.error().message;
  ASSERT_EQ(leaf->intermediates.size(), 1u);
  EXPECT_EQ(subjectOf(leaf->intermediates[0].get()), "/CN=Vault Intermediate");

  // The same through the openssl CLI: the leaf verifies with the root as the only trust.
  const std::string leaf_path =
      dir_->write("vleaf.pem", common::certificatePem(leaf->certificate.get()));
  CommandResult r =
      runCommand({"openssl", "verify", "-x509_strict", "-CAfile", dir_->file("vroot.crt"),
                  "-untrusted", dir_->file("vint.crt"), leaf_path});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// openssl.cnf's v3_ca has no keyUsage, so a CA made by following the openssl manual carries
// none. X509-SVID 4.3: "The key usage extension MUST be set on all SVIDs" and "SVID signing
// certificates MUST set keyCertSign". Whatever import() decides, it must not accept a CA whose
// leaves our own verifier then refuses: either import refuses it (kCaImportNoKeyCertSign) or
// the leaves it issues verify.
TEST_F(CaImportCliTest, CaWithoutKeyUsageIsRefusedOrIssuesLeavesThatVerify) {
  auto ca = CertificateAuthority::import(read("noku.crt"), read("rsa8.key"), std::nullopt, now_);
  if (!ca.ok()) {
    EXPECT_EQ(ca.error().message, kCaImportNoKeyCertSign);
    return;
  }
  X509ReqPtr csr = csrFor(leaf_key_.get());
  auto issued = ca->sign(csr.get(), spiffeId(workload("cluster.local")), at(now_));
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  auto verified = verifyIssued(*issued, *ca, now_);
  EXPECT_TRUE(verified.ok()) << "import accepted the CA, but its leaf does not verify: "
                             << verified.error().message;
}

// Import refusals, with CA material from the fixture factory (pinned to kNow).
class CaImportTest : public CaTest {
 protected:
  static void SetUpTestSuite() {
    CaTest::SetUpTestSuite();
    root_ = std::make_unique<Credential>(
        common::test_certs::makeCredential(plainCa("Import Root"), nullptr));
    intermediate_ = std::make_unique<Credential>(
        common::test_certs::makeCredential(plainCa("Import Intermediate"), root_.get()));
  }
  static void TearDownTestSuite() {
    intermediate_.reset();
    root_.reset();
  }

  // A CA certificate without a SPIFFE ID, as most existing PKIs make them.
  static CertSpec plainCa(const std::string& cn) {
    CertSpec spec = common::test_certs::caSpec("unused", cn);
    spec.uris.clear();
    return spec;
  }

  static inline std::unique_ptr<Credential> root_;
  static inline std::unique_ptr<Credential> intermediate_;
};

struct ImportCase {
  std::string name;
  std::string cert_pem;
  std::string key_pem;
  std::optional<std::string> trust_domain;
  std::time_t now;
  std::string want;        // the trust domain, when want_error is empty
  std::string want_error;  // exact, or a prefix when it ends with ": "
};

TEST_F(CaImportTest, TrustDomainAndRefusals) {
  using common::test_certs::makeCredential;
  Credential leaf =
      makeCredential(common::test_certs::leafSpec("spiffe://td.example/w"), root_.get());
  CertSpec no_cert_sign_spec = plainCa("No keyCertSign");
  no_cert_sign_spec.key_usage = "critical,digitalSignature,cRLSign";
  Credential no_cert_sign = makeCredential(no_cert_sign_spec, nullptr);
  Credential with_id = makeCredential(common::test_certs::caSpec("id.example", "ID CA"), nullptr);
  Credential second = makeCredential(plainCa("Second Intermediate"), intermediate_.get());
  const std::string root = root_->certPem();
  const std::string root_key = root_->keyPem();
  const std::string int_chain = intermediate_->certPem() + root;
  const ImportCase cases[] = {
      {"SPIFFE ID of the certificate", with_id.certPem(), with_id.keyPem(), std::nullopt, kNow,
       "id.example", ""},
      {"certificate's ID beats the option", with_id.certPem(), with_id.keyPem(), "opt.example",
       kNow, "id.example", ""},
      {"option", root, root_key, "opt.example", kNow, "opt.example", ""},
      {"default", root, root_key, std::nullopt, kNow, "cluster.local", ""},
      {"intermediate with its root", int_chain, intermediate_->keyPem(), std::nullopt, kNow,
       "cluster.local", ""},
      {"a leaf is not a CA", leaf.certPem(), leaf.keyPem(), std::nullopt, kNow, "",
       str(kCaImportNotCa)},
      {"CA without keyCertSign", no_cert_sign.certPem(), no_cert_sign.keyPem(), std::nullopt, kNow,
       "", str(kCaImportNoKeyCertSign)},
      {"key of another CA", root, intermediate_->keyPem(), std::nullopt, kNow, "",
       str(kCaImportKeyMismatch)},
      {"intermediate without its root", intermediate_->certPem(), intermediate_->keyPem(),
       std::nullopt, kNow, "", str(kCaImportNoRoot)},
      {"two intermediates, no root", second.certPem() + intermediate_->certPem(), second.keyPem(),
       std::nullopt, kNow, "", str(kCaImportNoRoot)},
      {"expired CA", root, root_key, std::nullopt, kNow + 366 * kDay, "", str(kCaExpired)},
      {"CA expiring now", root, root_key, std::nullopt, common::notAfter(root_->cert.get()), "",
       str(kCaExpired)},
      {"bad trust domain option", root, root_key, "Bad.Example", kNow, "",
       str(policy::kSpiffeTrustDomainChars)},
      {"certificate not PEM", "junk", root_key, std::nullopt, kNow, "", "ca import: certificate: "},
      {"key not PEM", root, "junk", std::nullopt, kNow, "", "ca import: private key: "},
  };
  for (const ImportCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto ca = CertificateAuthority::import(c.cert_pem, c.key_pem, c.trust_domain, c.now);
    if (!c.want_error.empty()) {
      ASSERT_FALSE(ca.ok()) << "imported for " << ca->trustDomain();
      if (c.want_error.ends_with(": ")) {
        EXPECT_TRUE(startsWith(ca.error().message, c.want_error)) << ca.error().message;
      } else {
        EXPECT_EQ(ca.error().message, c.want_error);
      }
      continue;
    }
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    EXPECT_EQ(ca->trustDomain(), c.want);
  }
}

TEST_F(CaImportTest, LongerChain) {
  Credential second =
      common::test_certs::makeCredential(plainCa("Second Intermediate"), intermediate_.get());
  auto ca =
      CertificateAuthority::import(second.certPem() + intermediate_->certPem() + root_->certPem(),
                                   second.keyPem(), "chain.example", kNow);
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  ASSERT_EQ(ca->chain().size(), 1u);
  EXPECT_EQ(X509_cmp(ca->chain()[0].get(), intermediate_->cert.get()), 0);
  ASSERT_EQ(ca->roots().size(), 1u);
  EXPECT_EQ(X509_cmp(ca->roots()[0].get(), root_->cert.get()), 0);
  X509ReqPtr csr = csrFor(leaf_key_.get());
  auto issued = ca->sign(csr.get(), spiffeId(workload("chain.example")), at(kNow));
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  ASSERT_EQ(issued->intermediates.size(), 2u);
  EXPECT_EQ(X509_cmp(issued->intermediates[0].get(), second.cert.get()), 0);
  EXPECT_EQ(X509_cmp(issued->intermediates[1].get(), intermediate_->cert.get()), 0);
  auto verified = verifyIssued(*issued, *ca, kNow);
  EXPECT_TRUE(verified.ok()) << verified.error().message;
}

// An intermediate filed with somebody else's root: the CA could never issue a leaf that
// verifies against its own trust bundle. Either import refuses, or the leaves verify.
TEST_F(CaImportTest, IntermediateWithAnUnrelatedRootIsRefusedOrVerifies) {
  Credential stranger = common::test_certs::makeCredential(plainCa("Unrelated Root"), nullptr);
  auto ca = CertificateAuthority::import(intermediate_->certPem() + stranger.certPem(),
                                         intermediate_->keyPem(), std::nullopt, kNow);
  if (!ca.ok()) {
    SUCCEED() << "refused: " << ca.error().message;
    return;
  }
  X509ReqPtr csr = csrFor(leaf_key_.get());
  auto issued = ca->sign(csr.get(), spiffeId(workload("cluster.local")), at(kNow));
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  auto verified = verifyIssued(*issued, *ca, kNow);
  EXPECT_TRUE(verified.ok()) << "import accepted the chain, but its leaf does not verify: "
                             << verified.error().message;
}

// "Never outlive the issuer: the certificate ends with the shortest-lived CA above it"
// (ca.cc). An imported intermediate may outlive its root; the root is above the leaf too.
TEST_F(CaImportTest, LeafTtlCappedAtTheImportedRoot) {
  CertSpec short_root_spec = plainCa("Short Root");
  short_root_spec.not_after = kNow + 2 * kHour;
  Credential short_root = common::test_certs::makeCredential(short_root_spec, nullptr);
  CertSpec long_int_spec = plainCa("Long Intermediate");
  long_int_spec.not_after = kNow + 10 * kDay;
  Credential long_int = common::test_certs::makeCredential(long_int_spec, &short_root);
  auto ca = CertificateAuthority::import(long_int.certPem() + short_root.certPem(),
                                         long_int.keyPem(), std::nullopt, kNow);
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  X509ReqPtr csr = csrFor(leaf_key_.get());
  auto issued = ca->sign(csr.get(), spiffeId(workload("cluster.local")), at(kNow + 90 * kMinute));
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  EXPECT_EQ(common::notAfter(issued->certificate.get()), kNow + 2 * kHour)
      << "leaf ends at " << common::formatTime(common::notAfter(issued->certificate.get()))
      << ", its root at " << common::formatTime(kNow + 2 * kHour);
}

// ---- save / load ----

TEST_F(CaTest, SaveLoadRoundTrip) {
  for (const CertificateAuthority* ca : {root_ca_.get(), intermediate_ca_.get()}) {
    const bool intermediate = ca == intermediate_ca_.get();
    SCOPED_TRACE(intermediate ? "with intermediate" : "root only");
    TempDir dir;
    const std::string path = dir.file("ca");
    ASSERT_TRUE(ca->save(path).ok());
    std::vector<std::string> want_files = {"ca-chain.pem", "ca.crt",   "ca.key",
                                           "revoked",      "root.crt", "trust-domain"};
    if (intermediate) {
      want_files.insert(want_files.begin() + 5, "root.key");
    }
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(path)) {
      files.push_back(e.path().filename().string());
    }
    std::sort(files.begin(), files.end());
    EXPECT_EQ(files, want_files) << "and no temporary file left";
    EXPECT_EQ(modeOf(path + "/ca.key"), 0600u);
    if (intermediate) {
      EXPECT_EQ(modeOf(path + "/root.key"), 0600u);
    }
    ASSERT_TRUE(ca->save(path).ok()) << "saving again over the same directory";

    auto loaded = CertificateAuthority::load(path);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_EQ(loaded->trustDomain(), ca->trustDomain());
    EXPECT_EQ(X509_cmp(loaded->signingCertificate(), ca->signingCertificate()), 0);
    ASSERT_EQ(loaded->roots().size(), ca->roots().size());
    EXPECT_EQ(X509_cmp(loaded->roots()[0].get(), ca->roots()[0].get()), 0);
    EXPECT_EQ(loaded->chain().size(), ca->chain().size());
    // The loaded CA signs leaves that verify against the roots of the one that was saved.
    IssuedCertificate issued = issue(*loaded);
    ASSERT_NE(issued.certificate, nullptr);
    auto verified = verifyIssued(issued, *ca, kNow);
    ASSERT_TRUE(verified.ok()) << verified.error().message;
  }
}

TEST_F(CaImportTest, SaveLoadKeepsTheChain) {
  Credential second =
      common::test_certs::makeCredential(plainCa("Second Intermediate"), intermediate_.get());
  auto ca =
      CertificateAuthority::import(second.certPem() + intermediate_->certPem() + root_->certPem(),
                                   second.keyPem(), std::nullopt, kNow);
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  TempDir dir;
  ASSERT_TRUE(ca->save(dir.path()).ok());
  EXPECT_EQ(modeOf(dir.file("ca.key")), 0600u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("root.key"))) << "the root's key is not ours";
  auto loaded = CertificateAuthority::load(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->chain().size(), 1u);
  EXPECT_EQ(X509_cmp(loaded->chain()[0].get(), intermediate_->cert.get()), 0);
  X509ReqPtr csr = csrFor(leaf_key_.get());
  auto issued = loaded->sign(csr.get(), spiffeId(workload("cluster.local")), at(kNow));
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  EXPECT_EQ(issued->intermediates.size(), 2u);
  auto verified = verifyIssued(*issued, *ca, kNow);
  EXPECT_TRUE(verified.ok()) << verified.error().message;
}

TEST_F(CaTest, LoadFromAMissingDirectory) {
  TempDir dir;
  auto ca = CertificateAuthority::load(dir.file("absent"));
  ASSERT_FALSE(ca.ok());
  EXPECT_EQ(ca.error().code, ErrorCode::kIo);
  EXPECT_TRUE(startsWith(ca.error().message, "ca: ")) << ca.error().message;
}

// ---- revoke / crl ----

TEST_F(CaTest, RevokeCanonicalSerials) {
  CertificateAuthority ca = mustCreate(initOptions());
  IssuedCertificate issued = issue(ca);
  const std::string serial = common::serialHex(issued.certificate.get());
  ASSERT_TRUE(ca.revoke(serial, kNow).ok());
  ASSERT_TRUE(ca.revoke("00abcdef", kNow + 1).ok());
  ASSERT_TRUE(ca.revoke("ABCDEF", kNow + 2).ok()) << "the same serial again";
  std::string lower = serial;
  for (char& ch : lower) {
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  ASSERT_TRUE(ca.revoke(lower, kNow + 3).ok());
  ASSERT_EQ(ca.revoked().size(), 2u);
  EXPECT_EQ(ca.revoked()[0].serial, serial);
  EXPECT_EQ(ca.revoked()[0].when, kNow);
  EXPECT_EQ(ca.revoked()[1].serial, "ABCDEF");
  EXPECT_EQ(ca.revoked()[1].when, kNow + 1);
}

TEST_F(CaTest, RevokeRefusesBadSerials) {
  CertificateAuthority ca = mustCreate(initOptions());
  const std::string forty(40, 'f');
  ASSERT_TRUE(ca.revoke(forty, kNow).ok()) << "20 octets is the RFC 5280 maximum";
  for (const std::string& bad :
       {std::string(""), std::string("xyz"), std::string("0x1A"), std::string("12 34"),
        std::string("-1"), std::string("1A:2B"), forty + "f"}) {
    SCOPED_TRACE("\"" + bad + "\"");
    Status s = ca.revoke(bad, kNow);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().message, str(kCaBadSerial) + bad);
  }
  EXPECT_EQ(ca.revoked().size(), 1u);
}

// The CRL checked with the C API and with the openssl CLI ("openssl crl -verify", and
// "openssl verify -crl_check", which must call the revoked leaf revoked).
void checkCrl(const CertificateAuthority& ca, const std::vector<IssuedCertificate*>& revoked,
              const IssuedCertificate& kept, std::time_t at) {
  auto crl = ca.crl(at);
  ASSERT_TRUE(crl.ok()) << crl.error().message;
  X509_CRL* c = crl->get();
  EXPECT_EQ(X509_CRL_verify(c, X509_get0_pubkey(ca.signingCertificate())), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_CRL_get_issuer(c), X509_get_subject_name(ca.signingCertificate())),
            0);
  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_CRL_get0_lastUpdate(c), at), 0);
  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(c), at + 7 * kDay), 0);
  for (IssuedCertificate* r : revoked) {
    X509_REVOKED* entry = nullptr;
    EXPECT_EQ(X509_CRL_get0_by_cert(c, &entry, r->certificate.get()), 1);
  }
  X509_REVOKED* entry = nullptr;
  EXPECT_EQ(X509_CRL_get0_by_cert(c, &entry, kept.certificate.get()), 0);

  if (!common::test_env::haveOpensslCli()) {
    GTEST_SKIP() << "the openssl command-line tool is not installed";
  }
  TempDir dir;
  const std::string crl_path = dir.write("crl.pem", common::crlPem(c));
  const std::string root_path = dir.write("root.crt", common::certificatesPem(ca.roots()));
  // The CRL is signed by the signing certificate: the root, or the intermediate.
  const std::string issuer_path =
      dir.write("issuer.crt", common::certificatePem(ca.signingCertificate()));
  CommandResult text = runCommand({"openssl", "crl", "-in", crl_path, "-noout", "-text"});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  for (IssuedCertificate* r : revoked) {
    EXPECT_NE(text.output.find("Serial Number: " + common::serialHex(r->certificate.get())),
              std::string::npos)
        << text.output;
  }
  EXPECT_EQ(text.output.find("Serial Number: " + common::serialHex(kept.certificate.get())),
            std::string::npos);
  CommandResult verify =
      runCommand({"openssl", "crl", "-in", crl_path, "-CAfile", issuer_path, "-noout", "-verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find("verify OK"), std::string::npos) << verify.output;
  if (ca.chain().empty() && X509_cmp(ca.signingCertificate(), ca.roots()[0].get()) == 0) {
    CommandResult by_root =
        runCommand({"openssl", "crl", "-in", crl_path, "-CAfile", root_path, "-noout", "-verify"});
    EXPECT_NE(by_root.output.find("verify OK"), std::string::npos) << by_root.output;
  }

  // Path validation with the CRL at `at`: revoked leaves are refused, the others pass.
  auto leafVerify = [&](const IssuedCertificate& leaf) {
    const std::string leaf_path =
        dir.write("leaf.pem", common::certificatePem(leaf.certificate.get()));
    std::vector<std::string> argv = {"openssl", "verify",           "-crl_check",
                                     "-attime", std::to_string(at), "-CAfile",
                                     root_path, "-CRLfile",         crl_path};
    if (!leaf.intermediates.empty()) {
      argv.push_back("-untrusted");
      argv.push_back(dir.write("untrusted.pem", common::certificatesPem(leaf.intermediates)));
    }
    argv.push_back(leaf_path);
    return runCommand(argv);
  };
  for (IssuedCertificate* r : revoked) {
    CommandResult out = leafVerify(*r);
    EXPECT_NE(out.exit_code, 0) << out.output;
    EXPECT_NE(out.output.find("certificate revoked"), std::string::npos) << out.output;
  }
  CommandResult ok = leafVerify(kept);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

TEST_F(CaTest, CrlListsRevokedSerials) {
  for (bool intermediate : {false, true}) {
    SCOPED_TRACE(intermediate ? "with intermediate" : "root only");
    CertificateAuthority ca = mustCreate(initOptions(intermediate));
    IssuedCertificate a = issue(ca);
    IssuedCertificate b = issue(ca);
    IssuedCertificate kept = issue(ca);
    ASSERT_TRUE(ca.revoke(common::serialHex(a.certificate.get()), kNow).ok());
    ASSERT_TRUE(ca.revoke(common::serialHex(b.certificate.get()), kNow + 1).ok());
    checkCrl(ca, {&a, &b}, kept, kNow + 30 * kMinute);
  }
}

TEST_F(CaTest, EmptyCrlVerifies) {
  CertificateAuthority ca = mustCreate(initOptions());
  IssuedCertificate kept = issue(ca);
  checkCrl(ca, {}, kept, kNow);
  auto crl = ca.crl(kNow);
  ASSERT_TRUE(crl.ok());
  STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(crl->get());
  EXPECT_TRUE(entries == nullptr || sk_X509_REVOKED_num(entries) == 0);
}

TEST_F(CaTest, RevokedSurvivesSaveAndLoad) {
  CertificateAuthority ca = mustCreate(initOptions());
  IssuedCertificate revoked = issue(ca);
  IssuedCertificate kept = issue(ca);
  const std::string serial = common::serialHex(revoked.certificate.get());
  ASSERT_TRUE(ca.revoke(serial, kNow + 5).ok());
  TempDir dir;
  ASSERT_TRUE(ca.save(dir.path()).ok());
  auto loaded = CertificateAuthority::load(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->revoked().size(), 1u);
  EXPECT_EQ(loaded->revoked()[0].serial, serial);
  EXPECT_EQ(loaded->revoked()[0].when, kNow + 5);
  checkCrl(*loaded, {&revoked}, kept, kNow + 30 * kMinute);
}

}  // namespace
}  // namespace palisade::cp
