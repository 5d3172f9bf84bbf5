#include "control-plane/join_token.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/openssl.h"
#include "tests/mocks/common/temp_dir.h"

// JoinTokenStore: what create() makes and writes, what redeem() grants and refuses (and why,
// for metrics), list/revoke/prune, and that a use is spent once even when threads, separate
// store instances (each with its own mutex: only the lock file is shared) or forked processes
// race for it. Time is passed in; nothing sleeps.

namespace palisade::cp {
namespace {

namespace fs = std::filesystem;
using common::test_env::TempDir;
using Json = nlohmann::json;
using std::chrono::hours;
using std::chrono::seconds;

constexpr std::time_t kNow = 1'800'000'000;
constexpr const char* kWeb = "spiffe://cluster.local/ns/default/sa/web";

std::string str(std::string_view s) { return std::string(s); }

std::string sha256Hex(const std::string& text) {
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), md.data(), &n, EVP_sha256(), nullptr);
  return common::hex(md.data(), n);
}

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

unsigned modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class JoinTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = joinTokenDir(tmp_.file("data"));
    store_ = openStore();
  }

  std::unique_ptr<JoinTokenStore> openStore() {
    auto store = JoinTokenStore::open(dir_);
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message;
      return nullptr;
    }
    return std::move(*store);
  }

  // A token the test needs to exist; a failure here is a failure of create().
  std::string mustCreate(const std::string& id = kWeb, seconds ttl = hours(1), int uses = 1,
                         std::time_t now = kNow) {
    auto token = store_->create(id, ttl, uses, now);
    if (!token.ok()) {
      ADD_FAILURE() << "create: " << token.error().message;
      return {};
    }
    return *token;
  }

  std::string recordPath(const std::string& token) const {
    return dir_ + "/" + sha256Hex(token) + ".json";
  }

  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  TempDir tmp_;
  std::string dir_;
  std::unique_ptr<JoinTokenStore> store_;
};

// --- create ---------------------------------------------------------------------------------

TEST_F(JoinTokenTest, Create_TokenIsPrefixAnd43Base64UrlCharacters) {
  static const std::regex kShape("^pjt_[A-Za-z0-9_-]{43}$");
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    const std::string token = mustCreate();
    EXPECT_TRUE(std::regex_match(token, kShape)) << token;
    EXPECT_EQ(token.size(), kJoinTokenLength);
    seen.insert(token);
  }
  EXPECT_EQ(seen.size(), 20u);
}

TEST_F(JoinTokenTest, Create_WritesOneRecordNamedForTheHash) {
  const std::string token = mustCreate(kWeb, hours(2), 3);
  const std::string path = recordPath(token);
  ASSERT_TRUE(fs::exists(path)) << path;
  Json j = Json::parse(readAll(path));
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["sha256"], sha256Hex(token));
  EXPECT_EQ(j["spiffe_id"], kWeb);
  EXPECT_EQ(j["created"], common::formatTime(kNow));
  EXPECT_EQ(j["expires"], common::formatTime(kNow + 7200));
  EXPECT_EQ(j["max_uses"], 3);
  EXPECT_EQ(j["uses_left"], 3);
  EXPECT_EQ(j.size(), 7u);
}

TEST_F(JoinTokenTest, Create_DirectoryIs0700AndRecords0600) {
  const std::string one_time = mustCreate();
  const std::string bounded = mustCreate(kWeb, hours(1), 3);
  EXPECT_EQ(modeOf(dir_), 0700u);
  EXPECT_EQ(modeOf(tmp_.file("data")), 0700u) << "missing parents are made 0700 too";
  EXPECT_EQ(modeOf(recordPath(one_time)), 0600u);
  EXPECT_EQ(modeOf(recordPath(bounded)), 0600u);
  ASSERT_TRUE(store_->redeem(bounded, kNow).ok());  // the record is rewritten
  EXPECT_EQ(modeOf(recordPath(bounded)), 0600u);
  EXPECT_EQ(modeOf(dir_ + "/.lock"), 0600u);
}

