#include "common/x509_svid.h"

#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/trust_bundle.h"
#include "tests/mocks/common/cert_factory.h"

// verifySvid() against the X509-SVID standard (github.com/spiffe/spiffe,
// standards/X509-SVID.md; section numbers below are its) and the cases go-spiffe's verifier
// tests (v2/svid/x509svid/verify_test.go). One row per rule; the certificates are made at test
// time by tests/mocks/common/cert_factory.h and named for their defect.

namespace palisade::common {
namespace {

using test_certs::CertFactory;
using test_certs::CertSpec;
using test_certs::Credential;
using test_certs::kDay;
using test_certs::kHour;
using test_certs::kNow;

// A parsed chain: the leaf first, then what the peer sent as intermediates.
struct Chain {
  std::vector<X509Ptr> certs;

  X509* leaf() const { return certs.front().get(); }
  std::vector<X509*> intermediates() const {
    std::vector<X509*> out;
    for (std::size_t i = 1; i < certs.size(); ++i) {
      out.push_back(certs[i].get());
    }
    return out;
  }
};

Chain parseChain(const std::string& pem) {
  auto certs = parseCertificatesPem(pem);
  if (!certs.ok()) {
    ADD_FAILURE() << "fixture does not parse: " << certs.error().message;
    return {};
  }
  return Chain{std::move(*certs)};
}

X509Ptr parseOne(const std::string& pem) {
  Chain chain = parseChain(pem);
  return chain.certs.empty() ? nullptr : std::move(chain.certs.front());
}

// kSvidChain followed by OpenSSL's reason text for `code`.
std::string chainError(int code) {
  return std::string(kSvidChain) + X509_verify_cert_error_string(code);
}

std::string str(std::string_view s) { return std::string(s); }

class X509SvidTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    td1_ = std::make_unique<CertFactory>("td1.test");
    td2_ = std::make_unique<CertFactory>("td2.test");
    // The roots of both trust domains in one set (federation).
    bundles_ = std::make_unique<BundleSet>();
    bundles_->add("td1.test", share(td1_->root().cert.get()));
    bundles_->add("td2.test", share(td2_->root().cert.get()));
  }
  static void TearDownTestSuite() {
    bundles_.reset();
    td2_.reset();
    td1_.reset();
  }

  static inline std::unique_ptr<CertFactory> td1_;
  static inline std::unique_ptr<CertFactory> td2_;
  static inline std::unique_ptr<BundleSet> bundles_;
};

struct VerifyCase {
  std::string name;
  std::string input;       // PEM: the leaf, then the intermediates the peer sent
  std::string want;        // the SPIFFE ID, when want_error is empty
  std::string want_error;  // exact message
  VerifyOptions options = {kNow, std::nullopt};
};

void checkVerify(const VerifyCase& c, const BundleSet& bundles) {
  SCOPED_TRACE(c.name);
  Chain chain = parseChain(c.input);
  ASSERT_FALSE(chain.certs.empty());
  Result<VerifiedSvid> got = verifySvid(chain.leaf(), chain.intermediates(), bundles, c.options);
  if (!c.want_error.empty()) {
    ASSERT_FALSE(got.ok()) << "verified as " << got->id.uri();
    EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(got.error().message, c.want_error);
    return;
  }
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->id.uri(), c.want);
}

