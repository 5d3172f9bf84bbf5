// End-to-end tests of `palisadectl token` (create, list, revoke): the built binary runs as a
// subprocess on a throw-away data directory, and what it makes is redeemed through
// cp::JoinTokenStore, as the control plane would. Scripts capture the token from stdout, so
// stdout must hold it alone; the token must appear nowhere else.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "control-plane/join_token.h"
#include "tests/cli/subprocess.h"

namespace palisade::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kWeb = "spiffe://cluster.local/ns/default/sa/web";
constexpr const char* kGateway = "spiffe://cluster.local/ns/edge/sa/gateway";

std::string str(std::string_view s) { return std::string(s); }

std::string readAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class TokenCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "token_command_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    root_ = pattern;
    data_ = (root_ / "data").string();
    ::unsetenv("PALISADE_CP_DATA_DIR");
  }
  void TearDown() override {
    ::unsetenv("PALISADE_CP_DATA_DIR");
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // `palisadectl token <args> --data-dir <data_>`.
  RunResult token(std::vector<std::string> args) {
    args.insert(args.begin(), "token");
    args.push_back("--data-dir");
    args.push_back(data_);
    return run(args);
  }

  // A token made through the CLI; empty (and a test failure) if it could not be.
  std::string create(const std::string& id, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"create", "--spiffe-id", id};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = token(args);
    if (r.exit_code != 0 || r.out.empty()) {
      ADD_FAILURE() << r.dump();
      return {};
    }
    return r.out.substr(0, r.out.size() - 1);
  }

  std::unique_ptr<cp::JoinTokenStore> store() {
    auto s = cp::JoinTokenStore::open(cp::joinTokenDir(data_));
    if (!s.ok()) {
      ADD_FAILURE() << s.error().message;
      return nullptr;
    }
    return std::move(*s);
  }

  fs::path root_;
  std::string data_;
};

// --- create ---------------------------------------------------------------------------------

TEST_F(TokenCommandTest, Create_PrintsOnlyTheTokenOnStdout_AndItRedeemsForTheId) {
  RunResult r = token({"create", "--spiffe-id", kWeb, "--ttl", "10m"});
  ASSERT_EQ(r.exit_code, 0) << r.dump();
  static const std::regex kOneLine("^pjt_[A-Za-z0-9_-]{43}\n$");
  ASSERT_TRUE(std::regex_match(r.out, kOneLine)) << r.dump();
  const std::string tok = r.out.substr(0, r.out.size() - 1);
  EXPECT_THAT(r.err, HasSubstr(kWeb));
  EXPECT_THAT(r.err, HasSubstr("one use"));
  EXPECT_THAT(r.err, HasSubstr("shown only this once"));
  EXPECT_THAT(r.err, HasSubstr(cp::joinTokenId(tok)));
  EXPECT_THAT(r.err, Not(HasSubstr(tok.substr(4))));

  auto s = store();
  ASSERT_NE(s, nullptr);
  auto redeemed = s->redeem(tok);
  ASSERT_TRUE(redeemed.ok()) << redeemed.error().message;
  EXPECT_EQ(redeemed->spiffe_id.uri(), kWeb);
  EXPECT_EQ(redeemed->max_uses, 1);
  EXPECT_FALSE(s->redeem(tok).ok());
}

TEST_F(TokenCommandTest, Create_WithUses_RedeemsThatManyTimes) {
  const std::string tok = create(kGateway, {"--uses", "3", "--ttl", "24h"});
  auto s = store();
  ASSERT_NE(s, nullptr);
  for (int left : {2, 1, 0}) {
    auto redeemed = s->redeem(tok);
    ASSERT_TRUE(redeemed.ok()) << redeemed.error().message;
    EXPECT_EQ(redeemed->uses_left, left);
  }
  EXPECT_FALSE(s->redeem(tok).ok());
}

TEST_F(TokenCommandTest, Create_WritesRecords0600InADirectory0700_WithoutTheToken) {
  const std::string tok = create(kWeb);
  const fs::path dir = cp::joinTokenDir(data_);
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  int records = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(readAll(e.path()).find(tok.substr(4)), std::string::npos) << e.path();
    if (e.path().extension() == ".json") {
      ++records;
      ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 07777, 0600u) << e.path();
    }
  }
  EXPECT_EQ(records, 1);
}