TEST_F(JoinTokenTest, TokenIsNotStoredInClearAnywhereInTheDirectory) {
  std::vector<std::string> tokens;
  for (int uses : {1, 2, 5}) {
    tokens.push_back(mustCreate(kWeb, hours(1), uses));
  }
  ASSERT_TRUE(store_->redeem(tokens[2], kNow).ok());  // a rewritten record, and the lock file
  ASSERT_TRUE(store_->list(kNow).ok());
  ASSERT_EQ(entries().size(), 4u);  // three records and .lock
  for (const std::string& name : entries()) {
    const std::string data = readAll(dir_ + "/" + name);
    for (const std::string& token : tokens) {
      const std::string body = token.substr(kJoinTokenPrefix.size());
      EXPECT_EQ(data.find(body), std::string::npos) << name << " holds a token";
      // Nor a prefix long enough to narrow a search.
      EXPECT_EQ(data.find(body.substr(0, 16)), std::string::npos) << name;
      EXPECT_EQ(name.find(body.substr(0, 16)), std::string::npos) << name;
    }
  }
}

TEST_F(JoinTokenTest, Create_RefusesBadSpiffeIds) {
  struct Row {
    const char* name;
    std::string id;
    std::string want_error;
  };
  const std::vector<Row> rows = {
      {"empty", "", str(policy::kSpiffeEmpty)},
      {"wrong scheme", "https://cluster.local/ns/a/sa/b", str(policy::kSpiffeWrongScheme)},
      {"upper-case trust domain", "spiffe://Cluster.local/ns/a/sa/b",
       str(policy::kSpiffeTrustDomainChars)},
      {"dot segment", "spiffe://cluster.local/ns/../sa/b", str(policy::kSpiffeDotSegment)},
      {"trailing slash", "spiffe://cluster.local/ns/a/sa/b/", str(policy::kSpiffeTrailingSlash)},
      {"query", "spiffe://cluster.local/ns/a?x=1", str(policy::kSpiffeQuery)},
      {"trust domain only", "spiffe://cluster.local",
       str(kJoinTokenIdWithoutPath) + "spiffe://cluster.local"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    auto token = store_->create(row.id, hours(1), 1, kNow);
    ASSERT_FALSE(token.ok());
    EXPECT_EQ(token.error().message, row.want_error);
  }
  EXPECT_TRUE(entries().empty()) << "nothing is written for a refused token";
}

TEST_F(JoinTokenTest, Create_BoundsTtlAndUses) {
  struct Row {
    const char* name;
    seconds ttl;
    int uses;
    std::string_view want_error;  // empty: accepted
  };
  const std::vector<Row> rows = {
      {"zero ttl", seconds(0), 1, kJoinTokenTtlNotPositive},
      {"negative ttl", seconds(-5), 1, kJoinTokenTtlNotPositive},
      {"one second", seconds(1), 1, ""},
      {"30 days", kJoinTokenMaxTtl, 1, ""},
      {"30 days and a second", kJoinTokenMaxTtl + seconds(1), 1, kJoinTokenTtlTooLong},
      {"zero uses", hours(1), 0, kJoinTokenUsesRange},
      {"negative uses", hours(1), -1, kJoinTokenUsesRange},
      {"most uses", hours(1), kJoinTokenMaxUses, ""},
      {"too many uses", hours(1), kJoinTokenMaxUses + 1, kJoinTokenUsesRange},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    auto token = store_->create(kWeb, row.ttl, row.uses, kNow);
    if (row.want_error.empty()) {
      EXPECT_TRUE(token.ok()) << token.error().message;
    } else {
      ASSERT_FALSE(token.ok());
      EXPECT_EQ(token.error().message, row.want_error);
    }
  }
}

// --- redeem ---------------------------------------------------------------------------------

TEST_F(JoinTokenTest, Redeem_OneTimeToken_GrantsTheBoundIdentityAndRemovesTheRecord) {
  const std::string token = mustCreate(kWeb, hours(1));
  auto got = store_->redeem(token, kNow + 60);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->spiffe_id.uri(), kWeb);
  EXPECT_EQ(got->id, sha256Hex(token).substr(0, kJoinTokenIdLength));
  EXPECT_EQ(got->expires, kNow + 3600);
  EXPECT_EQ(got->uses_left, 0);
  EXPECT_EQ(got->max_uses, 1);
  EXPECT_FALSE(fs::exists(recordPath(token)));
}

