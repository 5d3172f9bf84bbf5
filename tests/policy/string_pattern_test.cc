#include "policy/string_pattern.h"

#include <gtest/gtest.h>

#include <string>

// StringPattern against Istio's matcher package (pilot/pkg/security/authz/matcher,
// StringMatcherWithPrefix): "*" first, then a leading "*" (suffix), then a trailing "*"
// (prefix), else exact. "*" becomes ".+" where the attribute must be non-empty and ".*"
// otherwise.

namespace palisade::policy {
namespace {

using Kind = StringPattern::Kind;
using Case = StringPattern::Case;

TEST(StringPatternTest, Classifies) {
  struct Row {
    std::string name;
    std::string input;
    Kind want_kind;
    std::string want_text;
  };
  const Row rows[] = {
      {"exact", "abc", Kind::kExact, "abc"},
      {"empty is exact", "", Kind::kExact, ""},
      {"prefix", "abc*", Kind::kPrefix, "abc"},
      {"suffix", "*abc", Kind::kSuffix, "abc"},
      {"any", "*", Kind::kAny, ""},
      // A leading "*" wins over a trailing one, as in Istio: "*abc*" is suffix "abc*".
      {"star on both ends", "*abc*", Kind::kSuffix, "abc*"},
      {"double star", "**", Kind::kSuffix, "*"},
      {"star in the middle is literal", "a*c", Kind::kExact, "a*c"},
      {"prefix with inner star", "a*c*", Kind::kPrefix, "a*c"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name + ": \"" + r.input + "\"");
    StringPattern p(r.input, Case::kSensitive);
    EXPECT_EQ(p.kind(), r.want_kind);
    EXPECT_EQ(p.text(), r.want_text);
    EXPECT_FALSE(p.caseInsensitive());
  }
  EXPECT_TRUE(StringPattern("abc", Case::kInsensitive).caseInsensitive());
}

struct MatchRow {
  std::string name;
  std::string pattern;
  Case cs;
  bool any_requires_non_empty;
  std::string value;
  bool want;
};

void checkMatches(const MatchRow& r) {
  SCOPED_TRACE(r.name + ": \"" + r.pattern + "\" vs \"" + r.value + "\"");
  StringPattern p(r.pattern, r.cs);
  EXPECT_EQ(p.matches(r.value, r.any_requires_non_empty), r.want);
}

TEST(StringPatternTest, MatchesCaseSensitive) {
  const Case s = Case::kSensitive;
  const MatchRow rows[] = {
      {"exact equal", "abc", s, true, "abc", true},
      {"exact longer", "abc", s, true, "abcd", false},
      {"exact shorter", "abc", s, true, "ab", false},
      {"exact other case", "abc", s, true, "ABC", false},
      {"exact empty pattern matches empty", "", s, false, "", true},
      {"exact empty pattern refuses text", "", s, false, "a", false},
      {"prefix equal", "abc*", s, true, "abc", true},
      {"prefix longer", "abc*", s, true, "abcdef", true},
      {"prefix shorter", "abc*", s, true, "ab", false},
      {"prefix elsewhere", "abc*", s, true, "xabc", false},
      {"prefix other case", "abc*", s, true, "ABCdef", false},
      {"suffix equal", "*abc", s, true, "abc", true},
      {"suffix longer", "*abc", s, true, "xyzabc", true},
      {"suffix shorter", "*abc", s, true, "bc", false},
      {"suffix elsewhere", "*abc", s, true, "abcx", false},
      {"suffix other case", "*abc", s, true, "xABC", false},
      // "*abc*" is the suffix "abc*": a literal star at the end, not "contains abc".
      {"both stars ending in star", "*abc*", s, true, "xabc*", true},
      {"both stars exact star", "*abc*", s, true, "abc*", true},
      {"both stars is not contains", "*abc*", s, true, "xabcx", false},
      {"both stars plain", "*abc*", s, true, "abc", false},
      {"inner star is literal", "a*c", s, true, "a*c", true},
      {"inner star is not a wildcard", "a*c", s, true, "abc", false},
      {"principal prefix", "cluster.local/ns/default/*", s, true, "cluster.local/ns/default/sa/web",
       true},
      {"principal suffix", "*/sa/web", s, true, "cluster.local/ns/default/sa/web", true},
  };
  for (const MatchRow& r : rows) {
    checkMatches(r);
  }
}

TEST(StringPatternTest, MatchesCaseInsensitive) {
  const Case i = Case::kInsensitive;
  const MatchRow rows[] = {
      {"exact other case", "Example.COM", i, false, "example.com", true},
      {"exact different", "example.com", i, false, "example.org", false},
      {"exact length differs", "example.com", i, false, "example.co", false},
      {"prefix other case", "API.*", i, false, "api.example.com", true},
      {"prefix too short", "API.*", i, false, "ap", false},
      {"suffix other case", "*.Example.com", i, false, "www.EXAMPLE.COM", true},
      {"suffix different", "*.example.com", i, false, "www.example.org", false},
      // Only ASCII letters fold: other bytes must be equal.
      {"non-letters unchanged", "a-1_[", i, false, "A-1_[", true},
      {"bracket is not a letter", "[", i, false, "{", false},
      {"at sign is not a letter", "@", i, false, "`", false},
      {"utf-8 bytes compared exactly", "\xC3\xA9", i, false, "\xC3\x89", false},
  };
  for (const MatchRow& r : rows) {
    checkMatches(r);
  }
}

// "*" is ".+" for principals, paths and SNI (the value must be non-empty) and ".*" for
// attributes where presence is what counts.
TEST(StringPatternTest, AnyAndEmptyValues) {
  const Case s = Case::kSensitive;
  const MatchRow rows[] = {
      {"any non-empty required, empty value", "*", s, true, "", false},
      {"any non-empty required, value", "*", s, true, "x", true},
      {"any presence, empty value", "*", s, false, "", true},
      {"any presence, value", "*", s, false, "anything at all", true},
      {"prefix does not match empty", "a*", s, false, "", false},
      {"suffix does not match empty", "*a", s, false, "", false},
      {"any ignores case setting", "*", Case::kInsensitive, true, "X", true},
  };
  for (const MatchRow& r : rows) {
    checkMatches(r);
  }
}

TEST(StringPatternTest, EqualsIgnoreCase) {
  struct Row {
    std::string a;
    std::string b;
    bool want;
  };
  const Row rows[] = {
      {"", "", true},        {"abc", "ABC", true}, {"aBc", "AbC", true},
      {"abc", "abd", false}, {"abc", "ab", false}, {"Z", "z", true},
      {"[", "{", false},     {"@", "`", false},    {"0", "0", true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE("\"" + r.a + "\" vs \"" + r.b + "\"");
    EXPECT_EQ(equalsIgnoreCase(r.a, r.b), r.want);
    EXPECT_EQ(equalsIgnoreCase(r.b, r.a), r.want);
  }
}

// Case folding is tried for every byte 0..255: only A-Z and a-z fold onto each other.
TEST(StringPatternTest, CaseFoldingEveryByte) {
  for (int x = 0; x < 256; ++x) {
    for (int y = 0; y < 256; ++y) {
      const char a = static_cast<char>(x);
      const char b = static_cast<char>(y);
      const auto lower = [](int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; };
      const bool want = lower(x) == lower(y);
      if (equalsIgnoreCase(std::string(1, a), std::string(1, b)) != want) {
        ADD_FAILURE() << "bytes " << x << " and " << y << ": want " << want;
      }
    }
  }
}

}  // namespace
}  // namespace palisade::policy
