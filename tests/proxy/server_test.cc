#include "proxy/server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// The server's file watching (the fingerprint of what the bootstrap names) and its start-up
// load: a good bootstrap serves, a bad certificate, policy or service file is refused with
// what was wrong. run() (sockets, threads, signals) is left to the integration tests.

namespace palisade::proxy {
namespace {

namespace fs = std::filesystem;
using common::test_certs::aroundNow;
using common::test_certs::caSpec;
using common::test_certs::CertSpec;
using common::test_certs::Credential;
using common::test_certs::kDay;
using common::test_certs::kHour;
using common::test_certs::leafSpec;
using common::test_certs::makeCredential;
using common::test_env::TempDir;

// ---------------------------------------------------------------------------------------------
// fingerprintPath

class FingerprintTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.file("policies/sub"));
    dir_.write("policies/a.yaml", "aaaa\n");
    dir_.write("policies/sub/b.yaml", "bbbb\n");
    // Fixed mtimes, so a change is what the test makes and not the clock's granularity.
    for (const char* f : {"policies/a.yaml", "policies/sub/b.yaml"}) {
      fs::last_write_time(dir_.file(f), kT0);
    }
  }

  std::string fp() const { return fingerprintPath(dir_.file("policies")); }

  // An hour ago, on a whole second.
  static inline const fs::file_time_type kT0 = std::chrono::floor<std::chrono::seconds>(
      fs::file_time_type::clock::now() - std::chrono::hours(1));
  TempDir dir_;
};

TEST_F(FingerprintTest, SameWhenNothingChanged) {
  const std::string before = fp();
  EXPECT_FALSE(before.empty());
  EXPECT_EQ(fp(), before);
  // Reading a file changes nothing either.
  EXPECT_TRUE(common::readFile(dir_.file("policies/a.yaml")).ok());
  EXPECT_EQ(fp(), before);
}

TEST_F(FingerprintTest, ChangesWhenAFileIsAdded) {
  const std::string before = fp();
  dir_.write("policies/sub/c.yaml", "");
  EXPECT_NE(fp(), before);
}

TEST_F(FingerprintTest, ChangesWhenAFileIsRemoved) {
  const std::string before = fp();
  fs::remove(dir_.file("policies/sub/b.yaml"));
  EXPECT_NE(fp(), before);
}

TEST_F(FingerprintTest, ChangesWhenAFileIsModifiedInPlace) {
  const std::string before = fp();
  dir_.write("policies/a.yaml", "AAAA\n");  // same size, same inode
  fs::last_write_time(dir_.file("policies/a.yaml"), kT0 + std::chrono::seconds(1));
  EXPECT_NE(fp(), before) << "by the mtime";
}

TEST_F(FingerprintTest, ChangesWithinOneSecond) {
  const std::string before = fp();
  dir_.write("policies/a.yaml", "AAAA\n");
  fs::last_write_time(dir_.file("policies/a.yaml"), kT0 + std::chrono::milliseconds(1));
  EXPECT_NE(fp(), before) << "by the mtime's nanoseconds";
}

TEST_F(FingerprintTest, ChangesWhenTheSizeChanges) {
  const std::string before = fp();
  dir_.write("policies/sub/b.yaml", "bbbbbb\n");
  fs::last_write_time(dir_.file("policies/sub/b.yaml"), kT0);  // same mtime, same inode
  EXPECT_NE(fp(), before) << "by the size";
}

TEST_F(FingerprintTest, ChangesWhenAFileIsRenamedOver) {
  const std::string before = fp();
  // Written next to the directory, then renamed over the old file: the same name, size and
  // mtime, a new inode (how editors and `kubectl cp` replace files).
  const std::string tmp = dir_.write("a.yaml.tmp", "aaab\n");
  fs::last_write_time(tmp, kT0);
  fs::rename(tmp, dir_.file("policies/a.yaml"));
  EXPECT_NE(fp(), before) << "by the inode";
}

