#include "policy/spiffe_id.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

// SpiffeId::parse against the SPIFFE-ID standard (github.com/spiffe/spiffe,
// standards/SPIFFE-ID.md, sections 2, 2.1, 2.2 and 2.3) and the cases go-spiffe's
// spiffeid package tests (v2/spiffeid/id_test.go, errors.go).

namespace palisade::policy {
namespace {

struct ParseCase {
  std::string name;
  std::string input;
  std::string want_trust_domain;  // checked when want_error is empty
  std::string want_path;
  std::string_view want_error;
};

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

// A byte as something a reader can find in a failure message.
std::string describeByte(int b) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02X", b);
  return buf;
}

void checkParse(const ParseCase& c) {
  SCOPED_TRACE(c.name + ": \"" + c.input + "\"");
  Result<SpiffeId> got = SpiffeId::parse(c.input);
  if (!c.want_error.empty()) {
    ASSERT_FALSE(got.ok()) << "parsed as " << got->uri();
    EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(got.error().message, c.want_error);
    return;
  }
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->uri(), c.input);
  EXPECT_EQ(got->trustDomain(), c.want_trust_domain);
  EXPECT_EQ(got->path(), c.want_path);
  EXPECT_EQ(got->principal(), c.input.substr(kSpiffeScheme.size()));
}

TEST(SpiffeIdTest, ParsesValidIds) {
  const ParseCase cases[] = {
      {"kubernetes identity",
       "spiffe://cluster.local/ns/default/sa/web",
       "cluster.local",
       "/ns/default/sa/web",
       {}},
      {"spec example services",
       "spiffe://staging.example.com/payments/mysql",
       "staging.example.com",
       "/payments/mysql",
       {}},
      {"spec example opaque",
       "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
       "example.com",
       "/9eebccd2-12bf-40a6-b262-65fe0487d453",
       {}},
      {"trust domain only", "spiffe://example", "example", "", {}},
      {"trust domain with every allowed class", "spiffe://a-b_c.9.z/x", "a-b_c.9.z", "/x", {}},
      // "this definition does not exclude IPv4 addresses in dotted-quad notation" (2.1)
      {"ipv4 trust domain", "spiffe://10.0.0.1/x", "10.0.0.1", "/x", {}},
      {"path is case-sensitive and keeps uppercase",
       "spiffe://example.org/Path/ELEMENT",
       "example.org",
       "/Path/ELEMENT",
       {}},
      {"path with every allowed class",
       "spiffe://example.org/aZ09.-_",
       "example.org",
       "/aZ09.-_",
       {}},
      // Only "." and ".." are relative path modifiers (2.2); other dotted names are segments.
      {"segment starting with a dot", "spiffe://example.org/.a", "example.org", "/.a", {}},
      {"segment of three dots", "spiffe://example.org/...", "example.org", "/...", {}},
      {"segment ending with dots", "spiffe://example.org/a../b.", "example.org", "/a../b.", {}},
      {"trust domain of dots", "spiffe://../x", "..", "/x", {}},
      {"one-character trust domain", "spiffe://a", "a", "", {}},
  };
  for (const ParseCase& c : cases) {
    checkParse(c);
  }
}