TEST_F(TokenCommandTest, Create_DataDirFromTheEnvironment) {
  const std::string env_dir = (root_ / "from-env").string();
  ASSERT_EQ(::setenv("PALISADE_CP_DATA_DIR", env_dir.c_str(), 1), 0);
  RunResult r = run({"token", "create", "--spiffe-id", kWeb});
  ASSERT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_TRUE(fs::is_directory(cp::joinTokenDir(env_dir)));
  RunResult listed = run({"token", "list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.dump();
  EXPECT_THAT(listed.out, HasSubstr(kWeb));
  // --data-dir wins over the environment.
  RunResult other = token({"list"});
  EXPECT_EQ(other.exit_code, 0) << other.dump();
  EXPECT_EQ(other.out, "");
}

TEST_F(TokenCommandTest, Create_BadInput_ExitsTwoWithTheReasonAndNoToken) {
  struct Row {
    const char* name;
    std::vector<std::string> args;
    std::string want_err;
  };
  const std::vector<Row> rows = {
      {"no id", {"create"}, "Error: --spiffe-id is required\n"},
      {"bad id",
       {"create", "--spiffe-id", "spiffe://cluster.local/ns/../sa/x"},
       "Error: " + str(policy::kSpiffeDotSegment) + "\n"},
      {"trust domain only",
       {"create", "--spiffe-id", "spiffe://cluster.local"},
       "Error: " + str(cp::kJoinTokenIdWithoutPath) + "spiffe://cluster.local\n"},
      {"zero ttl",
       {"create", "--spiffe-id", kWeb, "--ttl", "0s"},
       "Error: " + str(cp::kJoinTokenTtlNotPositive) + "\n"},
      {"31 days",
       {"create", "--spiffe-id", kWeb, "--ttl", "31d"},
       "Error: " + str(cp::kJoinTokenTtlTooLong) + "\n"},
      {"bad ttl",
       {"create", "--spiffe-id", kWeb, "--ttl", "soon"},
       "Error: duration: bad \"soon\" (expected e.g. 90s, 2m, 1h30m, 7d)\n"},
      {"zero uses",
       {"create", "--spiffe-id", kWeb, "--uses", "0"},
       "Error: " + str(cp::kJoinTokenUsesRange) + "\n"},
      {"too many uses",
       {"create", "--spiffe-id", kWeb, "--uses", "1001"},
       "Error: " + str(cp::kJoinTokenUsesRange) + "\n"},
      {"negative uses",
       {"create", "--spiffe-id", kWeb, "--uses", "-1"},
       "Error: --uses: expected a whole number from 1 to 1000, got \"-1\"\n"},
      {"uses not a number",
       {"create", "--spiffe-id", kWeb, "--uses", "3x"},
       "Error: --uses: expected a whole number from 1 to 1000, got \"3x\"\n"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    RunResult r = token(row.args);
    EXPECT_EQ(r.exit_code, 2) << r.dump();
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, row.want_err);
  }
  const fs::path dir = cp::joinTokenDir(data_);
  if (fs::exists(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      ADD_FAILURE() << "left behind: " << e.path();
    }
  }
}

// --- list -----------------------------------------------------------------------------------

TEST_F(TokenCommandTest, List_ShowsIdIdentityTtlExpiryAndUses_NeverTheToken) {
  const std::string web = create(kWeb, {"--ttl", "1h"});
  const std::string gateway = create(kGateway, {"--ttl", "48h", "--uses", "5"});
  auto s = store();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->redeem(gateway).ok());

  RunResult r = token({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> got = lines(r.out);
  ASSERT_EQ(got.size(), 3u) << r.out;
  EXPECT_TRUE(std::regex_match(got[0], std::regex(R"(^ID +SPIFFE ID +TTL +EXPIRES +USES$)")))
      << got[0];
  const std::string ts = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)";
  // Sorted by expiry: the web token first. Its TTL reads 59m or 60m as the clock turns.
  EXPECT_TRUE(std::regex_match(got[1], std::regex("^" + cp::joinTokenId(web) + " +" + kWeb +
                                                  " +(59|60)m +" + ts + " +1/1$")))
      << got[1];
  EXPECT_TRUE(std::regex_match(got[2], std::regex("^" + cp::joinTokenId(gateway) + " +" + kGateway +
                                                  " +(47h|2d) +" + ts + " +4/5$")))
      << got[2];
  EXPECT_THAT(r.out, Not(HasSubstr(web.substr(4))));
  EXPECT_THAT(r.out, Not(HasSubstr(gateway.substr(4))));
}

TEST_F(TokenCommandTest, List_NoTokens_SaysSoOnStderrAndCreatesNothing) {
  RunResult r = token({"list"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "No join tokens in " + cp::joinTokenDir(data_) + ".\n");
  EXPECT_FALSE(fs::exists(data_));
}

// --- revoke ---------------------------------------------------------------------------------

TEST_F(TokenCommandTest, Revoke_ByTheIdListShows_ThenTheTokenNoLongerRedeems) {
  const std::string tok = create(kWeb, {"--uses", "2"});
  const std::string keep = create(kGateway);
  const std::string id = cp::joinTokenId(tok);
  RunResult r = token({"revoke", id});
  ASSERT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.out, "revoked join token " + id + " for " + kWeb + "\n");
  auto s = store();
  ASSERT_NE(s, nullptr);
  auto redeemed = s->redeem(tok);
  ASSERT_FALSE(redeemed.ok());
  EXPECT_EQ(redeemed.error().message, cp::kJoinTokenUnknown);
  EXPECT_TRUE(s->redeem(keep).ok());
}

TEST_F(TokenCommandTest, Revoke_ByTheTokenItself) {
  const std::string tok = create(kWeb);
  RunResult r = token({"revoke", tok});
  ASSERT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.out, "revoked join token " + cp::joinTokenId(tok) + " for " + kWeb + "\n");
  EXPECT_THAT(r.out + r.err, Not(HasSubstr(tok.substr(4))));
}

TEST_F(TokenCommandTest, Revoke_Refusals) {
  const std::string tok = create(kWeb);
  struct Row {
    const char* name;
    std::vector<std::string> args;
    int want_exit;
    std::string want_err;
  };
  const std::vector<Row> rows = {
      {"no id",
       {"revoke"},
       2,
       "Error: expected one token ID\nUsage: palisadectl token revoke ID [--data-dir DIR]\n"},
      {"two ids",
       {"revoke", "abcdef01", "abcdef02"},
       2,
       "Error: expected one token ID\nUsage: palisadectl token revoke ID [--data-dir DIR]\n"},
      {"too short", {"revoke", "abc"}, 2, "Error: " + str(cp::kJoinTokenBadPrefix) + "\n"},
      {"no match",
       {"revoke", "ffffffffffff"},
       1,
       "Error: " + str(cp::kJoinTokenNoMatch) + "ffffffffffff\n"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    RunResult r = token(row.args);
    EXPECT_EQ(r.exit_code, row.want_exit) << r.dump();
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, row.want_err);
  }
  auto s = store();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->redeem(tok).ok()) << "no refusal revoked anything";
}

TEST_F(TokenCommandTest, Revoke_NoStore_ExitsOne) {
  RunResult r = token({"revoke", "abcdef012345"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(r.err, "Error: no join tokens in " + cp::joinTokenDir(data_) + "\n");
  EXPECT_FALSE(fs::exists(data_));
}

// --- help -----------------------------------------------------------------------------------

TEST(TokenHelpTest, Help_EveryTokenCommand_ExitsZeroWithUsage) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"token"}, {"token", "create"}, {"token", "list"}, {"token", "revoke"}}) {
    std::string name = "palisadectl";
    for (const std::string& a : args) {
      name += " " + a;
    }
    SCOPED_TRACE(name);
    args.push_back("--help");
    RunResult r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.dump();
    EXPECT_THAT(r.out, HasSubstr("Usage:"));
    EXPECT_THAT(r.out, HasSubstr(name));
    EXPECT_EQ(r.err, "");
  }
  RunResult root = run({"--help"});
  EXPECT_THAT(root.out, HasSubstr("  token "));
}

}  // namespace
}  // namespace palisade::cli