TEST_F(JoinTokenTest, Redeem_OneTimeTokenPresentedAgain_RefusedAsUnknown) {
  const std::string token = mustCreate();
  ASSERT_TRUE(store_->redeem(token, kNow).ok());
  auto again = store_->redeem(token, kNow);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, kJoinTokenUnknown);
  EXPECT_EQ(joinTokenRefusalReason(again.error()), "unknown");
  // Also from another store on the same directory (another process, a restart).
  auto other = openStore();
  ASSERT_NE(other, nullptr);
  EXPECT_FALSE(other->redeem(token, kNow).ok());
}

TEST_F(JoinTokenTest, Redeem_BoundedUse_NTimesThenRefused) {
  const std::string token = mustCreate(kWeb, hours(1), 3);
  for (int left : {2, 1, 0}) {
    SCOPED_TRACE(left);
    auto got = store_->redeem(token, kNow);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->uses_left, left);
    EXPECT_EQ(got->max_uses, 3);
    EXPECT_EQ(got->spiffe_id.uri(), kWeb);
  }
  EXPECT_FALSE(fs::exists(recordPath(token))) << "the last use removes the record";
  auto fourth = store_->redeem(token, kNow);
  ASSERT_FALSE(fourth.ok());
  EXPECT_EQ(fourth.error().message, kJoinTokenUnknown);
}

TEST_F(JoinTokenTest, Redeem_SpentUseIsOnDiskForOtherStores) {
  const std::string token = mustCreate(kWeb, hours(1), 2);
  ASSERT_TRUE(store_->redeem(token, kNow).ok());
  auto other = openStore();
  ASSERT_NE(other, nullptr);
  auto listed = other->list(kNow);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].uses_left, 1);
  auto got = other->redeem(token, kNow);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->uses_left, 0);
  EXPECT_FALSE(store_->redeem(token, kNow).ok());
}

TEST_F(JoinTokenTest, Redeem_Expired_RefusedAndRecordDeleted) {
  const std::string token = mustCreate(kWeb, hours(1), 2);
  auto last_second = store_->redeem(token, kNow + 3599);
  ASSERT_TRUE(last_second.ok()) << last_second.error().message;
  auto at_expiry = store_->redeem(token, kNow + 3600);  // expires is the first refused second
  ASSERT_FALSE(at_expiry.ok());
  EXPECT_EQ(at_expiry.error().message, kJoinTokenExpired);
  EXPECT_EQ(joinTokenRefusalReason(at_expiry.error()), "expired");
  EXPECT_FALSE(fs::exists(recordPath(token)));
  auto after = store_->redeem(token, kNow + 3600);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().message, kJoinTokenUnknown);
}

TEST_F(JoinTokenTest, Redeem_UnknownToken_Refused) {
  mustCreate();
  const std::string unknown = "pjt_" + std::string(42, 'A') + "A";
  auto got = store_->redeem(unknown, kNow);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().message, kJoinTokenUnknown);
  EXPECT_EQ(joinTokenRefusalReason(got.error()), "unknown");
}

TEST_F(JoinTokenTest, Redeem_RecordWithNoUsesLeft_RefusedAsExhaustedAndDeleted) {
  // The store deletes a record with its last use; one left at zero (written by an older
  // version, or by hand) is still refused.
  const std::string token = mustCreate(kWeb, hours(1), 2);
  Json j = Json::parse(readAll(recordPath(token)));
  j["uses_left"] = 0;
  ASSERT_TRUE(common::writeFileAtomic(recordPath(token), j.dump(), 0600).ok());
  auto got = store_->redeem(token, kNow);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().message, kJoinTokenExhausted);
  EXPECT_EQ(joinTokenRefusalReason(got.error()), "exhausted");
  EXPECT_FALSE(fs::exists(recordPath(token)));
}