TEST(SpiffeIdTest, RefusesInvalidIds) {
  const ParseCase cases[] = {
      {"empty", "", {}, {}, kSpiffeEmpty},
      // "Valid SPIFFE IDs MUST have the scheme set to `spiffe`" (2); go-spiffe refuses
      // "SPIFFE://" as "scheme is missing or invalid" too.
      {"http scheme", "http://example.org/path", {}, {}, kSpiffeWrongScheme},
      {"uppercase scheme", "SPIFFE://example.org/path", {}, {}, kSpiffeWrongScheme},
      {"mixed-case scheme", "Spiffe://example.org/path", {}, {}, kSpiffeWrongScheme},
      {"no scheme", "example.org/path", {}, {}, kSpiffeWrongScheme},
      {"ip and port without scheme", "192.168.2.2:6688", {}, {}, kSpiffeWrongScheme},
      {"single slash", "spiffe:/example.org/path", {}, {}, kSpiffeWrongScheme},
      {"no slashes", "spiffe:example.org/path", {}, {}, kSpiffeWrongScheme},
      {"scheme without colon", "spiffe//example.org", {}, {}, kSpiffeWrongScheme},
      {"leading space", " spiffe://example.org", {}, {}, kSpiffeWrongScheme},
      // "include a non-zero trust domain name" (2); "The host part of the authority MUST NOT
      // be empty." (2.1)
      {"scheme only", "spiffe://", {}, {}, kSpiffeMissingTrustDomain},
      {"empty host", "spiffe:///path", {}, {}, kSpiffeMissingTrustDomain},
      {"empty host then query", "spiffe://?x", {}, {}, kSpiffeMissingTrustDomain},
      // "The host part of the authority MUST be lowercase." (2.1)
      {"uppercase trust domain", "spiffe://Example.org/path", {}, {}, kSpiffeTrustDomainChars},
      {"all uppercase trust domain", "spiffe://EXAMPLE.ORG", {}, {}, kSpiffeTrustDomainChars},
      // "The userinfo and port parts of the authority component MUST be empty." (2.1)
      {"port", "spiffe://example.org:8080/path", {}, {}, kSpiffePort},
      {"empty port", "spiffe://example.org:/path", {}, {}, kSpiffePort},
      {"userinfo", "spiffe://user@example.org/path", {}, {}, kSpiffeUserinfo},
      // The ":" of "user:password" comes before the "@", so the colon rule is reported.
      {"userinfo with password", "spiffe://user:password@example.org/path", {}, {}, kSpiffePort},
      {"ipv6 trust domain", "spiffe://[::1]/path", {}, {}, kSpiffeTrustDomainChars},
      // "MUST NOT include a query or fragment component" (2)
      {"query after path", "spiffe://example.org/path?query=1", {}, {}, kSpiffeQuery},
      {"query after trust domain", "spiffe://example.org?query=1", {}, {}, kSpiffeQuery},
      {"empty query", "spiffe://example.org/path?", {}, {}, kSpiffeQuery},
      {"fragment after path", "spiffe://example.org/path#fragment-1", {}, {}, kSpiffeFragment},
      {"fragment after trust domain", "spiffe://example.org#f", {}, {}, kSpiffeFragment},
      {"empty query then fragment", "spiffe://example.org/path?#fragment-1", {}, {}, kSpiffeQuery},
      // "The host part of the authority MUST NOT contain percent-encoded characters." (2.1)
      // "The path component MUST NOT include percent-encoded characters." (2.2)
      {"percent in trust domain", "spiffe://ex%41mple.org/path", {}, {}, kSpiffePercent},
      {"percent-encoded utf-8 trust domain", "spiffe://%F0%9F%A4%AF/path", {}, {}, kSpiffePercent},
      {"percent in path", "spiffe://example.org/a%20b", {}, {}, kSpiffePercent},
      {"percent-encoded utf-8 path", "spiffe://example.org/%F0%9F%A4%AF", {}, {}, kSpiffePercent},
      {"invalid percent escape", "spiffe://example.org/elem%5uent", {}, {}, kSpiffePercent},
      {"encoded slash", "spiffe://example.org/a%2Fb", {}, {}, kSpiffePercent},
      // "MUST NOT include segments that are empty or are relative path modifiers" (2.2)
      {"empty first segment", "spiffe://example.org//path", {}, {}, kSpiffeEmptySegment},
      {"empty middle segment", "spiffe://example.org/a//b", {}, {}, kSpiffeEmptySegment},
      {"only two slashes", "spiffe://example.org//", {}, {}, kSpiffeEmptySegment},
      {"empty segment before trailing slash",
       "spiffe://example.org/path//",
       {},
       {},
       kSpiffeEmptySegment},
      {"dot segment", "spiffe://example.org/./path", {}, {}, kSpiffeDotSegment},
      {"dot-dot segment", "spiffe://example.org/../path", {}, {}, kSpiffeDotSegment},
      {"last dot segment", "spiffe://example.org/path/.", {}, {}, kSpiffeDotSegment},
      {"last dot-dot segment", "spiffe://example.org/path/..", {}, {}, kSpiffeDotSegment},
      // "The path component MUST NOT include a trailing `/`." (2.2)
      {"slash after trust domain", "spiffe://example.org/", {}, {}, kSpiffeTrailingSlash},
      {"trailing slash", "spiffe://example.org/path/", {}, {}, kSpiffeTrailingSlash},
      // "Individual path segments MUST contain only letters, numbers, dots, dashes, and
      // underscores" (2.2); go-spiffe's old sub-delims and colons are no longer allowed.
      {"colon in path", "spiffe://example.org/pa:th", {}, {}, kSpiffePathChars},
      {"at sign in path", "spiffe://example.org/pa@th", {}, {}, kSpiffePathChars},
      {"sub-delims in path", "spiffe://example.org/p!a$t&h'", {}, {}, kSpiffePathChars},
      {"bracket in path", "spiffe://example.org/elem[ent", {}, {}, kSpiffePathChars},
      {"space in path", "spiffe://example.org/a b", {}, {}, kSpiffePathChars},
      {"tilde in path", "spiffe://example.org/~user", {}, {}, kSpiffePathChars},
      {"spiffe id in path",
       "spiffe://example.org/spiffe://example.org/x",
       {},
       {},
       kSpiffePathChars},
      {"raw utf-8 in path", "spiffe://example.org/\xC3\xA9", {}, {}, kSpiffePathChars},
      {"raw utf-8 trust domain", "spiffe://\xC3\xA9.org/x", {}, {}, kSpiffeTrustDomainChars},
  };
  for (const ParseCase& c : cases) {
    checkParse(c);
  }
}

