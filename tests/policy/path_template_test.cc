#include "policy/path_template.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <string_view>

// PathTemplate against Istio and Envoy:
// - Istio (pkg/config/security/security.go): a value is a template if it contains "{*}" or
//   "{**}"; a template must not contain named variables ("{name}", "{name=*}"), "{}", or bare
//   "*" / "**" segments. Istio turns "{*}" into "*" and "{**}" into "**" and hands the result
//   to Envoy's uri_template matcher (pilot/pkg/security/authz/matcher/path_template.go).
// - Envoy (source/extensions/path/uri_template_lib/uri_template_internal.cc): "*" is
//   [pchar]+ (one segment, at least one character), "**" is [pchar or "/"]* (zero or more
//   characters across segments) and no operator may follow "**". pchar here is
//   "a-zA-Z0-9-._~%!$&'()+,;:@=".

namespace palisade::policy {
namespace {

std::string unsupported(const std::string& v) {
  return "invalid or unsupported path template \"" + v +
         "\": only {*} and {**} operators are supported";
}
std::string notLast(const std::string& v) {
  return "invalid path template \"" + v + "\": {**} must be the last operator";
}
std::string adjacent(const std::string& v) {
  return "invalid path template \"" + v + "\": operators must be separated by text";
}

TEST(PathTemplateTest, IsTemplate) {
  struct Row {
    std::string input;
    bool want;
  };
  const Row rows[] = {
      {"/foo/{*}", true},  {"/foo/{**}", true}, {"{*}", true},     {"/a{**}b", true},
      {"/foo/bar", false}, {"/foo/*", false},   {"*", false},      {"/foo/**", false},
      {"/{name}", false},  {"/{}", false},      {"/{x=*}", false}, {"/{ * }", false},
      {"", false},         {"{*", false},       {"*}", false},     {"/{x=**}", false},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.input);
    EXPECT_EQ(PathTemplate::isTemplate(r.input), r.want);
  }
}

struct ValidateRow {
  std::string name;
  std::string input;
  std::string want_error;  // empty: valid
};

void checkValidate(const ValidateRow& r) {
  SCOPED_TRACE(r.name + ": \"" + r.input + "\"");
  Status got = PathTemplate::validate(r.input);
  if (r.want_error.empty()) {
    EXPECT_TRUE(got.ok()) << got.error().message;
    return;
  }
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(got.error().message, r.want_error);
}

TEST(PathTemplateTest, Validate) {
  const ValidateRow rows[] = {
      // Plain paths and Istio's prefix/suffix forms are not templates: always valid here.
      {"plain", "/foo/bar", {}},
      {"istio prefix", "/foo/*", {}},
      {"istio suffix", "*.json", {}},
      {"any", "*", {}},
      // Without "{*}" or "{**}" Istio does not read braces as a template: an exact path.
      {"named variable alone", "/{name}", {}},
      {"empty braces alone", "/{}", {}},
      {"named match alone", "/{x=*}", {}},
      // Supported templates.
      {"one segment", "/foo/{*}", {}},
      {"rest of path", "/foo/{**}", {}},
      {"one then rest", "/{*}/x/{**}", {}},
      {"suffix after one", "/{*}.json", {}},
      {"suffix after rest", "/{**}.mpd", {}},
      {"text after rest", "/foo/{**}/bar.tmp", {}},
      {"two single segments", "/{*}/{*}", {}},
      {"rest alone", "/{**}", {}},
      // Named variables, "{}" and bare "*" / "**" alongside a template are refused, as
      // Istio's unsupportedPathTempRegex does.
      {"named variable", "/{name}/{*}", unsupported("/{name}/{*}")},
      {"named variable after", "/{*}/{name}", unsupported("/{*}/{name}")},
      {"empty braces", "/{}/{*}", unsupported("/{}/{*}")},
      {"named match", "/{x=*}/{*}", unsupported("/{x=*}/{*}")},
      {"named rest match", "/{**}/{x=**}", unsupported("/{**}/{x=**}")},
      {"bare star", "/*/{*}", unsupported("/*/{*}")},
      {"bare star after", "/{*}/*", unsupported("/{*}/*")},
      {"bare double star", "/**/{*}", unsupported("/**/{*}")},
      {"bare double star after", "/{*}/**", unsupported("/{*}/**")},
      {"star inside braces", "/{***}/{*}", unsupported("/{***}/{*}")},
      {"unbalanced open", "/{*}/{", unsupported("/{*}/{")},
      {"unbalanced close", "/{*}/}", unsupported("/{*}/}")},
      // "{**}" must be the last operator (Envoy: "Glob after text glob.").
      {"rest then one", "/{**}/{*}", notLast("/{**}/{*}")},
      {"rest then rest", "/{**}/{**}", notLast("/{**}/{**}")},
      {"rest then one adjacent", "/{**}{*}", notLast("/{**}{*}")},
      // Two operators with nothing between them.
      {"one one adjacent", "/{*}{*}", adjacent("/{*}{*}")},
      {"one rest adjacent", "/{*}{**}", adjacent("/{*}{**}")},
  };
  for (const ValidateRow& r : rows) {
    checkValidate(r);
  }
}

// Templates Istio passes through but Envoy's parser refuses, so an Istio sidecar never
// applies them (its listener is rejected). Palisade should refuse them at load rather than
// give them a meaning of its own. The exact text is not pinned: no message exists yet.
TEST(PathTemplateTest, ValidateRefusesWhatEnvoyRefuses) {
  const char* rows[] = {
      // parseLiteral("foo*"): '*' is not a literal character ("Invalid literal").
      "/foo{*}",
      "/foo{**}",
      // A suffix after an operator must end the pattern ("Prefix match not supported.").
      "/{*}.json/x",
      // parsePathPatternSyntax: the pattern must match "^/[[:graph:]]*$".
      "{*}/foo",
      // Text between two operators in one segment: the suffix "x*" is not a literal.
      "/{*}x{*}",
      // A literal that is not pchar (Envoy parseLiteral; Istio's newest CheckValidPathTemplate
      // refuses it too: "Contains segment ... with invalid string literal").
      "/a b/{*}",
      "/a\"b/{*}",
  };
  for (const char* in : rows) {
    SCOPED_TRACE(in);
    EXPECT_FALSE(PathTemplate::validate(in).ok()) << "accepted; Envoy refuses it";
  }
}

struct MatchRow {
  std::string pattern;
  std::string path;
  bool want;
};

void checkMatches(const MatchRow& r) {
  SCOPED_TRACE("\"" + r.pattern + "\" vs \"" + r.path + "\"");
  ASSERT_TRUE(PathTemplate::validate(r.pattern).ok());
  ASSERT_TRUE(PathTemplate::isTemplate(r.pattern));
  EXPECT_EQ(PathTemplate::compile(r.pattern).matches(r.path), r.want);
}

TEST(PathTemplateTest, MatchesOneSegment) {
  const MatchRow rows[] = {
      {"/foo/{*}", "/foo/bar", true},
      {"/foo/{*}", "/foo/b", true},
      {"/foo/{*}", "/foo/bar/baz", false},
      {"/foo/{*}", "/foo/", false},  // "*" is one or more characters
      {"/foo/{*}", "/foo", false},
      {"/foo/{*}", "/foo//", false},
      {"/foo/{*}", "/foo/bar/", false},
      {"/foo/{*}", "/fo/bar", false},
      {"/foo/{*}", "/foox/bar", false},
      {"/{*}/{*}", "/a/b", true},
      {"/{*}/{*}", "/a/b/c", false},
      {"/{*}/{*}", "/a", false},
      {"/{*}/{*}", "//b", false},
      {"/{*}/bar", "/foo/bar", true},
      {"/{*}/bar", "/foo/baz", false},
      {"/{*}/bar", "/a/b/bar", false},
      // A suffix after "{*}" (Envoy "/*.json").
      {"/{*}.json", "/a.json", true},
      {"/{*}.json", "/a.b.json", true},
      {"/{*}.json", "/.json", false},
      {"/{*}.json", "/a/b.json", false},
      {"/{*}.json", "/a.json/x", false},
      {"/{*}.json", "/a.jsonx", false},
  };
  for (const MatchRow& r : rows) {
    checkMatches(r);
  }
}

TEST(PathTemplateTest, MatchesRestOfPath) {
  const MatchRow rows[] = {
      {"/foo/{**}", "/foo/a", true},
      {"/foo/{**}", "/foo/a/b", true},
      {"/foo/{**}", "/foo/a/b/", true},
      {"/foo/{**}", "/foo/", true},  // "**" is zero or more characters
      {"/foo/{**}", "/foo", false},
      {"/foo/{**}", "/foobar", false},
      {"/foo/{**}", "/bar/foo/a", false},
      {"/{**}", "/", true},
      {"/{**}", "/anything/at/all", true},
      {"/{*}/x/{**}", "/a/x/", true},
      {"/{*}/x/{**}", "/a/x/b", true},
      {"/{*}/x/{**}", "/a/x/b/c", true},
      {"/{*}/x/{**}", "/a/x", false},
      {"/{*}/x/{**}", "/a/b/x/c", false},
      {"/{*}/x/{**}", "//x/c", false},
      {"/foo/{**}/bar.tmp", "/foo/a/b/bar.tmp", true},
      {"/foo/{**}/bar.tmp", "/foo/a/bar.tmp", true},
      {"/foo/{**}/bar.tmp", "/foo//bar.tmp", true},
      {"/foo/{**}/bar.tmp", "/foo/bar.tmp", false},
      {"/foo/{**}/bar.tmp", "/foo/a/bar.tmpx", false},
      {"/{**}.mpd", "/content/123/manifest.mpd", true},  // Envoy's own example
      {"/{**}.mpd", "/.mpd", true},
      {"/{**}.mpd", "/content/manifest.mp4", false},
  };
  for (const MatchRow& r : rows) {
    checkMatches(r);
  }
}

bool isEnvoyPchar(char c) {
  static constexpr std::string_view kExtra = "-._~%!$&'()+,;:@=";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         kExtra.find(c) != std::string_view::npos;
}

// Every byte 0..255 inside a "{*}" and a "{**}" segment: exactly Envoy's pchar class
// matches, plus "/" for "{**}".
TEST(PathTemplateTest, OperatorCharsetEveryByte) {
  const PathTemplate one = PathTemplate::compile("/foo/{*}");
  const PathTemplate rest = PathTemplate::compile("/foo/{**}");
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    char label[16];
    std::snprintf(label, sizeof label, "byte 0x%02X", b);
    SCOPED_TRACE(label);
    const std::string path = std::string("/foo/a") + c + "b";
    EXPECT_EQ(one.matches(path), isEnvoyPchar(c));
    EXPECT_EQ(rest.matches(path), isEnvoyPchar(c) || c == '/');
  }
}

}  // namespace
}  // namespace palisade::policy