TEST_F(JoinTokenTest, Redeem_MalformedInput_RefusedBeforeAnyLookup) {
  const std::string good = mustCreate(kWeb, hours(1), 100);
  const std::string body = good.substr(4);
  struct Row {
    const char* name;
    std::string input;
  };
  // The last character of 32 bytes in base64url carries 4 bits: its 2 low bits are zero
  // ('A' = 0, 'E' = 4, 'B' = 1).
  const std::vector<Row> rows = {
      {"empty", ""},
      {"prefix only", "pjt_"},
      {"no prefix", body},
      {"other prefix", "xyz_" + body},
      {"upper-case prefix", "PJT_" + body},
      {"one short", good.substr(0, good.size() - 1)},
      {"one long", good + "A"},
      {"trailing newline", good + "\n"},
      {"leading space", " " + good.substr(1)},
      {"padding", good.substr(0, good.size() - 1) + "="},
      {"standard base64 +", "pjt_+" + body.substr(1)},
      {"standard base64 /", "pjt_/" + body.substr(1)},
      {"non-canonical last character", "pjt_" + std::string(42, 'A') + "B"},
      {"NUL inside", "pjt_" + std::string(20, 'A') + std::string(1, '\0') + std::string(22, 'A')},
      {"a megabyte", std::string(1 << 20, 'A')},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    auto got = store_->redeem(row.input, kNow);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().message, kJoinTokenMalformed);
    EXPECT_EQ(joinTokenRefusalReason(got.error()), "malformed");
  }
  EXPECT_TRUE(store_->redeem(good, kNow).ok()) << "no refusal spent a use";
  EXPECT_TRUE(store_->redeem("pjt_" + std::string(42, 'A') + "E", kNow).error().message ==
              kJoinTokenUnknown)
      << "a canonical last character is well formed";
}

TEST_F(JoinTokenTest, Redeem_EveryByteOutsideBase64UrlIsMalformed) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    std::string token = "pjt_" + std::string(42, 'A') + "A";
    token[10] = c;
    auto got = store_->redeem(token, kNow);
    ASSERT_FALSE(got.ok());
    const bool in_alphabet = alphabet.find(c) != std::string::npos;
    EXPECT_EQ(got.error().message, in_alphabet ? kJoinTokenUnknown : kJoinTokenMalformed)
        << "byte " << b;
  }
}

TEST_F(JoinTokenTest, Redeem_RecordCopiedUnderAnotherTokensName_IsNotRedeemed) {
  const std::string victim = mustCreate("spiffe://cluster.local/ns/prod/sa/db");
  const std::string attacker = mustCreate("spiffe://cluster.local/ns/dev/sa/toy");
  // Someone who can write the directory copies the victim's record over the attacker's.
  ASSERT_TRUE(
      common::writeFileAtomic(recordPath(attacker), readAll(recordPath(victim)), 0600).ok());
  auto got = store_->redeem(attacker, kNow);
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(got.error().message.starts_with(kJoinTokenCorrupt)) << got.error().message;
  EXPECT_EQ(joinTokenRefusalReason(got.error()), "error");
  EXPECT_TRUE(store_->redeem(victim, kNow).ok());
}