TEST_F(X509SvidTest, VerifySvidRules) {
  const CertFactory& f = *td1_;
  const std::string id = f.workloadId();
  const std::string bad_id = str(kSvidBadSpiffeId);
  const VerifyCase cases[] = {
      // Valid SVIDs.
      {"valid leaf signed by the root", f.validLeaf(), id, ""},
      {"valid leaf via an intermediate the peer sent", f.leafViaIntermediate(), id, ""},
      // "An X.509 SVID MAY contain any number of other SAN field types, including DNS SANs." (2)
      {"DNS SANs beside the URI SAN", f.leafWithDnsSans(), id, ""},
      // "They MAY set keyEncipherment and/or keyAgreement" (4.3)
      {"leaf with keyEncipherment and keyAgreement", f.leafWithEveryLeafKeyUsage(), id, ""},
      // "Leaf SVIDs SHOULD include this extension" (4.4): SHOULD, so its absence is valid.
      {"leaf without extended key usage", f.leafWithoutEku(), id, ""},
      {"leaf of td2 against td2's root", td2_->validLeaf(), td2_->workloadId(), ""},
      // RFC 5280 profile rules for issuers (AKI/SKI on every certificate) are not SPIFFE
      // validation rules: an SVID from a CA that omits them still verifies (as go-spiffe).
      {"leaf without key identifiers", [&] {
         test_certs::CertSpec spec = test_certs::leafSpec(id);
         spec.key_ids = false;
         return f.leaf(spec);
       }(),
       id, ""},

      // "An X.509 SVID MUST contain exactly one URI SAN" (2)
      {"no subjectAltName at all", f.leafWithoutSan(), "", str(kSvidNoUriSan)},
      {"DNS SAN only", f.leafDnsOnly(), "", str(kSvidNoUriSan)},
      {"two SPIFFE URI SANs", f.leafTwoUriSans(), "", str(kSvidManyUriSans)},
      {"a SPIFFE and an https URI SAN", f.leafSpiffeAndHttpsUris(), "", str(kSvidManyUriSans)},

      // "the validator ... MUST ensure that the scheme of the SPIFFE ID is set to spiffe" (5.2)
      {"http URI", f.leafHttpUri(), "", bad_id + str(policy::kSpiffeWrongScheme)},
      {"sparfe scheme (go-spiffe)", f.leafWrongScheme(), "",
       bad_id + str(policy::kSpiffeWrongScheme)},
      {"uppercase trust domain", f.leafUppercaseTrustDomain(), "",
       bad_id + str(policy::kSpiffeTrustDomainChars)},
      {"space and $ in the path", f.leafBadPathChars(), "", bad_id + str(policy::kSpiffePathChars)},
      // "Leaf certificate SPIFFE IDs MUST have a non-root path component." (3.1, 5.2)
      {"leaf ID without path", f.leafWithoutPath(), "", str(kSvidLeafWithoutPath)},

      // "the validator MUST ensure that the CA field in the basic constraints extension is set
      // to false, and that keyCertSign and cRLSign are not set in the key usage extension" (5.2)
      {"leaf is a CA", f.leafIsCa(), "", str(kSvidLeafIsCa)},
      {"leaf has keyCertSign", f.leafKeyCertSign(), "", str(kSvidLeafKeyCertSign)},
      {"leaf has cRLSign", f.leafCrlSign(), "", str(kSvidLeafCrlSign)},
      // "The key usage extension MUST be set on all SVIDs" and "Leaf SVIDs MUST set
      // digitalSignature." (4.3)
      {"leaf without keyUsage", f.leafWithoutKeyUsage(), "", str(kSvidLeafNoDigitalSignature)},
      {"leaf with keyEncipherment only", f.leafKeyEnciphermentOnly(), "",
       str(kSvidLeafNoDigitalSignature)},
      {"leaf with a duplicated extension", f.leafDuplicateBasicConstraints(), "",
       str(kSvidChain) + "leaf certificate has invalid extensions"},

      // Path validation per RFC 5280 (5.1).
      {"intermediate not sent", f.leafOfIntermediateAlone(), "",
       chainError(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)},
      {"self-signed leaf nobody trusts", f.selfSignedLeaf(), "",
       chainError(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)},
      {"expired leaf", f.leafExpired(), "", chainError(X509_V_ERR_CERT_HAS_EXPIRED)},
      {"leaf not yet valid", f.leafNotYetValid(), "", chainError(X509_V_ERR_CERT_NOT_YET_VALID)},
      {"valid leaf checked before its notBefore", f.validLeaf(), "",
       chainError(X509_V_ERR_CERT_NOT_YET_VALID), VerifyOptions{kNow - 2 * kHour, std::nullopt}},
      {"valid leaf checked after its notAfter", f.validLeaf(), "",
       chainError(X509_V_ERR_CERT_HAS_EXPIRED), VerifyOptions{kNow + 2 * kHour, std::nullopt}},

      // Bundles are looked up by the leaf's trust domain (STYLE.md), never another's.
      {"td2 leaf signed by td1's root", f.leafOfTrustDomain("td2.test"), "",
       chainError(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)},
      {"no bundle for the leaf's trust domain", f.leafOfTrustDomain("td3.test"), "",
       str(kSvidNoBundle) + "td3.test"},
      {"trust domain option matches", f.validLeaf(), id, "", VerifyOptions{kNow, "td1.test"}},
      {"trust domain option differs", f.validLeaf(), "",
       str(kSvidWrongTrustDomain) + "td1.test, expected td2.test", VerifyOptions{kNow, "td2.test"}},
  };
  for (const VerifyCase& c : cases) {
    checkVerify(c, *bundles_);
  }
}

