#include "common/trust_bundle.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// BundleSet: roots filed by trust domain, from their SPIFFE ID or a default (the X509-SVID
// standard, section 3.2: "A signing certificate SHOULD itself be an SVID").

namespace palisade::common {
namespace {

using test_certs::CertFactory;
using test_certs::Credential;

const std::string kNoTrustDomain =
    "bundle: a root has no SPIFFE ID naming its trust domain; say which trust domain the bundle "
    "is for";

class BundleSetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    td1_ = std::make_unique<CertFactory>("td1.test");
    td2_ = std::make_unique<CertFactory>("td2.test");
    test_certs::CertSpec plain = test_certs::caSpec("unused", "root without SAN");
    plain.uris.clear();
    no_san_ = std::make_unique<Credential>(test_certs::makeCredential(plain, nullptr));
    test_certs::CertSpec https = test_certs::caSpec("unused", "root with https URI");
    https.uris = {"https://ca.example/"};
    https_ = std::make_unique<Credential>(test_certs::makeCredential(https, nullptr));
  }
  static void TearDownTestSuite() {
    https_.reset();
    no_san_.reset();
    td2_.reset();
    td1_.reset();
  }

  static inline std::unique_ptr<CertFactory> td1_;
  static inline std::unique_ptr<CertFactory> td2_;
  static inline std::unique_ptr<Credential> no_san_;
  static inline std::unique_ptr<Credential> https_;
};

struct AddPemCase {
  std::string name;
  std::string input;
  std::optional<std::string> default_trust_domain;
  // want: trust domain -> number of roots
  std::vector<std::pair<std::string, std::size_t>> want;
  std::string want_error;
};

TEST_F(BundleSetTest, AddPem) {
  const std::string td1 = td1_->rootPem();
  const std::string td2 = td2_->rootPem();
  const std::string no_san = no_san_->certPem();
  const AddPemCase cases[] = {
      {"SPIFFE ID names the trust domain", td1, std::nullopt, {{"td1.test", 1}}, ""},
      {"the ID wins over the default", td1, "other.test", {{"td1.test", 1}}, ""},
      {"two trust domains in one text",
       td1 + td2,
       std::nullopt,
       {{"td1.test", 1}, {"td2.test", 1}},
       ""},
      {"no SAN goes to the default", no_san, "legacy.test", {{"legacy.test", 1}}, ""},
      {"a non-SPIFFE URI goes to the default",
       https_->certPem(),
       "legacy.test",
       {{"legacy.test", 1}},
       ""},
      {"mixed",
       td1 + no_san + td2,
       "legacy.test",
       {{"legacy.test", 1}, {"td1.test", 1}, {"td2.test", 1}},
       ""},
      {"duplicate root skipped", td1 + td1, std::nullopt, {{"td1.test", 1}}, ""},
      {"no SAN and no default", no_san, std::nullopt, {}, kNoTrustDomain},
      {"non-SPIFFE URI and no default", https_->certPem(), std::nullopt, {}, kNoTrustDomain},
      {"not PEM", "junk", "td.test", {}, "certificate: "},
  };
  for (const AddPemCase& c : cases) {
    SCOPED_TRACE(c.name);
    BundleSet set;
    Status s = set.addPem(c.input, c.default_trust_domain);
    if (!c.want_error.empty()) {
      ASSERT_FALSE(s.ok());
      if (c.want_error.back() == ' ') {
        EXPECT_EQ(s.error().message.substr(0, c.want_error.size()), c.want_error)
            << s.error().message;
      } else {
        EXPECT_EQ(s.error().message, c.want_error);
      }
      continue;
    }
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::vector<std::string> want_domains;
    for (const auto& [td, n] : c.want) {
      want_domains.push_back(td);
      ASSERT_NE(set.roots(td), nullptr) << td;
      EXPECT_EQ(set.roots(td)->size(), n) << td;
      EXPECT_NE(set.store(td), nullptr) << td;
    }
    EXPECT_EQ(set.trustDomains(), want_domains);
    EXPECT_FALSE(set.empty());
  }
}

TEST_F(BundleSetTest, AddSkipsADuplicateAndKeepsRotatedRoots) {
  BundleSet set;
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.roots("td1.test"), nullptr);
  EXPECT_EQ(set.store("td1.test"), nullptr);
  set.add("td1.test", share(td1_->root().cert.get()));
  set.add("td1.test", share(td1_->root().cert.get()));
  ASSERT_NE(set.roots("td1.test"), nullptr);
  EXPECT_EQ(set.roots("td1.test")->size(), 1u);
  CertFactory rotated("td1.test");
  set.add("td1.test", share(rotated.root().cert.get()));
  EXPECT_EQ(set.roots("td1.test")->size(), 2u);
  EXPECT_EQ(set.roots("td2.test"), nullptr);
}

TEST_F(BundleSetTest, AddPemFile) {
  test_env::TempDir dir;
  const std::string path = dir.write("bundle.pem", td1_->rootPem() + no_san_->certPem());
  BundleSet set;
  ASSERT_TRUE(set.addPemFile(path, "legacy.test").ok());
  EXPECT_EQ(set.trustDomains(), (std::vector<std::string>{"legacy.test", "td1.test"}));

  BundleSet strict;
  Status s = strict.addPemFile(path, std::nullopt);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, path + ": " + kNoTrustDomain);

  Status missing = strict.addPemFile(dir.file("absent.pem"), std::nullopt);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
}

TEST_F(BundleSetTest, TrustDomainOfCa) {
  EXPECT_EQ(trustDomainOfCa(td1_->root().cert.get()), "td1.test");
  EXPECT_EQ(trustDomainOfCa(td2_->intermediate().cert.get()), "td2.test");
  EXPECT_EQ(trustDomainOfCa(no_san_->cert.get()), std::nullopt);
  EXPECT_EQ(trustDomainOfCa(https_->cert.get()), std::nullopt);
  test_certs::CertSpec two = test_certs::caSpec("td1.test", "two IDs");
  two.uris.push_back("spiffe://td2.test");
  Credential ambiguous = test_certs::makeCredential(two, nullptr);
  EXPECT_EQ(trustDomainOfCa(ambiguous.cert.get()), std::nullopt);
}

}  // namespace
}  // namespace palisade::common