TEST_F(FingerprintTest, SeesAConfigMapSymlinkSwap) {
  // A mounted ConfigMap: files are links through ..data, which is swapped atomically.
  fs::create_directories(dir_.file("cm/..v1"));
  fs::create_directories(dir_.file("cm/..v2"));
  dir_.write("cm/..v1/p.yaml", "one\n");
  dir_.write("cm/..v2/p.yaml", "two\n");
  fs::create_directory_symlink("..v1", dir_.file("cm/..data"));
  fs::create_symlink("..data/p.yaml", dir_.file("cm/p.yaml"));
  const std::string before = fingerprintPath(dir_.file("cm/p.yaml"));
  const std::string dir_before = fingerprintPath(dir_.file("cm"));
  fs::create_directory_symlink("..v2", dir_.file("cm/..data_tmp"));
  fs::rename(dir_.file("cm/..data_tmp"), dir_.file("cm/..data"));
  EXPECT_NE(fingerprintPath(dir_.file("cm/p.yaml")), before);
  EXPECT_NE(fingerprintPath(dir_.file("cm")), dir_before);
}

TEST_F(FingerprintTest, FollowsDirectorySymlinks) {
  fs::create_directories(dir_.file("elsewhere"));
  dir_.write("elsewhere/c.yaml", "cccc\n");
  fs::last_write_time(dir_.file("elsewhere/c.yaml"), kT0);
  fs::create_directory_symlink("../elsewhere", dir_.file("policies/linked"));
  const std::string before = fp();
  dir_.write("elsewhere/c.yaml", "cccccc\n");
  EXPECT_NE(fp(), before);
}

TEST_F(FingerprintTest, AFileAloneAndAMissingPath) {
  const std::string file = dir_.file("policies/a.yaml");
  const std::string one = fingerprintPath(file);
  EXPECT_EQ(one.rfind(file + ":5:", 0), 0u) << one;
  EXPECT_EQ(fingerprintPath(file), one);
  fs::last_write_time(file, kT0 + std::chrono::seconds(5));
  EXPECT_NE(fingerprintPath(file), one);

  const std::string missing = fingerprintPath(dir_.file("nothing.yaml"));
  EXPECT_FALSE(missing.empty()) << "a missing file is a state too";
  dir_.write("nothing.yaml", "");
  EXPECT_NE(fingerprintPath(dir_.file("nothing.yaml")), missing) << "and its appearing a change";

  EXPECT_EQ(fingerprintPath(""), "");
}

// ---------------------------------------------------------------------------------------------
// Server::create

class ServerCreateTest : public ::testing::Test {
 protected:
  static constexpr const char* kId = "spiffe://example.org/ns/foo/sa/web";

  void SetUp() override {
    root_ =
        makeCredential(aroundNow(caSpec("example.org", "example.org root"), kDay, kDay), nullptr);
    leaf_spec_ = aroundNow(leafSpec(kId), kHour, kHour);
    leaf_ = makeCredential(leaf_spec_, &root_);
    config_.certificate_chain = dir_.write("chain.pem", leaf_.certPem());
    config_.private_key = dir_.write("key.pem", leaf_.keyPem());
    config_.trust_bundles.push_back({dir_.write("bundle.pem", root_.certPem()), std::nullopt, {}});
    config_.ns = "foo";
    config_.labels = {{"app", "web"}};
    fs::create_directories(dir_.file("policies"));
    dir_.write("policies/strict.yaml",
               "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
               "metadata: {name: strict, namespace: foo}\nspec: {mtls: {mode: STRICT}}\n");
    config_.policies = dir_.file("policies");
    fs::create_directories(dir_.file("services"));
    dir_.write("services/pg.yaml",
               "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
               "metadata: {name: pg, namespace: db}\nspec:\n"
               "  hosts: [postgres.db.svc.cluster.local]\n"
               "  ports: [{number: 5432, name: tcp, protocol: TCP}]\n"
               "  endpoints: [{address: 10.0.0.7, serviceAccount: pg}]\n");
    config_.services = dir_.file("services");
  }