// "Signing certificates MUST set the cA field to true" (4.1); "SVID signing certificates MUST
// set keyCertSign" (4.3). x509_svid.h gives each rule its constant (kSvidSignerNotCa,
// kSvidSignerNoKeyCertSign, followed by the signer's subject), so the message names the rule.
TEST_F(X509SvidTest, SigningCertificateRules) {
  const CertFactory& f = *td1_;
  const VerifyCase cases[] = {
      {"leaf SVID (CA:FALSE) signing a leaf", f.leafViaNonCaIntermediate(), "",
       str(kSvidSignerNotCa) + "/CN=not a CA"},
      {"intermediate without keyCertSign", f.leafViaIntermediateWithoutKeyCertSign(), "",
       str(kSvidSignerNoKeyCertSign) + "/CN=no keyCertSign"},
  };
  for (const VerifyCase& c : cases) {
    checkVerify(c, *bundles_);
  }
}

TEST_F(X509SvidTest, ExpiresIsTheEarliestNotAfterOfTheChain) {
  Chain leaf = parseChain(td1_->validLeaf());
  auto got = verifySvid(leaf.leaf(), {}, *bundles_, {kNow, std::nullopt});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->expires, notAfter(leaf.leaf()));
  EXPECT_EQ(got->expires, kNow + kHour);

  Chain outliving = parseChain(td1_->leafOutlivingIntermediate());
  got = verifySvid(outliving.leaf(), outliving.intermediates(), *bundles_, {kNow, std::nullopt});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->expires, td1_->shortIntermediateNotAfter());
}

// go-spiffe: "verification fails" puts another CA's roots under domain1's name.
TEST_F(X509SvidTest, AnotherCasRootsUnderThisTrustDomainAreNotTrust) {
  BundleSet wrong;
  wrong.add("td1.test", share(td2_->root().cert.get()));
  checkVerify({"td1 leaf, td2's root filed as td1", td1_->validLeaf(), "",
               chainError(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)},
              wrong);
  checkVerify({"empty bundle set", td1_->validLeaf(), "", str(kSvidNoBundle) + "td1.test"},
              BundleSet{});
}

// CA rotation: while the bundle holds the old and the new root (same subject, new key), leaves
// of both verify; once the old root leaves the bundle, its leaves stop verifying.
TEST_F(X509SvidTest, CaRotationOldAndNewRootsBothTrusted) {
  const CertFactory& old_ca = *td1_;
  CertFactory new_ca("td1.test");
  ASSERT_EQ(X509_NAME_cmp(X509_get_subject_name(old_ca.root().cert.get()),
                          X509_get_subject_name(new_ca.root().cert.get())),
            0);
  BundleSet both;
  ASSERT_TRUE(both.addPem(old_ca.rootPem() + new_ca.rootPem(), std::nullopt).ok());
  ASSERT_EQ(both.roots("td1.test")->size(), 2u);
  const std::string id = old_ca.workloadId();
  const VerifyCase cases[] = {
      {"leaf of the old root", old_ca.validLeaf(), id, ""},
      {"leaf of the new root", new_ca.validLeaf(), id, ""},
      {"leaf of the old intermediate", old_ca.leafViaIntermediate(), id, ""},
      {"leaf of the new intermediate", new_ca.leafViaIntermediate(), id, ""},
  };
  for (const VerifyCase& c : cases) {
    checkVerify(c, both);
  }
  BundleSet only_new;
  ASSERT_TRUE(only_new.addPem(new_ca.rootPem(), std::nullopt).ok());
  checkVerify({"old leaf after the old root is gone", old_ca.validLeaf(), "",
               chainError(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)},
              only_new);
  checkVerify({"new leaf after the old root is gone", new_ca.validLeaf(), id, ""}, only_new);
}