TEST_F(JoinTokenTest, Redeem_CorruptRecords_RefusedWithTheFileNamed) {
  const std::string token = mustCreate(kWeb, hours(1), 2);
  const Json good = Json::parse(readAll(recordPath(token)));
  struct Row {
    const char* name;
    std::string text;
  };
  auto with = [&](const char* key, Json value) {
    Json j = good;
    if (value.is_null()) {
      j.erase(key);
    } else {
      j[key] = value;
    }
    return j.dump();
  };
  const std::vector<Row> rows = {
      {"not JSON", "{"},
      {"array", "[]"},
      {"version 2", with("version", 2)},
      {"no sha256", with("sha256", nullptr)},
      {"bad spiffe id", with("spiffe_id", "spiffe://x/ns/../a")},
      {"bad expires", with("expires", "tomorrow")},
      {"uses_left above max_uses", with("uses_left", 3)},
      {"negative uses_left", with("uses_left", -1)},
      {"fractional max_uses", with("max_uses", 1.5)},
      {"max_uses as text", with("max_uses", "2")},
      {"too large", std::string(5000, ' ') + good.dump()},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    ASSERT_TRUE(common::writeFileAtomic(recordPath(token), row.text, 0600).ok());
    auto got = store_->redeem(token, kNow);
    ASSERT_FALSE(got.ok());
    EXPECT_TRUE(got.error().message.starts_with(str(kJoinTokenCorrupt) + recordPath(token)))
        << got.error().message;
    EXPECT_EQ(joinTokenRefusalReason(got.error()), "error");
  }
}

TEST_F(JoinTokenTest, Redeem_SymlinkedRecord_Refused) {
  const std::string token = mustCreate();
  const std::string elsewhere = tmp_.write("record.json", readAll(recordPath(token)));
  ASSERT_EQ(::unlink(recordPath(token).c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), recordPath(token).c_str()), 0);
  auto got = store_->redeem(token, kNow);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(joinTokenRefusalReason(got.error()), "error") << got.error().message;
}

// --- concurrency ----------------------------------------------------------------------------

TEST_F(JoinTokenTest, Redeem_OneTimeTokenFromManyThreads_ExactlyOneSucceeds) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE(round);
    const std::string token = mustCreate();
    std::atomic<int> granted{0};
    std::atomic<int> unknown{0};
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        auto got = store_->redeem(token, kNow);
        if (got.ok()) {
          ++granted;
        } else if (got.error().message == kJoinTokenUnknown) {
          ++unknown;
        }
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
    EXPECT_EQ(granted.load(), 1);
    EXPECT_EQ(unknown.load(), kThreads - 1);
  }
}

TEST_F(JoinTokenTest, Redeem_BoundedTokenFromSeparateStores_NeverOverspent) {
  // Separate stores share nothing but the directory and its lock file, as processes would.
  constexpr int kStores = 3;
  constexpr int kThreadsPerStore = 3;
  constexpr int kAttempts = 4;
  constexpr int kUses = 7;
  std::vector<std::unique_ptr<JoinTokenStore>> stores;
  for (int i = 0; i < kStores; ++i) {
    stores.push_back(openStore());
    ASSERT_NE(stores.back(), nullptr);
  }
  const std::string token = mustCreate(kWeb, hours(1), kUses);
  std::atomic<int> granted{0};
  std::vector<int> seen_left;
  std::mutex seen_mutex;
  std::latch start(kStores * kThreadsPerStore);
  std::vector<std::thread> threads;
  for (int s = 0; s < kStores; ++s) {
    for (int t = 0; t < kThreadsPerStore; ++t) {
      threads.emplace_back([&, s] {
        start.arrive_and_wait();
        for (int a = 0; a < kAttempts; ++a) {
          auto got = stores[s]->redeem(token, kNow);
          if (got.ok()) {
            ++granted;
            std::lock_guard<std::mutex> g(seen_mutex);
            seen_left.push_back(got->uses_left);
          }
        }
      });
    }
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(granted.load(), kUses);
  std::sort(seen_left.begin(), seen_left.end());
  std::vector<int> want;
  for (int i = 0; i < kUses; ++i) {
    want.push_back(i);
  }
  EXPECT_EQ(seen_left, want) << "every use count was handed out exactly once";
}

TEST_F(JoinTokenTest, Redeem_OneTimeTokenFromSeveralProcesses_ExactlyOneSucceeds) {
  constexpr int kChildren = 6;
  const std::string token = mustCreate();
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // The child: its own store, waiting until every sibling exists. Exit 0 when granted.
      ::close(go[1]);
      char c;
      while (::read(go[0], &c, 1) < 0) {
      }
      auto store = JoinTokenStore::open(dir_);
      _exit(store.ok() && (*store)->redeem(token, kNow).ok() ? 0 : 1);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);  // EOF releases every child at once
  int granted = 0;
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    granted += WEXITSTATUS(status) == 0 ? 1 : 0;
  }
  EXPECT_EQ(granted, 1);
  EXPECT_FALSE(fs::exists(recordPath(token)));
}