// "SPIFFE implementations MUST support SPIFFE URIs up to 2048 bytes in length" and "a maximum
// length of a trust domain name is 255 bytes" (2.3).
TEST(SpiffeIdTest, LengthLimits) {
  const std::string prefix = "spiffe://example.org/";
  const std::string at_limit = prefix + repeat('a', kSpiffeMaxLength - prefix.size());
  const std::string over_limit = at_limit + "b";
  const std::string td_at_limit = repeat('t', kTrustDomainMaxLength);
  const std::string td_over_limit = td_at_limit + "t";
  ASSERT_EQ(at_limit.size(), 2048u);
  ASSERT_EQ(td_at_limit.size(), 255u);

  const ParseCase cases[] = {
      {"2048 bytes", at_limit, "example.org", at_limit.substr(prefix.size() - 1), {}},
      {"2049 bytes", over_limit, {}, {}, kSpiffeTooLong},
      {"trust domain of 255 bytes", "spiffe://" + td_at_limit + "/x", td_at_limit, "/x", {}},
      {"trust domain of 255 bytes without path", "spiffe://" + td_at_limit, td_at_limit, "", {}},
      {"trust domain of 256 bytes",
       "spiffe://" + td_over_limit + "/x",
       {},
       {},
       kSpiffeTrustDomainTooLong},
      {"trust domain of 256 bytes without path",
       "spiffe://" + td_over_limit,
       {},
       {},
       kSpiffeTrustDomainTooLong},
      // The whole-URI limit is checked first: a long ID with a bad scheme is "too long".
      {"too long and wrong scheme", "http://" + repeat('a', 2048), {}, {}, kSpiffeTooLong},
  };
  for (const ParseCase& c : cases) {
    checkParse(c);
  }
}

// Every byte 0..255 in the trust domain: exactly [a-z0-9._-] is accepted (2.1). A byte that
// starts another URI part is refused under that part's rule.
TEST(SpiffeIdTest, TrustDomainCharsetEveryByte) {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (c == '/') {
      continue;  // ends the trust domain
    }
    SCOPED_TRACE(describeByte(b));
    const std::string td = std::string("trustdomain") + c;
    const std::string id = "spiffe://" + td + "/path";
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    Result<SpiffeId> got = SpiffeId::parse(id);
    Status bare = SpiffeId::validateTrustDomain(td);
    if (allowed) {
      ASSERT_TRUE(got.ok()) << got.error().message;
      EXPECT_EQ(got->trustDomain(), td);
      EXPECT_EQ(got->path(), "/path");
      EXPECT_TRUE(bare.ok());
      continue;
    }
    std::string_view want = kSpiffeTrustDomainChars;
    std::string_view want_bare = kSpiffeTrustDomainChars;
    switch (c) {
      case ':':
        want = want_bare = kSpiffePort;
        break;
      case '@':
        want = want_bare = kSpiffeUserinfo;
        break;
      case '%':
        want = want_bare = kSpiffePercent;
        break;
      case '?':
        want = want_bare = kSpiffeQuery;
        break;
      case '#':
        want = want_bare = kSpiffeFragment;
        break;
      default:
        break;
    }
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().message, want);
    ASSERT_FALSE(bare.ok());
    EXPECT_EQ(bare.error().message, want_bare);
  }
}

// Every byte 0..255 in a path segment: exactly [A-Za-z0-9._-] is accepted (2.2).
TEST(SpiffeIdTest, PathSegmentCharsetEveryByte) {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (c == '/') {
      continue;  // the segment delimiter
    }
    SCOPED_TRACE(describeByte(b));
    const std::string path = std::string("/path") + c;
    const std::string id = "spiffe://trustdomain" + path;
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    Result<SpiffeId> got = SpiffeId::parse(id);
    if (allowed) {
      ASSERT_TRUE(got.ok()) << got.error().message;
      EXPECT_EQ(got->path(), path);
      EXPECT_EQ(got->trustDomain(), "trustdomain");
      continue;
    }
    std::string_view want = kSpiffePathChars;
    if (c == '%') {
      want = kSpiffePercent;
    } else if (c == '?') {
      want = kSpiffeQuery;
    } else if (c == '#') {
      want = kSpiffeFragment;
    }
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().message, want);
  }
}