  TempDir dir_;
  Credential root_;
  CertSpec leaf_spec_;
  Credential leaf_;
  BootstrapConfig config_;
};

TEST_F(ServerCreateTest, LoadsEverythingTheBootstrapNames) {
  auto s = Server::create(config_);
  ASSERT_TRUE(s.ok()) << s.error().message;
  Server& server = **s;
  EXPECT_TRUE(server.ready());

  const auto certs = nlohmann::json::parse(server.certs());
  ASSERT_EQ(certs["certificates"].size(), 1u);
  EXPECT_EQ(certs["certificates"][0]["spiffeId"], kId);
  EXPECT_EQ(certs["certificates"][0]["serialNumber"], common::serialHex(leaf_.cert.get()));
  EXPECT_EQ(certs["certificates"][0]["notAfter"], common::formatTime(leaf_spec_.not_after));

  const auto dump = nlohmann::json::parse(server.configDump());
  EXPECT_EQ(dump["workload"]["namespace"], "foo");
  EXPECT_EQ(dump["policies"]["mtlsMode"], "STRICT");
  ASSERT_EQ(dump["services"]["routes"].size(), 1u);
  const auto& route = dump["services"]["routes"][0];
  EXPECT_EQ(route["sni"], "outbound_.5432_._.postgres.db.svc.cluster.local");
  EXPECT_EQ(route["opaque"], true);
  EXPECT_EQ(route["endpoints"][0]["address"], "10.0.0.7:5432");
  EXPECT_EQ(route["endpoints"][0]["allowedIdentities"],
            nlohmann::json::array({"spiffe://example.org/ns/db/sa/pg"}))
      << "secure naming in our own trust domain";
  EXPECT_EQ(dump["limits"]["bufferLimit"], config_.limits.buffer_limit);
  EXPECT_EQ(dump["draining"], false);

  const std::string metrics = server.metrics();
  EXPECT_NE(metrics.find("palisade_policy_version 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("palisade_active_connections 0\n"), std::string::npos) << metrics;
}

TEST_F(ServerCreateTest, RefusesACertificateThatIsNotPem) {
  config_.certificate_chain = dir_.write("chain.pem", "not a certificate\n");
  auto s = Server::create(config_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("chain.pem"), std::string::npos) << s.error().message;
}

TEST_F(ServerCreateTest, RefusesAKeyOfAnotherCertificate) {
  config_.private_key = dir_.write("key.pem", makeCredential(leaf_spec_, &root_).keyPem());
  auto s = Server::create(config_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("the key does not match"), std::string::npos)
      << s.error().message;
}

TEST_F(ServerCreateTest, RefusesACertificateOfAnotherCa) {
  Credential stranger =
      makeCredential(aroundNow(caSpec("example.org", "example.org root"), kDay, kDay), nullptr);
  Credential leaf = makeCredential(leaf_spec_, &stranger);
  config_.certificate_chain = dir_.write("chain.pem", leaf.certPem());
  config_.private_key = dir_.write("key.pem", leaf.keyPem());
  auto s = Server::create(config_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("does not verify against our trust bundles"), std::string::npos)
      << s.error().message;
}

TEST_F(ServerCreateTest, RefusesBadPoliciesWithTheirPlace) {
  const std::string bad =
      dir_.write("policies/bad.yaml",
                 "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                 "metadata: {name: p, namespace: foo}\nspec:\n  action: MAYBE\n");
  auto s = Server::create(config_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message.rfind("policies: " + bad + ":5:11: unknown action", 0), 0u)
      << s.error().message;
}

TEST_F(ServerCreateTest, RefusesBadServicesWithTheirPlace) {
  const std::string bad = dir_.write("services/bad.yaml",
                                     "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                                     "metadata: {name: s}\nspec:\n  hosts: [\"bad host\"]\n");
  auto s = Server::create(config_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message.rfind("services: " + bad + ":5:11: bad host", 0), 0u)
      << s.error().message;
}

}  // namespace
}  // namespace palisade::proxy