TEST_F(X509SvidTest, WithoutAtTheCurrentTimeIsUsed) {
  // Windows wide enough that today's date is inside (or after) them.
  const std::time_t y2000 = 946684800;
  CertSpec root_spec = test_certs::caSpec("clock.test", "clock root");
  root_spec.not_before = y2000;
  root_spec.not_after = y2000 + 100 * 365 * kDay;
  Credential root = test_certs::makeCredential(root_spec, nullptr);
  BundleSet bundles;
  bundles.add("clock.test", share(root.cert.get()));

  CertSpec current = test_certs::leafSpec("spiffe://clock.test/w");
  current.not_before = y2000;
  current.not_after = root_spec.not_after;
  CertSpec old = current;
  old.not_after = y2000 + kDay;
  Credential current_leaf = test_certs::makeCredential(current, &root);
  Credential old_leaf = test_certs::makeCredential(old, &root);
  checkVerify({"valid 2000 to 2100", current_leaf.certPem(), "spiffe://clock.test/w", "", {}},
              bundles);
  checkVerify(
      {"expired in 2000", old_leaf.certPem(), "", chainError(X509_V_ERR_CERT_HAS_EXPIRED), {}},
      bundles);
}

struct IdCase {
  std::string name;
  std::string input;  // a certificate
  std::string want;
  std::string want_error;
};

TEST_F(X509SvidTest, SpiffeIdOf) {
  const CertFactory& f = *td1_;
  const IdCase cases[] = {
      {"leaf", f.validLeaf(), f.workloadId(), ""},
      // No chain or leaf checks: a CA's trust domain ID and a CA:TRUE leaf are IDs too.
      {"trust domain ID of a root", f.rootPem(), "spiffe://td1.test", ""},
      {"leaf is a CA", f.leafIsCa(), f.workloadId(), ""},
      {"no SAN", f.leafWithoutSan(), "", str(kSvidNoUriSan)},
      {"DNS only", f.leafDnsOnly(), "", str(kSvidNoUriSan)},
      {"two URIs", f.leafTwoUriSans(), "", str(kSvidManyUriSans)},
      {"http", f.leafHttpUri(), "", str(kSvidBadSpiffeId) + str(policy::kSpiffeWrongScheme)},
  };
  for (const IdCase& c : cases) {
    SCOPED_TRACE(c.name);
    X509Ptr cert = parseOne(c.input);
    ASSERT_NE(cert, nullptr);
    auto got = spiffeIdOf(cert.get());
    if (!c.want_error.empty()) {
      ASSERT_FALSE(got.ok()) << got->uri();
      EXPECT_EQ(got.error().message, c.want_error);
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->uri(), c.want);
  }
}

TEST_F(X509SvidTest, UriAndDnsSansInOrder) {
  CertSpec spec = test_certs::leafSpec("spiffe://td1.test/a");
  spec.uris.push_back("https://b.example/");
  spec.dns = {"b.example", "a.example"};
  X509Ptr cert = parseOne(td1_->leaf(spec));
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(uriSans(cert.get()),
            (std::vector<std::string>{"spiffe://td1.test/a", "https://b.example/"}));
  EXPECT_EQ(dnsSans(cert.get()), (std::vector<std::string>{"b.example", "a.example"}));

  X509Ptr none = parseOne(td1_->leafWithoutSan());
  ASSERT_NE(none, nullptr);
  EXPECT_TRUE(uriSans(none.get()).empty());
  EXPECT_TRUE(dnsSans(none.get()).empty());
}

// VerifiedChainCache: keyed by the leaf's SHA-256, bounded, entries end at `expires`.
class VerifiedChainCacheTest : public X509SvidTest {
 protected:
  // A distinct leaf (new serial and signature) each call.
  static X509Ptr newLeaf() { return parseOne(td1_->validLeaf()); }
  static VerifiedSvid verified(const std::string& path, std::time_t expires) {
    auto id = policy::SpiffeId::parse("spiffe://td1.test" + path);
    EXPECT_TRUE(id.ok());
    return VerifiedSvid{*id, expires};
  }
};

TEST_F(VerifiedChainCacheTest, MissThenHit) {
  VerifiedChainCache cache(4);
  X509Ptr a = newLeaf();
  X509Ptr b = newLeaf();
  EXPECT_EQ(cache.find(a.get(), kNow), nullptr);
  auto inserted = cache.insert(a.get(), verified("/a", kNow + kHour));
  ASSERT_NE(inserted, nullptr);
  EXPECT_EQ(inserted->uri(), "spiffe://td1.test/a");
  EXPECT_EQ(cache.size(), 1u);
  auto hit = cache.find(a.get(), kNow);
  EXPECT_EQ(hit, inserted);  // the same snapshot, nothing copied
  EXPECT_EQ(cache.find(b.get(), kNow), nullptr);
  // The same certificate parsed again is the same key.
  X509Ptr a_again = parseOne(certificatePem(a.get()));
  EXPECT_EQ(cache.find(a_again.get(), kNow), inserted);
}