TEST(SpiffeIdTest, ValidateTrustDomain) {
  struct Case {
    std::string name;
    std::string input;
    std::string_view want_error;
  };
  const Case cases[] = {
      {"plain", "example.org", {}},
      {"empty", "", kSpiffeMissingTrustDomain},
      {"uppercase", "Example.org", kSpiffeTrustDomainChars},
      {"with scheme", "spiffe://example.org", kSpiffePort},
      {"with path", "example.org/x", kSpiffeTrustDomainChars},
      {"255 bytes", repeat('x', 255), {}},
      {"256 bytes", repeat('x', 256), kSpiffeTrustDomainTooLong},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Status got = SpiffeId::validateTrustDomain(c.input);
    if (c.want_error.empty()) {
      EXPECT_TRUE(got.ok()) << got.error().message;
    } else {
      ASSERT_FALSE(got.ok());
      EXPECT_EQ(got.error().message, c.want_error);
    }
  }
}

TEST(SpiffeIdTest, TrustDomainOnlyId) {
  Result<SpiffeId> id = SpiffeId::parse("spiffe://example");
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->uri(), "spiffe://example");
  EXPECT_EQ(id->trustDomain(), "example");
  EXPECT_EQ(id->path(), "");
  EXPECT_EQ(id->principal(), "example");
}

TEST(SpiffeIdTest, ViewsAndEquality) {
  Result<SpiffeId> a = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web");
  Result<SpiffeId> b = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web");
  Result<SpiffeId> c = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/Web");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(a->principal(), "cluster.local/ns/default/sa/web");
  EXPECT_EQ(a->trustDomain(), "cluster.local");
  EXPECT_EQ(a->path(), "/ns/default/sa/web");
  EXPECT_TRUE(*a == *b);
  EXPECT_FALSE(*a == *c);  // the path is case-sensitive (2.4)

  // A copy owns its own string: its views stay valid after the original is gone.
  std::optional<SpiffeId> copy;
  {
    Result<SpiffeId> tmp = SpiffeId::parse("spiffe://example.org/a/b");
    ASSERT_TRUE(tmp.ok());
    copy.emplace(*tmp);
  }
  EXPECT_EQ(copy->trustDomain(), "example.org");
  EXPECT_EQ(copy->path(), "/a/b");
}

TEST(SpiffeIdTest, KubernetesIdentity) {
  struct Case {
    std::string name;
    std::string input;
    std::optional<std::pair<std::string, std::string>> want;
  };
  const Case cases[] = {
      {"namespace and service account", "spiffe://cluster.local/ns/default/sa/web",
       std::pair<std::string, std::string>("default", "web")},
      {"dotted names", "spiffe://td/ns/a.b/sa/c-d_e",
       std::pair<std::string, std::string>("a.b", "c-d_e")},
      {"names that look like keywords", "spiffe://td/ns/sa/sa/ns",
       std::pair<std::string, std::string>("sa", "ns")},
      {"trust domain only", "spiffe://cluster.local", std::nullopt},
      {"too many segments", "spiffe://td/ns/default/sa/web/extra", std::nullopt},
      {"namespace only", "spiffe://td/ns/default", std::nullopt},
      {"no service account", "spiffe://td/ns/default/sa", std::nullopt},
      {"swapped order", "spiffe://td/sa/web/ns/default", std::nullopt},
      {"wrong keyword", "spiffe://td/namespace/default/sa/web", std::nullopt},
      {"keywords are case-sensitive", "spiffe://td/NS/default/SA/web", std::nullopt},
      {"extra segment in the middle", "spiffe://td/ns/a/b/sa/web", std::nullopt},
      {"other shape", "spiffe://td/payments/mysql", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + ": " + c.input);
    Result<SpiffeId> id = SpiffeId::parse(c.input);
    ASSERT_TRUE(id.ok()) << id.error().message;
    std::optional<KubernetesIdentity> got = kubernetesIdentity(*id);
    if (!c.want) {
      EXPECT_FALSE(got.has_value()) << got->ns << "/" << got->service_account;
      continue;
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->ns, c.want->first);
    EXPECT_EQ(got->service_account, c.want->second);
  }
}

}  // namespace
}  // namespace palisade::policy