// --- list, revoke, prune --------------------------------------------------------------------

TEST_F(JoinTokenTest, List_ShowsHashesIdentitiesExpiryAndUses_SortedByExpiry) {
  const std::string later = mustCreate("spiffe://cluster.local/ns/a/sa/later", hours(2), 5);
  const std::string sooner = mustCreate("spiffe://cluster.local/ns/a/sa/sooner", hours(1));
  ASSERT_TRUE(store_->redeem(later, kNow).ok());
  // Files that are not records are not listed.
  tmp_.write("data/join-tokens/.0123.json.AbCdEf", "{}");
  tmp_.write("data/join-tokens/README", "hello");
  auto listed = store_->list(kNow + 3600);
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 2u);
  const JoinTokenInfo& a = (*listed)[0];
  EXPECT_EQ(a.sha256, sha256Hex(sooner));
  EXPECT_EQ(a.spiffe_id, "spiffe://cluster.local/ns/a/sa/sooner");
  EXPECT_EQ(a.created, kNow);
  EXPECT_EQ(a.expires, kNow + 3600);
  EXPECT_EQ(a.uses_left, 1);
  EXPECT_EQ(a.max_uses, 1);
  EXPECT_TRUE(a.expired);
  const JoinTokenInfo& b = (*listed)[1];
  EXPECT_EQ(b.sha256, sha256Hex(later));
  EXPECT_EQ(b.uses_left, 4);
  EXPECT_EQ(b.max_uses, 5);
  EXPECT_FALSE(b.expired);
}

TEST_F(JoinTokenTest, List_CorruptRecord_IsAnError) {
  mustCreate();
  tmp_.write("data/join-tokens/" + std::string(64, 'a') + ".json", "{");
  auto listed = store_->list(kNow);
  ASSERT_FALSE(listed.ok());
  EXPECT_TRUE(listed.error().message.starts_with(kJoinTokenCorrupt)) << listed.error().message;
}

TEST_F(JoinTokenTest, Revoke_ByIdPrefixAnyCaseOrByTheToken) {
  const std::string a = mustCreate("spiffe://cluster.local/ns/a/sa/a");
  const std::string b = mustCreate("spiffe://cluster.local/ns/b/sa/b");
  const std::string c = mustCreate("spiffe://cluster.local/ns/c/sa/c");

  auto by_id = store_->revoke(sha256Hex(a).substr(0, kJoinTokenIdLength));
  ASSERT_TRUE(by_id.ok()) << by_id.error().message;
  EXPECT_EQ(by_id->sha256, sha256Hex(a));
  EXPECT_EQ(by_id->spiffe_id, "spiffe://cluster.local/ns/a/sa/a");

  std::string upper = sha256Hex(b).substr(0, 8);
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  auto by_upper = store_->revoke(upper);
  ASSERT_TRUE(by_upper.ok()) << by_upper.error().message;
  EXPECT_EQ(by_upper->sha256, sha256Hex(b));

  auto by_token = store_->revoke(c);
  ASSERT_TRUE(by_token.ok()) << by_token.error().message;
  EXPECT_EQ(by_token->sha256, sha256Hex(c));

  for (const std::string& token : {a, b, c}) {
    auto got = store_->redeem(token, kNow);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().message, kJoinTokenUnknown);
  }
  EXPECT_EQ(entries(), std::vector<std::string>{".lock"});
}

