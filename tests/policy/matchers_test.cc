#include "policy/matchers.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy/spiffe_id.h"

// The matchers one at a time, against the Envoy matchers Istio generates for the same value
// (pilot/pkg/security/authz/model/generator.go, .../matcher/*.go). StringPattern and
// PathTemplate have their own tests.

namespace palisade::policy {
namespace {

std::optional<SpiffeId> id(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  auto parsed = SpiffeId::parse(text);
  EXPECT_TRUE(parsed.ok()) << "bad test SPIFFE ID " << text;
  if (!parsed.ok()) {
    return std::nullopt;
  }
  return std::move(parsed).value();
}

IpAddress ip(std::string_view text) {
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.ok()) << "bad test address " << text;
  return parsed.ok() ? *parsed : IpAddress();
}

std::vector<CidrRange> cidrs(const std::vector<std::string>& texts) {
  std::vector<CidrRange> out;
  for (const std::string& t : texts) {
    auto parsed = CidrRange::parse(t);
    EXPECT_TRUE(parsed.ok()) << "bad test range " << t;
    if (parsed.ok()) {
      out.push_back(*parsed);
    }
  }
  return out;
}

// A matcher over the peer's SPIFFE ID, checked against one peer ("" for plaintext).
struct PeerRow {
  std::string name;
  std::vector<std::string> values;
  std::string peer;
  bool want;
};

template <typename Make>
void expectPeerRows(const std::vector<PeerRow>& rows, Make make) {
  for (const PeerRow& row : rows) {
    SCOPED_TRACE(row.name + " (peer \"" + row.peer + "\")");
    std::unique_ptr<Matcher> m = make(row.values);
    std::optional<SpiffeId> peer = id(row.peer);
    RequestView r;
    r.peer = peer ? &*peer : nullptr;
    EXPECT_EQ(m->matches(r), row.want);
  }
}

TEST(MatchersTest, GlobMatch) {
  struct Row {
    std::string pattern;
    std::string text;
    bool want;
  };
  const std::vector<Row> rows = {
      {"", "", true},
      {"", "a", false},
      {"*", "", true},
      {"*", "abc", true},
      {"abc", "abc", true},
      {"abc", "abd", false},
      {"a*c", "ac", true},
      {"a*c", "abbbc", true},
      {"a*c", "abcd", false},
      {"a**c", "ac", true},
      {"*/ns/foo/*", "spiffe://td/ns/foo/sa/x", true},
      {"*/ns/foo/*", "spiffe://td/ns/foobar/sa/x", false},
      {"*/ns/f*o/*", "spiffe://td/ns/fxyzo/sa/x", true},
      {"*a*a*a*a*b", std::string(64, 'a'), false},
      {"*a*a*a*a*b", std::string(64, 'a') + "b", true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE("\"" + row.pattern + "\" vs \"" + row.text + "\"");
    EXPECT_EQ(globMatch(row.pattern, row.text), row.want);
  }
}

TEST(MatchersTest, Principal) {
  // Envoy `authenticated.principal_name`: "spiffe://" + value (exact, prefix), the regex
  // "spiffe://.*<suffix>", or ".+" for "*"; no TLS peer never matches.
  expectPeerRows(
      {
          {"exact", {"td/ns/a/sa/b"}, "spiffe://td/ns/a/sa/b", true},
          {"exact other", {"td/ns/a/sa/b"}, "spiffe://td/ns/a/sa/c", false},
          {"exact plaintext", {"td/ns/a/sa/b"}, "", false},
          {"exact is not a prefix", {"td/ns/a/sa/b"}, "spiffe://td/ns/a/sa/bb", false},
          {"any", {"*"}, "spiffe://td", true},
          {"any plaintext", {"*"}, "", false},
          {"prefix", {"td/ns/a/*"}, "spiffe://td/ns/a/sa/b", true},
          {"prefix other", {"td/ns/a/*"}, "spiffe://td/ns/ab/sa/b", false},
          {"suffix", {"*/sa/b"}, "spiffe://td/ns/a/sa/b", true},
          {"suffix other", {"*/sa/b"}, "spiffe://td/ns/a/sa/bc", false},
          {"trust domain only", {"td"}, "spiffe://td", true},
          {"set of exact values", {"td/x", "td/y", "td/z"}, "spiffe://td/y", true},
          {"exact and patterns", {"td/x", "*/z"}, "spiffe://td/q/z", true},
          {"case-sensitive", {"td/ns/A/sa/b"}, "spiffe://td/ns/a/sa/b", false},
      },
      [](const std::vector<std::string>& v) { return std::make_unique<PrincipalMatcher>(v); });
}

TEST(MatchersTest, Namespace) {
  // Istio: regex ".*/ns/<value>/.*" on the URI SAN, every "*" of the value turned into ".*".
  expectPeerRows(
      {
          {"exact", {"foo"}, "spiffe://td/ns/foo/sa/x", true},
          {"exact other", {"foo"}, "spiffe://td/ns/bar/sa/x", false},
          {"exact plaintext", {"foo"}, "", false},
          {"exact needs a following segment", {"foo"}, "spiffe://td/ns/foo", false},
          {"exact, second /ns/", {"foo"}, "spiffe://td/ns/bar/ns/foo/x", true},
          {"exact, /ns/ in the trust domain position", {"foo"}, "spiffe://ns/foo/bar", true},
          {"exact, not a segment prefix", {"foo"}, "spiffe://td/ns/foobar/sa/x", false},
          {"any", {"*"}, "spiffe://td/ns/x/sa/y", true},
          {"any without /ns/", {"*"}, "spiffe://td/web", false},
          {"prefix", {"fo*"}, "spiffe://td/ns/foo/sa/x", true},
          {"suffix", {"*oo"}, "spiffe://td/ns/foo/sa/x", true},
          {"inner wildcard", {"f*o"}, "spiffe://td/ns/fzzo/sa/x", true},
          {"wildcard spans segments", {"*-prod"}, "spiffe://td/ns/a/sa/b-prod/c", true},
          {"several values", {"bar", "foo"}, "spiffe://td/ns/foo/sa/x", true},
      },
      [](const std::vector<std::string>& v) { return std::make_unique<NamespaceMatcher>(v); });
}

TEST(MatchersTest, ServiceAccount) {
  // Istio: regex "spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?", <ns> the policy namespace ("pol")
  // when the value is a bare name.
  expectPeerRows(
      {
          {"bare name", {"web"}, "spiffe://td/ns/pol/sa/web", true},
          {"bare name, other namespace", {"web"}, "spiffe://td/ns/other/sa/web", false},
          {"ns/name", {"other/web"}, "spiffe://td/ns/other/sa/web", true},
          {"ns/name, policy namespace", {"other/web"}, "spiffe://td/ns/pol/sa/web", false},
          {"longer name", {"web"}, "spiffe://td/ns/pol/sa/web2", false},
          {"shorter name", {"web2"}, "spiffe://td/ns/pol/sa/web", false},
          {"trailing segments", {"web"}, "spiffe://td/ns/pol/sa/web/x", true},
          {"segments between", {"web"}, "spiffe://td/ns/pol/a/b/sa/web", true},
          {"sa glued to a segment", {"web"}, "spiffe://td/ns/pol/xsa/web", false},
          {"trust domain required", {"web"}, "spiffe://ns/pol/sa/web", false},
          {"plaintext", {"web"}, "", false},
          {"several values", {"other/a", "web"}, "spiffe://td/ns/pol/sa/web", true},
      },
      [](const std::vector<std::string>& v) {
        return std::make_unique<ServiceAccountMatcher>(v, "pol");
      });
}

TEST(MatchersTest, Ip) {
  struct Row {
    std::string name;
    IpMatcher::Which which;
    std::vector<std::string> ranges;
    std::string source;
    std::string remote;  // "" unknown
    std::string destination;
    bool want;
  };
  using W = IpMatcher::Which;
  const std::vector<Row> rows = {
      {"source inside", W::kSource, {"10.0.0.0/8"}, "10.1.2.3", "", "192.168.0.1", true},
      {"source outside", W::kSource, {"10.0.0.0/8"}, "11.1.2.3", "", "10.0.0.1", false},
      {"source ignores remote",
       W::kSource,
       {"10.0.0.0/8"},
       "11.1.2.3",
       "10.0.0.1",
       "1.1.1.1",
       false},
      {"remote inside", W::kRemote, {"10.0.0.0/8"}, "11.1.2.3", "10.0.0.1", "1.1.1.1", true},
      {"remote known, source inside",
       W::kRemote,
       {"10.0.0.0/8"},
       "10.1.2.3",
       "11.0.0.1",
       "1.1.1.1",
       false},
      {"remote unknown uses source", W::kRemote, {"10.0.0.0/8"}, "10.1.2.3", "", "1.1.1.1", true},
      {"destination inside", W::kDestination, {"10.0.0.0/8"}, "1.1.1.1", "", "10.0.0.1", true},
      {"destination outside", W::kDestination, {"10.0.0.0/8"}, "10.1.1.1", "", "11.0.0.1", false},
      {"single address", W::kSource, {"10.1.2.3"}, "10.1.2.3", "", "1.1.1.1", true},
      {"single address other", W::kSource, {"10.1.2.3"}, "10.1.2.4", "", "1.1.1.1", false},
      {"several ranges",
       W::kSource,
       {"192.168.0.0/16", "10.0.0.0/8"},
       "10.9.9.9",
       "",
       "1.1.1.1",
       true},
      {"ipv6", W::kSource, {"2001:db8::/32"}, "2001:db8:1::1", "", "1.1.1.1", true},
      {"ipv6 range, ipv4 address", W::kSource, {"2001:db8::/32"}, "10.0.0.1", "", "1.1.1.1", false},
      {"ipv4 range, ipv6 address", W::kSource, {"0.0.0.0/0"}, "2001:db8::1", "", "1.1.1.1", false},
      {"all ipv4", W::kSource, {"0.0.0.0/0"}, "203.0.113.9", "", "1.1.1.1", true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    IpMatcher m(row.which, cidrs(row.ranges));
    RequestView r;
    r.source_ip = ip(row.source);
    if (!row.remote.empty()) {
      r.remote_ip = ip(row.remote);
    }
    r.destination_ip = ip(row.destination);
    EXPECT_EQ(m.matches(r), row.want);
  }
  // An unknown address matches no range.
  IpMatcher all(IpMatcher::Which::kSource, cidrs({"0.0.0.0/0", "::/0"}));
  EXPECT_FALSE(all.matches(RequestView()));
}

TEST(MatchersTest, Port) {
  PortMatcher m({80, 8080});
  RequestView r;
  r.destination_port = 8080;
  EXPECT_TRUE(m.matches(r));
  r.destination_port = 80;
  EXPECT_TRUE(m.matches(r));
  r.destination_port = 443;
  EXPECT_FALSE(m.matches(r));
}

TEST(MatchersTest, Attribute) {
  using A = AttributeMatcher::Attribute;
  struct Row {
    std::string name;
    A attribute;
    std::vector<std::string> values;
    std::string header_name;
    std::string actual;  // the attribute's value; for kHeader the header "X-Test"'s value
    bool present;        // kHeader only: whether the request carries X-Test
    bool want;
  };
  const std::vector<Row> rows = {
      // hosts: Istio's HostMatcher, a header matcher on :authority ignoring case; "*" present.
      {"host exact", A::kHost, {"a.example"}, "", "A.Example", true, true},
      {"host prefix", A::kHost, {"a.*"}, "", "A.example", true, true},
      {"host suffix", A::kHost, {"*.EXAMPLE"}, "", "a.example", true, true},
      {"host any", A::kHost, {"*"}, "", "x", true, true},
      {"host with port", A::kHost, {"a.example"}, "", "a.example:80", true, false},
      // methods: a header matcher on :method, case-sensitive; "*" present.
      {"method exact", A::kMethod, {"GET"}, "", "GET", true, true},
      {"method case", A::kMethod, {"GET"}, "", "Get", true, false},
      {"method any", A::kMethod, {"*"}, "", "PURGE", true, true},
      // paths: Envoy's url_path (no query, no fragment); "*" is ".+".
      {"path exact", A::kPath, {"/a"}, "", "/a?b", true, true},
      {"path exact fragment", A::kPath, {"/a"}, "", "/a#b", true, true},
      {"path prefix", A::kPath, {"/a/*"}, "", "/a/b/c", true, true},
      {"path suffix", A::kPath, {"*.js"}, "", "/x/y.js?v=1", true, true},
      {"path suffix in query only", A::kPath, {"*.js"}, "", "/x?y.js", true, false},
      {"path any", A::kPath, {"*"}, "", "/", true, true},
      {"path any, empty", A::kPath, {"*"}, "", "?q", true, false},
      {"path template", A::kPath, {"/a/{*}/c"}, "", "/a/b/c", true, true},
      {"path template two segments", A::kPath, {"/a/{*}/c"}, "", "/a/b/b/c", true, false},
      {"path template or pattern", A::kPath, {"/a/{*}/c", "/z*"}, "", "/zz", true, true},
      {"path template and query", A::kPath, {"/a/{**}"}, "", "/a/b/c?x=/y", true, true},
      // connection.sni: a string matcher; "*" is ".+".
      {"sni exact", A::kSni, {"a.example"}, "", "a.example", true, true},
      {"sni any", A::kSni, {"*"}, "", "a", true, true},
      {"sni any, none", A::kSni, {"*"}, "", "", true, false},
      {"sni suffix", A::kSni, {"*.example"}, "", "a.example", true, true},
      // request.headers[...]: name case-insensitive, value case-sensitive; "*" present.
      {"header exact", A::kHeader, {"v"}, "x-test", "v", true, true},
      {"header name case", A::kHeader, {"v"}, "X-TEST", "v", true, true},
      {"header value case", A::kHeader, {"v"}, "x-test", "V", true, false},
      {"header absent", A::kHeader, {"v"}, "x-test", "", false, false},
      {"header any, present empty", A::kHeader, {"*"}, "x-test", "", true, true},
      {"header any, absent", A::kHeader, {"*"}, "x-test", "", false, false},
      {"header prefix", A::kHeader, {"Bearer *"}, "x-test", "Bearer abc", true, true},
      {"header suffix", A::kHeader, {"*.json"}, "x-test", "a.json", true, true},
      {"other header", A::kHeader, {"v"}, "x-other", "v", true, false},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    AttributeMatcher m(row.attribute, row.values, row.header_name);
    RequestView r;
    r.protocol = Protocol::kHttp;
    r.host = "unused.example";
    r.method = "UNUSED";
    r.path = "/unused";
    std::vector<HeaderView> headers = {{"Accept", "*/*"}};
    switch (row.attribute) {
      case A::kHost:
        r.host = row.actual;
        break;
      case A::kMethod:
        r.method = row.actual;
        break;
      case A::kPath:
        r.path = row.actual;
        break;
      case A::kSni:
        r.sni = row.actual;
        break;
      case A::kHeader:
        if (row.present) {
          headers.push_back({"X-Test", row.actual});
        }
        break;
    }
    r.headers = headers;
    EXPECT_EQ(m.matches(r), row.want);
  }
}

TEST(MatchersTest, Composition) {
  auto any = [] { return std::make_unique<AnyMatcher>(); };
  auto none = [] { return std::make_unique<NotMatcher>(std::make_unique<AnyMatcher>()); };
  RequestView r;
  EXPECT_TRUE(AnyMatcher().matches(r));
  EXPECT_FALSE(none()->matches(r));

  std::vector<MatcherPtr> both;
  both.push_back(any());
  both.push_back(any());
  EXPECT_TRUE(AndMatcher(std::move(both)).matches(r));
  std::vector<MatcherPtr> one_fails;
  one_fails.push_back(any());
  one_fails.push_back(none());
  EXPECT_FALSE(AndMatcher(std::move(one_fails)).matches(r));

  std::vector<MatcherPtr> one_holds;
  one_holds.push_back(none());
  one_holds.push_back(any());
  EXPECT_TRUE(OrMatcher(std::move(one_holds)).matches(r));
  std::vector<MatcherPtr> all_fail;
  all_fail.push_back(none());
  all_fail.push_back(none());
  EXPECT_FALSE(OrMatcher(std::move(all_fail)).matches(r));
}

TEST(MatchersTest, NotOfPeerMatcherHoldsForPlaintext) {
  // Istio's notPrincipals / notNamespaces / notServiceAccounts are NOT(authenticated(...)):
  // true when there is no TLS peer.
  RequestView plaintext;
  EXPECT_TRUE(NotMatcher(std::make_unique<PrincipalMatcher>(std::vector<std::string>{"*"}))
                  .matches(plaintext));
  EXPECT_TRUE(NotMatcher(std::make_unique<NamespaceMatcher>(std::vector<std::string>{"*"}))
                  .matches(plaintext));
  EXPECT_TRUE(
      NotMatcher(std::make_unique<ServiceAccountMatcher>(std::vector<std::string>{"web"}, "pol"))
          .matches(plaintext));
}

}  // namespace
}  // namespace palisade::policy
