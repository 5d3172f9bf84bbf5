#include "policy/path_normalization.h"

#include <gtest/gtest.h>

#include <string>

// Istio's path normalization (istio.io/latest/docs/reference/config/security/normalization),
// row by row from its tables and examples.

namespace palisade::policy {
namespace {

struct Row {
  const char* in;
  PathNormalization mode;
  const char* want;  // nullptr: rejected (400)
};

constexpr auto kBase = PathNormalization::kBase;
constexpr auto kMerge = PathNormalization::kMergeSlashes;
constexpr auto kDecode = PathNormalization::kDecodeAndMergeSlashes;
constexpr auto kNone = PathNormalization::kNone;

TEST(PathNormalizationTest, Table) {
  const Row rows[] = {
      {"/", kBase, "/"},
      {"", kBase, "/"},
      {"/a/b", kBase, "/a/b"},
      // Dot segments (RFC 3986 5.2.4): "/public/./data/abc/../xyz" is Istio's example.
      {"/public/./data/abc/../xyz", kBase, "/public/data/xyz"},
      {"/a/../b", kBase, "/b"},
      {"/x/../admin", kBase, "/admin"},
      {"/./admin", kBase, "/admin"},
      {"/../../admin", kBase, "/admin"},
      {"/a/.", kBase, "/a/"},
      {"/a/..", kBase, "/"},
      {"/a/.../b", kBase, "/a/.../b"},
      {"/a/..b/c", kBase, "/a/..b/c"},
      // Single percent-encoded unreserved characters are decoded once.
      {"/some%2fdata/%61%62%63", kBase, "/some%2fdata/abc"},
      {"/%61dmin", kBase, "/admin"},
      {"/%41%5A%30%39%2D%5F%7E", kBase, "/AZ09-_~"},
      {"/%2e/admin", kBase, "/admin"},
      {"/x/%2e%2e/admin", kBase, "/admin"},
      {"/%252e%252e/admin", kBase, "/%252e%252e/admin"},  // no double decoding
      {"/a%20b", kBase, "/a%20b"},                        // reserved stays encoded
      {"/a%zzb", kBase, "/a%zzb"},
      {"/a%2", kBase, "/a%2"},
      // %00 is always refused.
      {"/admin%00", kBase, nullptr},
      {"/admin%00", kDecode, nullptr},
      {"/a%%3000", kBase, nullptr},     // decoding once forms "%00": refused too
      {"//!%%3003&", kMerge, nullptr},  // found by the fuzzer
      {"/a%%30", kBase, "/a%0"},
      // Backslashes become slashes.
      {"/some\\data", kBase, "/some/data"},
      {"/x\\..\\admin", kBase, "/admin"},
      {"\\da", kBase, "/da"},
      // Slashes merge only from MERGE_SLASHES on.
      {"/some//data///abc", kBase, "/some//data///abc"},
      {"/some//data///abc", kMerge, "/some/data/abc"},
      {"/a%2fb", kMerge, "/a%2fb"},
      {"/a%2fb", kDecode, "/a/b"},
      {"/a%5Cb", kDecode, "/a/b"},
      {"/a/%2e%2e%2fadmin", kDecode, "/admin"},  // %2F decoded before dot segments
      // The query and fragment are kept as received.
      {"/a/../b?x=/../y&z=%61", kBase, "/b?x=/../y&z=%61"},
      {"/a#frag/..", kBase, "/a#frag/.."},
      {"?x=1", kBase, "/?x=1"},
      {"*", kBase, "*"},
      {"*#!%(", kDecode, nullptr},  // asterisk form takes no query or fragment (fuzzer)
      // Not origin form.
      {"admin", kBase, nullptr},
      {"http://x/admin", kBase, nullptr},
      // NONE forwards what it got.
      {"/x/../admin", kNone, "/x/../admin"},
      {"/%61dmin", kNone, "/%61dmin"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(std::string(row.in) + " " + pathNormalizationName(row.mode));
    std::string out;
    const bool ok = normalizePath(row.in, row.mode, out);
    if (row.want == nullptr) {
      EXPECT_FALSE(ok) << out;
    } else {
      ASSERT_TRUE(ok);
      EXPECT_EQ(out, row.want);
    }
  }
}

TEST(PathNormalizationTest, EveryByteSurvivesOrIsRefused) {
  // No byte value crashes the normalizer or yields a path without its leading slash.
  for (int b = 0; b < 256; ++b) {
    SCOPED_TRACE(b);
    std::string in = "/a";
    in.push_back(static_cast<char>(b));
    in += "/../b";
    std::string out;
    if (normalizePath(in, kBase, out)) {
      ASSERT_FALSE(out.empty());
      EXPECT_EQ(out[0], '/');
    }
  }
}

TEST(PathNormalizationTest, Names) {
  for (auto m : {kNone, kBase, kMerge, kDecode}) {
    EXPECT_EQ(parsePathNormalization(pathNormalizationName(m)), m);
  }
  EXPECT_EQ(parsePathNormalization("DEFAULT"), kBase);
  EXPECT_EQ(parsePathNormalization("base"), std::nullopt);
}

}  // namespace
}  // namespace palisade::policy