TEST_F(JoinTokenTest, Revoke_Refusals) {
  const std::string token = mustCreate();
  // Two records whose ids share 8 digits (written by hand: unreadable, revocable).
  const std::string shared = "0123abcd";
  tmp_.write("data/join-tokens/" + shared + std::string(56, '1') + ".json", "{");
  tmp_.write("data/join-tokens/" + shared + std::string(56, '2') + ".json", "{");
  struct Row {
    const char* name;
    std::string input;
    std::string want_error;
  };
  const std::vector<Row> rows = {
      {"empty", "", str(kJoinTokenBadPrefix)},
      {"7 digits", sha256Hex(token).substr(0, 7), str(kJoinTokenBadPrefix)},
      {"65 digits", sha256Hex(token) + "0", str(kJoinTokenBadPrefix)},
      {"not hex", "0123abcz", str(kJoinTokenBadPrefix)},
      {"a malformed token", token + "x", str(kJoinTokenBadPrefix)},
      {"no match", "ffffffffffff", str(kJoinTokenNoMatch) + "ffffffffffff"},
      {"ambiguous", shared, str(kJoinTokenAmbiguous) + shared},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    auto got = store_->revoke(row.input);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().message, row.want_error);
  }
  EXPECT_EQ(store_->revoke("ffffffffffff").error().code, ErrorCode::kNotFound);
  // One more digit tells the two apart; the unreadable record goes all the same.
  auto one = store_->revoke(shared + "1");
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_EQ(one->sha256, shared + std::string(56, '1'));
  EXPECT_EQ(one->spiffe_id, "");
  EXPECT_TRUE(store_->redeem(token, kNow).ok()) << "refusals revoked nothing";
}

TEST_F(JoinTokenTest, PruneExpired_RemovesExpiredAndUsedUp_KeepsLiveAndUnreadable) {
  const std::string live = mustCreate(kWeb, hours(3));
  const std::string expired_soon = mustCreate(kWeb, hours(1));
  const std::string expired_later = mustCreate(kWeb, hours(2), 4);
  const std::string used_up = mustCreate(kWeb, hours(3), 2);
  Json j = Json::parse(readAll(recordPath(used_up)));
  j["uses_left"] = 0;
  ASSERT_TRUE(common::writeFileAtomic(recordPath(used_up), j.dump(), 0600).ok());
  const std::string unreadable = std::string(64, 'e') + ".json";
  tmp_.write("data/join-tokens/" + unreadable, "{");

  auto pruned = store_->pruneExpired(kNow + 2 * 3600);
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  EXPECT_EQ(*pruned, 3u);
  std::vector<std::string> want = {".lock", sha256Hex(live) + ".json", unreadable};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(entries(), want);
  EXPECT_TRUE(store_->redeem(live, kNow + 2 * 3600).ok());

  auto again = store_->pruneExpired(kNow + 2 * 3600);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

// --- open -----------------------------------------------------------------------------------

TEST_F(JoinTokenTest, Open_RefusesADirectoryOthersCanWrite) {
  const std::string loose = tmp_.file("loose");
  ASSERT_EQ(::mkdir(loose.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(loose.c_str(), 0770), 0);
  auto store = JoinTokenStore::open(loose);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().message, str(kJoinTokenDirWritable) + loose);

  ASSERT_EQ(::chmod(loose.c_str(), 0750), 0);  // readable by the group is the operator's call
  EXPECT_TRUE(JoinTokenStore::open(loose).ok());
}

TEST_F(JoinTokenTest, Open_RefusesAFile) {
  const std::string file = tmp_.write("file", "x");
  auto store = JoinTokenStore::open(file);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kIo);
}

TEST(JoinTokenDirTest, IsJoinTokensUnderTheDataDir) {
  EXPECT_EQ(joinTokenDir("/var/lib/palisade-cp"), "/var/lib/palisade-cp/join-tokens");
}

TEST(JoinTokenRefusalReasonTest, OtherErrorsAreError) {
  EXPECT_EQ(joinTokenRefusalReason(Error{ErrorCode::kIo, "x: cannot read: EIO"}), "error");
  EXPECT_EQ(joinTokenRefusalReason(invalidArgument(str(kJoinTokenCorrupt) + "f: x")), "error");
}

}  // namespace
}  // namespace palisade::cp