TEST_F(VerifiedChainCacheTest, EntryEndsAtExpires) {
  VerifiedChainCache cache(4);
  X509Ptr a = newLeaf();
  cache.insert(a.get(), verified("/a", kNow + kHour));
  EXPECT_NE(cache.find(a.get(), kNow + kHour - 1), nullptr);
  EXPECT_EQ(cache.find(a.get(), kNow + kHour), nullptr);
  EXPECT_EQ(cache.size(), 0u);  // dropped, not kept to be found again
  EXPECT_EQ(cache.find(a.get(), kNow), nullptr);
}

TEST_F(VerifiedChainCacheTest, InsertAgainReplaces) {
  VerifiedChainCache cache(4);
  X509Ptr a = newLeaf();
  cache.insert(a.get(), verified("/a", kNow + kHour));
  cache.insert(a.get(), verified("/a", kNow + 2 * kHour));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.find(a.get(), kNow + kHour), nullptr);
}

TEST_F(VerifiedChainCacheTest, LeastRecentlyUsedGoesFirst) {
  X509Ptr a = newLeaf();
  X509Ptr b = newLeaf();
  X509Ptr c = newLeaf();
  {
    SCOPED_TRACE("insertion order");
    VerifiedChainCache cache(2);
    cache.insert(a.get(), verified("/a", kNow + kHour));
    cache.insert(b.get(), verified("/b", kNow + kHour));
    cache.insert(c.get(), verified("/c", kNow + kHour));
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.find(a.get(), kNow), nullptr);
    EXPECT_NE(cache.find(b.get(), kNow), nullptr);
    EXPECT_NE(cache.find(c.get(), kNow), nullptr);
  }
  {
    SCOPED_TRACE("a find makes an entry recent");
    VerifiedChainCache cache(2);
    cache.insert(a.get(), verified("/a", kNow + kHour));
    cache.insert(b.get(), verified("/b", kNow + kHour));
    ASSERT_NE(cache.find(a.get(), kNow), nullptr);
    cache.insert(c.get(), verified("/c", kNow + kHour));
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.find(b.get(), kNow), nullptr);
    EXPECT_NE(cache.find(a.get(), kNow), nullptr);
    EXPECT_NE(cache.find(c.get(), kNow), nullptr);
  }
}

TEST_F(VerifiedChainCacheTest, CapacityZeroKeepsNothing) {
  VerifiedChainCache cache(0);
  X509Ptr a = newLeaf();
  auto id = cache.insert(a.get(), verified("/a", kNow + kHour));
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->uri(), "spiffe://td1.test/a");
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.find(a.get(), kNow), nullptr);
}

TEST_F(VerifiedChainCacheTest, Clear) {
  VerifiedChainCache cache(4);
  X509Ptr a = newLeaf();
  X509Ptr b = newLeaf();
  cache.insert(a.get(), verified("/a", kNow + kHour));
  cache.insert(b.get(), verified("/b", kNow + kHour));
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.find(a.get(), kNow), nullptr);
  EXPECT_EQ(cache.find(b.get(), kNow), nullptr);
  // Usable after a clear.
  cache.insert(a.get(), verified("/a", kNow + kHour));
  EXPECT_NE(cache.find(a.get(), kNow), nullptr);
}

// The cache works with what verifySvid returns.
TEST_F(VerifiedChainCacheTest, CachesAVerifiedChain) {
  Chain chain = parseChain(td1_->leafOutlivingIntermediate());
  auto verified = verifySvid(chain.leaf(), chain.intermediates(), *bundles_, {kNow, {}});
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  VerifiedChainCache cache(4);
  cache.insert(chain.leaf(), *verified);
  EXPECT_NE(cache.find(chain.leaf(), td1_->shortIntermediateNotAfter() - 1), nullptr);
  EXPECT_EQ(cache.find(chain.leaf(), td1_->shortIntermediateNotAfter()), nullptr);
}

}  // namespace
}  // namespace palisade::common
