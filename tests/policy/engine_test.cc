#include "policy/engine.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/compiler.h"
#include "policy/loader.h"
#include "policy/request_view.h"
#include "policy/spiffe_id.h"

// Evaluation semantics of Istio's AuthorizationPolicy, case by case. Every expectation follows
// Istio (pilot/pkg/security/authz/model/{model,generator}.go, .../matcher/*.go) and the Envoy
// RBAC filter it configures; comments cite the rule a row checks where it is not obvious.

namespace palisade::policy {
namespace {

constexpr std::string_view kSleep = "spiffe://cluster.local/ns/foo/sa/sleep";
constexpr std::string_view kClient = "spiffe://cluster.local/ns/bar/sa/client";
constexpr Verdict kAllow = Verdict::kAllow;
constexpr Verdict kDeny = Verdict::kDeny;

// --- Policies ------------------------------------------------------------------------------

// One AuthorizationPolicy document; `spec` is a YAML flow mapping. An empty `ns` leaves
// metadata.namespace out. `meta` adds fields to metadata (e.g. annotations).
std::string doc(std::string_view name, std::string_view spec, std::string_view ns = "foo",
                std::string_view meta = "") {
  std::string out = "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n";
  out += "metadata: {name: ";
  out += name;
  if (!ns.empty()) {
    out += ", namespace: ";
    out += ns;
  }
  if (!meta.empty()) {
    out += ", ";
    out += meta;
  }
  out += "}\nspec: ";
  out += spec;
  out += "\n";
  return out;
}

std::string withAction(std::string_view action, std::string_view rules) {
  return "{action: " + std::string(action) + ", rules: [" + std::string(rules) + "]}";
}

// A policy in namespace foo with the given rules (a comma-separated list of flow mappings).
std::string allow(std::string_view rules, std::string_view name = "allow") {
  return doc(name, withAction("ALLOW", rules));
}
std::string deny(std::string_view rules, std::string_view name = "deny") {
  return doc(name, withAction("DENY", rules));
}
std::string audit(std::string_view rules, std::string_view name = "audit") {
  return doc(name, withAction("AUDIT", rules));
}

// An ALLOW policy "allow" with one rule made of one source, one operation or one condition.
std::string allowFrom(std::string_view source) {
  return allow("{from: [{source: " + std::string(source) + "}]}");
}
std::string allowTo(std::string_view operation) {
  return allow("{to: [{operation: " + std::string(operation) + "}]}");
}
std::string allowWhen(std::string_view condition) {
  return allow("{when: [" + std::string(condition) + "]}");
}

// --- Requests ------------------------------------------------------------------------------

// An owning description of a request; BuiltRequest turns it into a RequestView.
class Req {
 public:
  Req peer(std::string_view v) const {
    return with([&](Req& r) { r.peer_ = v; });
  }
  Req src(std::string_view v) const {
    return with([&](Req& r) { r.source_ip_ = v; });
  }
  Req remote(std::string_view v) const {
    return with([&](Req& r) { r.remote_ip_ = v; });
  }
  Req dst(std::string_view v) const {
    return with([&](Req& r) { r.destination_ip_ = v; });
  }
  Req port(std::uint16_t v) const {
    return with([&](Req& r) { r.port_ = v; });
  }
  Req sni(std::string_view v) const {
    return with([&](Req& r) { r.sni_ = v; });
  }
  Req host(std::string_view v) const {
    return with([&](Req& r) { r.host_ = v; });
  }
  Req method(std::string_view v) const {
    return with([&](Req& r) { r.method_ = v; });
  }
  Req path(std::string_view v) const {
    return with([&](Req& r) { r.path_ = v; });
  }
  Req header(std::string_view name, std::string_view value) const {
    return with([&](Req& r) { r.headers_.emplace_back(name, value); });
  }
  Req tcp() const {
    return with([&](Req& r) {
      r.protocol_ = Protocol::kTcp;
      r.host_.clear();
      r.method_.clear();
      r.path_.clear();
    });
  }

 private:
  friend class BuiltRequest;
  template <typename F>
  Req with(F f) const {
    Req r = *this;
    f(r);
    return r;
  }

  Protocol protocol_ = Protocol::kHttp;
  std::string peer_;  // SPIFFE ID; empty: a plaintext peer
  std::string source_ip_ = "10.1.0.5";
  std::string remote_ip_;  // empty: unknown
  std::string destination_ip_ = "10.2.0.7";
  std::uint16_t port_ = 8080;
  std::string sni_;
  std::string host_ = "web.foo.svc";
  std::string method_ = "GET";
  std::string path_ = "/";
  std::vector<std::pair<std::string, std::string>> headers_;
};

// An HTTP request GET / to web.foo.svc:8080 from a plaintext peer at 10.1.0.5.
Req http() { return Req(); }
// A TCP connection to port 8080 from a plaintext peer at 10.1.0.5.
Req tcp() { return Req().tcp(); }

IpAddress ip(const std::string& text) {
  if (text.empty()) {
    return IpAddress();
  }
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.ok()) << "bad test address " << text;
  return parsed.ok() ? *parsed : IpAddress();
}

// The RequestView of a Req; the Req must outlive it.
class BuiltRequest {
 public:
  explicit BuiltRequest(const Req& r) {
    if (!r.peer_.empty()) {
      auto id = SpiffeId::parse(r.peer_);
      EXPECT_TRUE(id.ok()) << "bad test SPIFFE ID " << r.peer_;
      if (id.ok()) {
        peer_.emplace(std::move(id).value());
      }
    }
    for (const auto& [name, value] : r.headers_) {
      headers_.push_back(HeaderView{name, value});
    }
    view_.protocol = r.protocol_;
    view_.peer = peer_ ? &*peer_ : nullptr;
    view_.source_ip = ip(r.source_ip_);
    view_.remote_ip = ip(r.remote_ip_);
    view_.destination_ip = ip(r.destination_ip_);
    view_.destination_port = r.port_;
    view_.sni = r.sni_;
    view_.host = r.host_;
    view_.method = r.method_;
    view_.path = r.path_;
    view_.headers = headers_;
  }
  BuiltRequest(const BuiltRequest&) = delete;
  BuiltRequest& operator=(const BuiltRequest&) = delete;

  const RequestView& view() const { return view_; }

 private:
  std::optional<SpiffeId> peer_;
  std::vector<HeaderView> headers_;
  RequestView view_;
};

// --- Harness -------------------------------------------------------------------------------

Workload web() { return Workload{"foo", {{"app", "web"}}}; }

std::shared_ptr<const PolicySet> compileYaml(const std::string& yaml,
                                             const std::string& root_namespace) {
  LoadResult loaded;
  loadYaml(yaml, "test.yaml", loaded);
  EXPECT_TRUE(loaded.ok()) << loaded.errorText();
  if (!loaded.ok()) {
    return nullptr;
  }
  return PolicySet::compile(loaded.bundle, {root_namespace});
}

std::string policyName(const MatchRef& m) { return m ? m.policy->name : std::string(); }

struct Row {
  std::string name;
  std::string policies;  // YAML documents
  Req request;
  Verdict want;
  std::string want_policy = "";  // the deciding DENY or ALLOW policy; "" when none decided
  int want_rule = -1;
  Workload workload = web();
  std::string want_audit = "";  // the AUDIT policy that matched, if any
  std::string root_namespace = "istio-system";
};

// "ALLOW by allow rule 0 (allowed by policy), audit: -": one line per decision, so a
// failing row reports everything that differs at once.
std::string describe(Verdict verdict, DecisionReason reason, const std::string& policy, int rule,
                     const std::string& audit) {
  std::string out = verdictName(verdict);
  if (!policy.empty()) {
    out += " by " + policy + " rule " + std::to_string(rule);
  } else if (rule != -1) {
    out += " rule " + std::to_string(rule) + " without a policy";
  }
  out += " (";
  out += decisionReasonName(reason);
  out += "), audit: " + (audit.empty() ? std::string("-") : audit);
  return out;
}

DecisionReason reasonFor(const Row& row) {
  if (row.want == kAllow) {
    return row.want_policy.empty() ? DecisionReason::kNoAllowPolicies
                                   : DecisionReason::kAllowedByPolicy;
  }
  return row.want_policy.empty() ? DecisionReason::kNoAllowMatched
                                 : DecisionReason::kDeniedByPolicy;
}

void expectRow(const Row& row) {
  SCOPED_TRACE(row.name);
  auto set = compileYaml(row.policies, row.root_namespace);
  ASSERT_NE(set, nullptr);
  WorkloadAuthz authz(set, row.workload);
  BuiltRequest request(row.request);
  Decision d = authz.evaluate(request.view());
  EXPECT_EQ(describe(d.verdict, d.reason, policyName(d.by), d.by.rule, policyName(d.audit)),
            describe(row.want, reasonFor(row), row.want_policy, row.want_rule, row.want_audit));
  EXPECT_FALSE(d.has_dry_run);
}

void expectRows(const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    expectRow(row);
  }
}

// --- Source fields ---------------------------------------------------------------------------

TEST(EngineTest, SourcePrincipals) {
  const std::string exact = allowFrom("{principals: [cluster.local/ns/foo/sa/sleep]}");
  const std::string any = allowFrom(R"({principals: ["*"]})");
  const std::string prefix = allowFrom(R"({principals: ["cluster.local/ns/foo/*"]})");
  const std::string suffix = allowFrom(R"({principals: ["*/sa/sleep"]})");
  const std::string not_exact = allowFrom("{notPrincipals: [cluster.local/ns/foo/sa/sleep]}");
  const std::string require_mtls = deny(R"({from: [{source: {notPrincipals: ["*"]}}]})");
  expectRows({
      {"exact: same principal", exact, http().peer(kSleep), kAllow, "allow", 0},
      {"exact: other principal", exact, http().peer(kClient), kDeny},
      // Principals exist only on mTLS connections (Envoy's `authenticated`).
      {"exact: plaintext peer", exact, http(), kDeny},
      // Values are compared with "spiffe://" prepended; a value carrying the scheme never
      // matches.
      {"exact: value with scheme",
       allowFrom(R"({principals: ["spiffe://cluster.local/ns/foo/sa/sleep"]})"),
       http().peer(kSleep), kDeny},
      {"exact: case-sensitive", allowFrom("{principals: [cluster.local/ns/foo/sa/Sleep]}"),
       http().peer(kSleep), kDeny},
      // Only a leading or trailing "*" is a wildcard (matcher.StringMatcherWithPrefix).
      {"inner * is literal", allowFrom(R"({principals: ["cluster.local/ns/*/sa/sleep"]})"),
       http().peer(kSleep), kDeny},
      {"values are ORed",
       allowFrom("{principals: [cluster.local/ns/bar/sa/x, cluster.local/ns/foo/sa/sleep]}"),
       http().peer(kSleep), kAllow, "allow", 0},
      // "*" becomes the regex ".+": any authenticated peer, never a plaintext one.
      {"any: mTLS peer", any, http().peer(kClient), kAllow, "allow", 0},
      {"any: plaintext peer", any, http(), kDeny},
      {"prefix: match", prefix, http().peer(kSleep), kAllow, "allow", 0},
      {"prefix: other namespace", prefix, http().peer(kClient), kDeny},
      {"prefix: plaintext peer", prefix, http(), kDeny},
      {"suffix: match", suffix, http().peer(kSleep), kAllow, "allow", 0},
      {"suffix: longer name", suffix, http().peer("spiffe://cluster.local/ns/foo/sa/sleepy"),
       kDeny},
      {"suffix: plaintext peer", suffix, http(), kDeny},
      {"notPrincipals: other principal", not_exact, http().peer(kClient), kAllow, "allow", 0},
      {"notPrincipals: same principal", not_exact, http().peer(kSleep), kDeny},
      // NOT(authenticated(...)) is true when there is no TLS peer at all.
      {"notPrincipals: plaintext peer matches", not_exact, http(), kAllow, "allow", 0},
      {"notPrincipals *: plaintext peer matches", allowFrom(R"({notPrincipals: ["*"]})"), http(),
       kAllow, "allow", 0},
      {"notPrincipals *: mTLS peer", allowFrom(R"({notPrincipals: ["*"]})"), http().peer(kSleep),
       kDeny},
      // The documented "require mTLS" policy: DENY notPrincipals ["*"].
      {"DENY notPrincipals *: plaintext denied", require_mtls, http(), kDeny, "deny", 0},
      {"DENY notPrincipals *: mTLS allowed", require_mtls, http().peer(kSleep), kAllow},
      {"principals and notPrincipals are ANDed: excluded",
       allowFrom(R"({principals: ["cluster.local/ns/foo/*"], )"
                 R"(notPrincipals: [cluster.local/ns/foo/sa/sleep]})"),
       http().peer(kSleep), kDeny},
      {"principals and notPrincipals are ANDed: kept",
       allowFrom(R"({principals: ["cluster.local/ns/foo/*"], )"
                 R"(notPrincipals: [cluster.local/ns/foo/sa/sleep]})"),
       http().peer("spiffe://cluster.local/ns/foo/sa/other"), kAllow, "allow", 0},
  });
}

TEST(EngineTest, SourceNamespaces) {
  const std::string exact = allowFrom("{namespaces: [foo]}");
  const std::string not_exact = allowFrom("{notNamespaces: [foo]}");
  expectRows({
      {"exact: same namespace", exact, http().peer(kSleep), kAllow, "allow", 0},
      {"exact: other namespace", exact, http().peer(kClient), kDeny},
      {"exact: plaintext peer", exact, http(), kDeny},
      {"exact: no partial segment", exact, http().peer("spiffe://cluster.local/ns/foobar/sa/x"),
       kDeny},
      {"exact: ID without /ns/", exact, http().peer("spiffe://example.org/foo/web"), kDeny},
      // The namespace is found anywhere in the URI SAN (".*/ns/foo/.*").
      {"exact: /ns/ after other segments", exact,
       http().peer("spiffe://example.org/cluster/ns/foo/sa/x"), kAllow, "allow", 0},
      {"exact: /ns/<value> must be followed by a segment", exact,
       http().peer("spiffe://example.org/ns/foo"), kDeny},
      {"any: mTLS peer", allowFrom(R"({namespaces: ["*"]})"), http().peer(kClient), kAllow, "allow",
       0},
      {"any: plaintext peer", allowFrom(R"({namespaces: ["*"]})"), http(), kDeny},
      {"prefix: match", allowFrom(R"({namespaces: ["fo*"]})"), http().peer(kSleep), kAllow, "allow",
       0},
      {"prefix: no match", allowFrom(R"({namespaces: ["fo*"]})"), http().peer(kClient), kDeny},
      {"suffix: match", allowFrom(R"({namespaces: ["*oo"]})"), http().peer(kSleep), kAllow, "allow",
       0},
      {"suffix: no match", allowFrom(R"({namespaces: ["*oo"]})"), http().peer(kClient), kDeny},
      // Istio turns each "*" into ".*" inside ".*/ns/<value>/.*", so a wildcard may span
      // segments.
      {"suffix: wildcard spans segments", allowFrom(R"({namespaces: ["*-prod"]})"),
       http().peer("spiffe://cluster.local/ns/dev/sa/app-prod/x"), kAllow, "allow", 0},
      // Namespaces replace every "*" with ".*", not only a leading or trailing one.
      {"inner *: wildcard", allowFrom(R"({namespaces: ["f*o"]})"), http().peer(kSleep), kAllow,
       "allow", 0},
      {"values are ORed", allowFrom("{namespaces: [bar, foo]}"), http().peer(kSleep), kAllow,
       "allow", 0},
      {"notNamespaces: other namespace", not_exact, http().peer(kClient), kAllow, "allow", 0},
      {"notNamespaces: same namespace", not_exact, http().peer(kSleep), kDeny},
      {"notNamespaces: plaintext peer matches", not_exact, http(), kAllow, "allow", 0},
  });
}

TEST(EngineTest, SourceServiceAccounts) {
  // Istio's regex: "spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?", <ns> the policy's namespace
  // when the value has no "ns/" part.
  const std::string name_only = allowFrom("{serviceAccounts: [sleep]}");
  const std::string qualified = allowFrom("{serviceAccounts: [bar/client]}");
  const std::string negated = allowFrom("{notServiceAccounts: [sleep]}");
  expectRows({
      {"name: in the policy namespace", name_only, http().peer(kSleep), kAllow, "allow", 0},
      {"name: same account in another namespace", name_only,
       http().peer("spiffe://cluster.local/ns/bar/sa/sleep"), kDeny},
      {"name: longer account name", name_only,
       http().peer("spiffe://cluster.local/ns/foo/sa/sleep-v2"), kDeny},
      {"name: extra segments after the account", name_only,
       http().peer("spiffe://cluster.local/ns/foo/sa/sleep/extra"), kAllow, "allow", 0},
      {"name: extra segments between ns and sa", name_only,
       http().peer("spiffe://cluster.local/ns/foo/x/y/sa/sleep"), kAllow, "allow", 0},
      {"name: plaintext peer", name_only, http(), kDeny},
      {"ns/name: match", qualified, http().peer(kClient), kAllow, "allow", 0},
      {"ns/name: same account in the policy namespace", qualified,
       http().peer("spiffe://cluster.local/ns/foo/sa/client"), kDeny},
      {"values are ORed", allowFrom("{serviceAccounts: [bar/client, sleep]}"), http().peer(kSleep),
       kAllow, "allow", 0},
      {"notServiceAccounts: other account", negated, http().peer(kClient), kAllow, "allow", 0},
      {"notServiceAccounts: same account", negated, http().peer(kSleep), kDeny},
      {"notServiceAccounts: plaintext peer matches", negated, http(), kAllow, "allow", 0},
  });
}

TEST(EngineTest, SourceIpBlocks) {
  const std::string cidr = allowFrom("{ipBlocks: [10.1.0.0/16]}");
  expectRows({
      {"cidr: inside", cidr, http().src("10.1.200.3"), kAllow, "allow", 0},
      {"cidr: outside", cidr, http().src("10.2.0.1"), kDeny},
      {"cidr: mTLS makes no difference", cidr, http().peer(kSleep), kAllow, "allow", 0},
      // ipBlocks is the direct peer address (Envoy's direct_remote_ip), never the original
      // client.
      {"cidr: remote ip is not looked at", cidr, http().src("10.9.0.1").remote("10.1.0.9"), kDeny},
      {"single address: same", allowFrom("{ipBlocks: [10.1.0.5]}"), http(), kAllow, "allow", 0},
      {"single address: other", allowFrom("{ipBlocks: [10.1.0.5]}"), http().src("10.1.0.6"), kDeny},
      {"ipv6: inside", allowFrom(R"({ipBlocks: ["2001:db8::/32"]})"), http().src("2001:db8::7"),
       kAllow, "allow", 0},
      {"ipv6: ipv4 peer", allowFrom(R"({ipBlocks: ["2001:db8::/32"]})"), http(), kDeny},
      {"values are ORed", allowFrom("{ipBlocks: [192.168.0.0/16, 10.1.0.0/16]}"), http(), kAllow,
       "allow", 0},
      {"notIpBlocks: inside", allowFrom("{notIpBlocks: [10.1.0.0/16]}"), http(), kDeny},
      {"notIpBlocks: outside", allowFrom("{notIpBlocks: [10.1.0.0/16]}"), http().src("10.9.0.1"),
       kAllow, "allow", 0},
  });
}

TEST(EngineTest, SourceRemoteIpBlocks) {
  const std::string remote = allowFrom("{remoteIpBlocks: [192.168.0.0/16]}");
  const std::string not_remote = allowFrom("{notRemoteIpBlocks: [192.168.0.0/16]}");
  expectRows({
      {"remote ip inside", remote, http().remote("192.168.1.1"), kAllow, "allow", 0},
      {"remote ip outside", remote, http().remote("172.16.0.1").src("192.168.1.1"), kDeny},
      // Without X-Forwarded-For or PROXY protocol, Envoy's remote address is the peer's.
      {"remote ip unknown: source ip inside", remote, http().src("192.168.3.3"), kAllow, "allow",
       0},
      {"remote ip unknown: source ip outside", remote, http(), kDeny},
      {"notRemoteIpBlocks: inside", not_remote, http().remote("192.168.1.1"), kDeny},
      {"notRemoteIpBlocks: outside", not_remote, http().remote("172.16.0.1"), kAllow, "allow", 0},
      {"notRemoteIpBlocks: unknown falls back to source", not_remote, http().src("192.168.0.9"),
       kDeny},
  });
}

TEST(EngineTest, SourceCombinations) {
  const std::string anded = allowFrom(
      "{principals: [cluster.local/ns/foo/sa/sleep], "
      "ipBlocks: [10.1.0.0/16]}");
  const std::string ored = allow(
      "{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}, "
      "{source: {ipBlocks: [192.168.0.0/16]}}]}");
  expectRows({
      {"fields of one source are ANDed: both", anded, http().peer(kSleep), kAllow, "allow", 0},
      {"fields of one source are ANDed: ip only", anded, http(), kDeny},
      {"fields of one source are ANDed: principal only", anded, http().peer(kSleep).src("10.9.0.1"),
       kDeny},
      {"from entries are ORed: first", ored, http().peer(kSleep), kAllow, "allow", 0},
      {"from entries are ORed: second", ored, http().src("192.168.1.1"), kAllow, "allow", 0},
      {"from entries are ORed: neither", ored, http().peer(kClient), kDeny},
  });
}

// --- Operation fields ------------------------------------------------------------------------

TEST(EngineTest, OperationHosts) {
  const std::string exact = allowTo("{hosts: [web.foo.svc]}");
  expectRows({
      {"exact: same", exact, http(), kAllow, "allow", 0},
      {"exact: case-insensitive", exact, http().host("WEB.Foo.SVC"), kAllow, "allow", 0},
      {"exact: other host", exact, http().host("api.foo.svc"), kDeny},
      // The value is compared with the whole :authority, port included.
      {"exact: authority with port", exact, http().host("web.foo.svc:8080"), kDeny},
      {"prefix: match ignoring case", allowTo(R"({hosts: ["web.*"]})"),
       http().host("WEB.example.com"), kAllow, "allow", 0},
      {"prefix: authority with port", allowTo(R"({hosts: ["web.foo.svc*"]})"),
       http().host("web.foo.svc:8080"), kAllow, "allow", 0},
      {"prefix: no match", allowTo(R"({hosts: ["web.*"]})"), http().host("api.foo.svc"), kDeny},
      {"suffix: match ignoring case", allowTo(R"({hosts: ["*.foo.svc"]})"),
       http().host("API.FOO.SVC"), kAllow, "allow", 0},
      {"suffix: no match", allowTo(R"({hosts: ["*.foo.svc"]})"), http().host("foo.svc"), kDeny},
      {"inner * is literal", allowTo(R"({hosts: ["web.*.svc"]})"), http(), kDeny},
      {"any: present", allowTo(R"({hosts: ["*"]})"), http().host("anything"), kAllow, "allow", 0},
      {"notHosts: same host in other case", allowTo("{notHosts: [web.foo.svc]}"),
       http().host("WEB.FOO.SVC"), kDeny},
      {"notHosts: other host", allowTo("{notHosts: [web.foo.svc]}"), http().host("api.foo.svc"),
       kAllow, "allow", 0},
  });
}

TEST(EngineTest, OperationPorts) {
  expectRows({
      {"ports: same", allowTo(R"({ports: ["8080"]})"), http(), kAllow, "allow", 0},
      {"ports: other", allowTo(R"({ports: ["8080"]})"), http().port(9090), kDeny},
      {"ports: values are ORed", allowTo(R"({ports: ["80", "9090"]})"), http().port(9090), kAllow,
       "allow", 0},
      {"notPorts: same", allowTo(R"({notPorts: ["8080"]})"), http(), kDeny},
      {"notPorts: other", allowTo(R"({notPorts: ["8080"]})"), http().port(9090), kAllow, "allow",
       0},
  });
}

TEST(EngineTest, OperationMethods) {
  expectRows({
      {"exact: same", allowTo("{methods: [GET]}"), http(), kAllow, "allow", 0},
      {"exact: other", allowTo("{methods: [GET]}"), http().method("POST"), kDeny},
      {"exact: case-sensitive value", allowTo("{methods: [get]}"), http(), kDeny},
      {"exact: case-sensitive request", allowTo("{methods: [GET]}"), http().method("get"), kDeny},
      {"values are ORed", allowTo("{methods: [POST, GET]}"), http(), kAllow, "allow", 0},
      {"any: present", allowTo(R"({methods: ["*"]})"), http().method("PATCH"), kAllow, "allow", 0},
      {"prefix: match", allowTo(R"({methods: ["P*"]})"), http().method("PUT"), kAllow, "allow", 0},
      {"prefix: no match", allowTo(R"({methods: ["P*"]})"), http(), kDeny},
      {"suffix: match", allowTo(R"({methods: ["*ETE"]})"), http().method("DELETE"), kAllow, "allow",
       0},
      {"notMethods: listed", allowTo("{notMethods: [DELETE]}"), http().method("DELETE"), kDeny},
      {"notMethods: other", allowTo("{notMethods: [DELETE]}"), http(), kAllow, "allow", 0},
  });
}

TEST(EngineTest, OperationPaths) {
  const std::string exact = allowTo("{paths: [/api/v1]}");
  const std::string prefix = allowTo(R"({paths: ["/api/*"]})");
  const std::string suffix = allowTo(R"({paths: ["*.html"]})");
  const std::string not_prefix = allowTo(R"({notPaths: ["/admin*"]})");
  expectRows({
      {"exact: same", exact, http().path("/api/v1"), kAllow, "allow", 0},
      // Envoy's url_path matcher compares the path without query and fragment.
      {"exact: query stripped", exact, http().path("/api/v1?x=1&y=/z"), kAllow, "allow", 0},
      {"exact: fragment stripped", exact, http().path("/api/v1#top"), kAllow, "allow", 0},
      {"exact: trailing slash differs", exact, http().path("/api/v1/"), kDeny},
      {"exact: case-sensitive", exact, http().path("/API/v1"), kDeny},
      {"prefix: directory itself", prefix, http().path("/api/"), kAllow, "allow", 0},
      {"prefix: deeper", prefix, http().path("/api/a/b"), kAllow, "allow", 0},
      {"prefix: without slash", prefix, http().path("/api"), kDeny},
      {"prefix: query not looked at", prefix, http().path("/apix?/api/"), kDeny},
      {"suffix: with query", suffix, http().path("/a/b.html?v=2"), kAllow, "allow", 0},
      {"suffix: no match", suffix, http().path("/a/b.htm"), kDeny},
      {"suffix: only in query", suffix, http().path("/a?f=b.html"), kDeny},
      {"any: root path", allowTo(R"({paths: ["*"]})"), http().path("/"), kAllow, "allow", 0},
      {"values are ORed", allowTo("{paths: [/a, /b]}"), http().path("/b"), kAllow, "allow", 0},
      {"notPaths: listed", not_prefix, http().path("/admin/users"), kDeny},
      {"notPaths: other", not_prefix, http().path("/public"), kAllow, "allow", 0},
      {"notPaths: listed path only in query", not_prefix, http().path("/public?next=/admin"),
       kAllow, "allow", 0},
  });
}

TEST(EngineTest, OperationPathTemplates) {
  // "{*}" is Envoy's "*" (one segment, one or more characters); "{**}" is "**" (the rest,
  // across segments, possibly empty).
  const std::string one = allowTo(R"({paths: ["/api/{*}/info"]})");
  const std::string rest = allowTo(R"({paths: ["/api/{**}"]})");
  const std::string middle = allowTo(R"({paths: ["/api/{**}/edit"]})");
  const std::string ext = allowTo(R"({paths: ["/files/{*}.txt"]})");
  expectRows({
      {"{*}: one segment", one, http().path("/api/v1/info"), kAllow, "allow", 0},
      {"{*}: two segments", one, http().path("/api/v1/v2/info"), kDeny},
      {"{*}: empty segment", one, http().path("/api//info"), kDeny},
      {"{*}: query stripped", one, http().path("/api/v1/info?x=1"), kAllow, "allow", 0},
      {"{*}: different literal", one, http().path("/api/v1/infos"), kDeny},
      {"{**}: several segments", rest, http().path("/api/a/b/c"), kAllow, "allow", 0},
      {"{**}: empty rest", rest, http().path("/api/"), kAllow, "allow", 0},
      {"{**}: missing slash", rest, http().path("/api"), kDeny},
      {"{**} then literal: match", middle, http().path("/api/a/b/edit"), kAllow, "allow", 0},
      {"{**} then literal: other end", middle, http().path("/api/a/b/view"), kDeny},
      {"{**} with suffix: match", allowTo(R"({paths: ["/{**}.png"]})"), http().path("/img/a/b.png"),
       kAllow, "allow", 0},
      {"{**} with suffix: other suffix", allowTo(R"({paths: ["/{**}.png"]})"),
       http().path("/img/a.png.jpg"), kDeny},
      {"{*} with suffix: match", ext, http().path("/files/a.b.txt"), kAllow, "allow", 0},
      {"{*} with suffix: nested", ext, http().path("/files/a/b.txt"), kDeny},
      {"notPaths template: listed", allowTo(R"({notPaths: ["/api/{*}"]})"), http().path("/api/x"),
       kDeny},
      {"notPaths template: deeper", allowTo(R"({notPaths: ["/api/{*}"]})"), http().path("/api/x/y"),
       kAllow, "allow", 0},
  });
}

TEST(EngineTest, OperationCombinations) {
  const std::string anded = allowTo(R"({methods: [GET], paths: ["/api/*"]})");
  const std::string ored = allow(
      "{to: [{operation: {methods: [GET]}}, "
      "{operation: {paths: [/admin]}}]}");
  expectRows({
      {"fields of one operation are ANDed: both", anded, http().path("/api/x"), kAllow, "allow", 0},
      {"fields of one operation are ANDed: method differs", anded,
       http().method("POST").path("/api/x"), kDeny},
      {"fields of one operation are ANDed: path differs", anded, http().path("/other"), kDeny},
      {"to entries are ORed: first", ored, http().path("/x"), kAllow, "allow", 0},
      {"to entries are ORed: second", ored, http().method("POST").path("/admin"), kAllow, "allow",
       0},
      {"to entries are ORed: neither", ored, http().method("POST").path("/x"), kDeny},
  });
}

// --- Conditions ------------------------------------------------------------------------------

TEST(EngineTest, ConditionRequestHeaders) {
  const std::string exact = allowWhen(R"({key: "request.headers[X-User]", values: [alice]})");
  const std::string present = allowWhen(R"({key: "request.headers[x-user]", values: ["*"]})");
  const std::string negated = allowWhen(R"({key: "request.headers[x-user]", notValues: [bob]})");
  const std::string absent = allowWhen(R"({key: "request.headers[x-user]", notValues: ["*"]})");
  expectRows({
      {"exact: header name case-insensitive", exact, http().header("x-user", "alice"), kAllow,
       "allow", 0},
      {"exact: value case-sensitive", exact, http().header("x-user", "Alice"), kDeny},
      {"exact: header absent", exact, http().header("x-other", "alice"), kDeny},
      {"exact: joined repeated values", exact, http().header("X-User", "alice,bob"), kDeny},
      {"any: present", present, http().header("X-USER", "x"), kAllow, "allow", 0},
      // "*" is a present match: an empty value still counts.
      {"any: present and empty", present, http().header("x-user", ""), kAllow, "allow", 0},
      {"any: absent", present, http(), kDeny},
      {"prefix: match", allowWhen(R"({key: "request.headers[x-user]", values: ["ali*"]})"),
       http().header("x-user", "alice"), kAllow, "allow", 0},
      {"prefix: no match", allowWhen(R"({key: "request.headers[x-user]", values: ["ali*"]})"),
       http().header("x-user", "malice"), kDeny},
      {"suffix: match", allowWhen(R"({key: "request.headers[x-user]", values: ["*ce"]})"),
       http().header("x-user", "alice"), kAllow, "allow", 0},
      {"values are ORed", allowWhen(R"({key: "request.headers[x-user]", values: [bob, alice]})"),
       http().header("x-user", "alice"), kAllow, "allow", 0},
      {"notValues: other value", negated, http().header("x-user", "alice"), kAllow, "allow", 0},
      {"notValues: listed value", negated, http().header("x-user", "bob"), kDeny},
      // NOT(header matches) holds when the header is missing.
      {"notValues: header absent matches", negated, http(), kAllow, "allow", 0},
      {"notValues *: absent", absent, http(), kAllow, "allow", 0},
      {"notValues *: present", absent, http().header("x-user", "a"), kDeny},
  });
}

TEST(EngineTest, ConditionAddresses) {
  expectRows({
      {"source.ip: inside", allowWhen("{key: source.ip, values: [10.1.0.0/16]}"), http(), kAllow,
       "allow", 0},
      {"source.ip: outside", allowWhen("{key: source.ip, values: [10.1.0.0/16]}"),
       http().src("10.2.0.1"), kDeny},
      {"source.ip: ignores remote ip", allowWhen("{key: source.ip, values: [192.168.0.0/16]}"),
       http().remote("192.168.0.1"), kDeny},
      {"source.ip notValues", allowWhen("{key: source.ip, notValues: [10.1.0.0/16]}"), http(),
       kDeny},
      {"remote.ip: inside", allowWhen("{key: remote.ip, values: [192.168.0.0/16]}"),
       http().remote("192.168.7.7"), kAllow, "allow", 0},
      {"remote.ip: unknown falls back to source",
       allowWhen("{key: remote.ip, values: [10.1.0.0/16]}"), http(), kAllow, "allow", 0},
      {"remote.ip: known overrides source", allowWhen("{key: remote.ip, values: [10.1.0.0/16]}"),
       http().remote("192.168.7.7"), kDeny},
      {"remote.ip notValues", allowWhen("{key: remote.ip, notValues: [192.168.0.0/16]}"),
       http().remote("192.168.7.7"), kDeny},
      {"destination.ip: inside", allowWhen("{key: destination.ip, values: [10.2.0.0/16]}"), http(),
       kAllow, "allow", 0},
      {"destination.ip: outside", allowWhen("{key: destination.ip, values: [10.2.0.0/16]}"),
       http().dst("10.3.0.1"), kDeny},
      {"destination.ip: single address", allowWhen("{key: destination.ip, values: [10.2.0.7]}"),
       http(), kAllow, "allow", 0},
      {"destination.ip notValues", allowWhen("{key: destination.ip, notValues: [10.2.0.7]}"),
       http(), kDeny},
      {"destination.port: same", allowWhen(R"({key: destination.port, values: ["8080"]})"), http(),
       kAllow, "allow", 0},
      {"destination.port: other", allowWhen(R"({key: destination.port, values: ["8080"]})"),
       http().port(9090), kDeny},
      {"destination.port: values are ORed",
       allowWhen(R"({key: destination.port, values: ["80", "9090"]})"), http().port(80), kAllow,
       "allow", 0},
      {"destination.port notValues", allowWhen(R"({key: destination.port, notValues: ["8080"]})"),
       http(), kDeny},
  });
}

TEST(EngineTest, ConditionPeerAndSni) {
  const std::string ns = allowWhen("{key: source.namespace, values: [foo]}");
  const std::string not_ns = allowWhen("{key: source.namespace, notValues: [foo]}");
  const std::string principal =
      allowWhen("{key: source.principal, values: [cluster.local/ns/foo/sa/sleep]}");
  const std::string not_principal =
      allowWhen("{key: source.principal, notValues: [cluster.local/ns/foo/sa/sleep]}");
  const std::string sni = allowWhen("{key: connection.sni, values: [web.foo.svc]}");
  const std::string sni_any = allowWhen(R"({key: connection.sni, values: ["*"]})");
  expectRows({
      {"source.namespace: same", ns, http().peer(kSleep), kAllow, "allow", 0},
      {"source.namespace: other", ns, http().peer(kClient), kDeny},
      {"source.namespace: plaintext peer", ns, http(), kDeny},
      {"source.namespace: prefix", allowWhen(R"({key: source.namespace, values: ["f*"]})"),
       http().peer(kSleep), kAllow, "allow", 0},
      {"source.namespace notValues: same", not_ns, http().peer(kSleep), kDeny},
      {"source.namespace notValues: plaintext peer matches", not_ns, http(), kAllow, "allow", 0},
      {"source.principal: same", principal, http().peer(kSleep), kAllow, "allow", 0},
      {"source.principal: other", principal, http().peer(kClient), kDeny},
      {"source.principal: plaintext peer", principal, http(), kDeny},
      {"source.principal: any, mTLS", allowWhen(R"({key: source.principal, values: ["*"]})"),
       http().peer(kClient), kAllow, "allow", 0},
      {"source.principal: any, plaintext", allowWhen(R"({key: source.principal, values: ["*"]})"),
       http(), kDeny},
      {"source.principal: suffix", allowWhen(R"({key: source.principal, values: ["*/sa/sleep"]})"),
       http().peer(kSleep), kAllow, "allow", 0},
      {"source.principal notValues: same", not_principal, http().peer(kSleep), kDeny},
      {"source.principal notValues: plaintext peer matches", not_principal, http(), kAllow, "allow",
       0},
      {"connection.sni: same", sni, http().sni("web.foo.svc"), kAllow, "allow", 0},
      {"connection.sni: other", sni, http().sni("api.foo.svc"), kDeny},
      {"connection.sni: none", sni, http(), kDeny},
      // "*" is the regex ".+": a connection without SNI does not match.
      {"connection.sni any: some", sni_any, http().sni("x"), kAllow, "allow", 0},
      {"connection.sni any: none", sni_any, http(), kDeny},
      {"connection.sni: suffix", allowWhen(R"({key: connection.sni, values: ["*.foo.svc"]})"),
       http().sni("web.foo.svc"), kAllow, "allow", 0},
      {"connection.sni: prefix", allowWhen(R"({key: connection.sni, values: ["web.*"]})"),
       http().sni("api.foo.svc"), kDeny},
      {"connection.sni notValues", allowWhen("{key: connection.sni, notValues: [web.foo.svc]}"),
       http().sni("web.foo.svc"), kDeny},
      {"connection.sni notValues: none matches",
       allowWhen("{key: connection.sni, notValues: [web.foo.svc]}"), http(), kAllow, "allow", 0},
      // source.serviceAccount (Istio 1.26): the serviceAccounts regex, the policy namespace
      // when the value has no "ns/" part.
      {"source.serviceAccount: name", allowWhen("{key: source.serviceAccount, values: [sleep]}"),
       http().peer(kSleep), kAllow, "allow", 0},
      {"source.serviceAccount: other namespace",
       allowWhen("{key: source.serviceAccount, values: [sleep]}"),
       http().peer("spiffe://cluster.local/ns/bar/sa/sleep"), kDeny},
      {"source.serviceAccount: ns/name",
       allowWhen("{key: source.serviceAccount, values: [bar/client]}"), tcp().peer(kClient), kAllow,
       "allow", 0},
      {"source.serviceAccount notValues: plaintext peer matches",
       allowWhen("{key: source.serviceAccount, notValues: [sleep]}"), http(), kAllow, "allow", 0},
  });
}

TEST(EngineTest, ConditionCombinations) {
  const std::string both = allowWhen(
      "{key: source.ip, values: [10.1.0.0/16], "
      "notValues: [10.1.0.5]}");
  const std::string two = allow(R"({when: [{key: "request.headers[x-user]", values: [alice]}, )"
                                R"({key: source.ip, values: [10.1.0.0/16]}]})");
  expectRows({
      {"values and notValues are ANDed: excluded", both, http(), kDeny},
      {"values and notValues are ANDed: kept", both, http().src("10.1.0.6"), kAllow, "allow", 0},
      {"conditions are ANDed: both", two, http().header("x-user", "alice"), kAllow, "allow", 0},
      {"conditions are ANDed: header only", two, http().header("x-user", "alice").src("10.9.0.1"),
       kDeny},
      {"conditions are ANDed: ip only", two, http(), kDeny},
  });
}

TEST(EngineTest, ConditionPseudoHeaders) {
  // Envoy's header matchers see the request's pseudo-headers; Istio itself builds `hosts` and
  // `methods` as header matchers on ":authority" and ":method" (model.go hostHeader,
  // methodHeader). So request.headers[:authority] etc. read the request line, and ":path"
  // carries the query. RequestView holds them in host/method/path, not in `headers`.
  expectRows({
      {":authority", allowWhen(R"({key: "request.headers[:authority]", values: [web.foo.svc]})"),
       http(), kAllow, "allow", 0},
      {":method", allowWhen(R"({key: "request.headers[:method]", values: [GET]})"), http(), kAllow,
       "allow", 0},
      {":path keeps the query",
       allowWhen(R"({key: "request.headers[:path]", values: ["/api?x=1"]})"),
       http().path("/api?x=1"), kAllow, "allow", 0},
      {":method other", allowWhen(R"({key: "request.headers[:method]", values: [GET]})"),
       http().method("POST"), kDeny},
  });
}

// --- Rules and actions -----------------------------------------------------------------------

TEST(EngineTest, RulesAndActions) {
  const std::string full_rule = allow(
      "{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}], "
      "to: [{operation: {methods: [GET]}}], "
      "when: [{key: source.ip, values: [10.1.0.0/16]}]}");
  const std::string deny_admin = deny("{to: [{operation: {paths: [/admin]}}]}");
  const std::string allow_sleep = allowFrom("{principals: [cluster.local/ns/foo/sa/sleep]}");
  expectRows({
      {"no policy allows", "", http(), kAllow},
      {"no policy allows TCP", "", tcp(), kAllow},
      {"rules are ORed, first match reported",
       allow("{to: [{operation: {paths: [/a]}}]}, {to: [{operation: {paths: [/b]}}]}"),
       http().path("/b"), kAllow, "allow", 1},
      {"from, to and when are ANDed: all", full_rule, http().peer(kSleep), kAllow, "allow", 0},
      {"from, to and when are ANDed: from fails", full_rule, http().peer(kClient), kDeny},
      {"from, to and when are ANDed: to fails", full_rule, http().peer(kSleep).method("PUT"),
       kDeny},
      {"from, to and when are ANDed: when fails", full_rule, http().peer(kSleep).src("10.9.0.1"),
       kDeny},
      {"rules [{}] matches everything", allow("{}"), http().method("DELETE").path("/x"), kAllow,
       "allow", 0},
      {"rules [{}] matches TCP", allow("{}"), tcp(), kAllow, "allow", 0},
      {"spec {} allows nothing", doc("allow-nothing", "{}"), http(), kDeny},
      {"spec {} allows no TCP", doc("allow-nothing", "{}"), tcp(), kDeny},
      {"ALLOW with empty rules allows nothing", doc("none", "{action: ALLOW, rules: []}"), http(),
       kDeny},
      {"DENY rules [{}] denies everything", deny("{}"), http().peer(kSleep), kDeny, "deny", 0},
      {"DENY matching denies", deny_admin, http().path("/admin"), kDeny, "deny", 0},
      {"DENY not matching, no ALLOW: allowed", deny_admin, http().path("/x"), kAllow},
      {"DENY is evaluated before ALLOW", deny_admin + allow_sleep,
       http().peer(kSleep).path("/admin"), kDeny, "deny", 0},
      {"DENY not matching, ALLOW matching", deny_admin + allow_sleep, http().peer(kSleep), kAllow,
       "allow", 0},
      {"DENY not matching, ALLOW not matching", deny_admin + allow_sleep, http().peer(kClient),
       kDeny},
      {"ALLOW present, none matching: denied", allow_sleep, http(), kDeny},
      {"any ALLOW policy may allow",
       allow("{to: [{operation: {paths: [/a]}}]}", "allow-a") +
           allow("{to: [{operation: {paths: [/b]}}]}", "allow-b"),
       http().path("/b"), kAllow, "allow-b", 0},
      {"first DENY policy by name is reported", deny("{}", "deny-b") + deny("{}", "deny-a"), http(),
       kDeny, "deny-a", 0},
  });
}

TEST(EngineTest, Audit) {
  const std::string audit_admin = audit("{to: [{operation: {paths: [/admin]}}]}");
  expectRows({
      {"AUDIT matching: decision unchanged", audit_admin, http().path("/admin"), kAllow, "", -1,
       web(), "audit"},
      {"AUDIT is not an ALLOW policy", audit_admin, http().path("/x"), kAllow},
      {"AUDIT with ALLOW not matching", audit_admin + allowTo("{paths: [/public]}"),
       http().path("/admin"), kDeny, "", -1, web(), "audit"},
      {"AUDIT with ALLOW matching", audit_admin + allowTo(R"({paths: ["/ad*"]})"),
       http().path("/admin"), kAllow, "allow", 0, web(), "audit"},
      {"AUDIT with DENY matching", audit_admin + deny("{}"), http().path("/admin"), kDeny, "deny",
       0, web(), "audit"},
      {"AUDIT rules [{}]", audit("{}"), tcp(), kAllow, "", -1, web(), "audit"},
      // Istio puts a dry-run AUDIT policy in the shadow rules of the LOG filter, and Envoy
      // sets the access-log hint only "if not shadow enforcement" (rbac engine_impl.cc).
      {"dry-run AUDIT records nothing",
       doc("audit", "{action: AUDIT, rules: [{}]}", "foo",
           R"(annotations: {"istio.io/dry-run": "true"})"),
       http(), kAllow},
      {"AUDIT in another namespace", doc("audit", "{action: AUDIT, rules: [{}]}", "bar"), http(),
       kAllow},
  });
}

// --- Scoping ---------------------------------------------------------------------------------

TEST(EngineTest, Scoping) {
  const std::string deny_all = "{action: DENY, rules: [{}]}";
  const Workload web_v1{"foo", {{"app", "web"}, {"version", "v1"}}};
  const Workload in_root{"istio-system", {{"app", "web"}}};
  const Workload in_default{"default", {{"app", "web"}}};
  const Workload in_mesh_root{"mesh-root", {}};
  expectRows({
      {"workload namespace, no selector", doc("d", deny_all), http(), kDeny, "d", 0},
      {"workload namespace, matching selector",
       doc("d", "{selector: {matchLabels: {app: web}}, action: DENY, rules: [{}]}"), http(), kDeny,
       "d", 0},
      {"empty selector selects every workload",
       doc("d", "{selector: {matchLabels: {}}, action: DENY, rules: [{}]}"), http(), kDeny, "d", 0},
      {"workload namespace, other selector",
       doc("d", "{selector: {matchLabels: {app: api}}, action: DENY, rules: [{}]}"), http(),
       kAllow},
      {"selector labels are a subset of the workload's",
       doc("d", "{selector: {matchLabels: {app: web}}, action: DENY, rules: [{}]}"), http(), kDeny,
       "d", 0, web_v1},
      {"selector needs every label",
       doc("d", "{selector: {matchLabels: {app: web, version: v2}}, action: DENY, rules: [{}]}"),
       http(), kAllow, "", -1, web_v1},
      {"selector label value must be equal",
       doc("d", "{selector: {matchLabels: {app: web}}, action: DENY, rules: [{}]}"), http(), kAllow,
       "", -1, Workload{"foo", {{"app", "web2"}}}},
      {"other namespace never applies", doc("d", deny_all, "bar"), http(), kAllow},
      {"other namespace with matching selector",
       doc("d", "{selector: {matchLabels: {app: web}}, action: DENY, rules: [{}]}", "bar"), http(),
       kAllow},
      {"root namespace applies mesh-wide", doc("d", deny_all, "istio-system"), http(), kDeny, "d",
       0},
      {"root namespace with matching selector",
       doc("d", "{selector: {matchLabels: {app: web}}, action: DENY, rules: [{}]}", "istio-system"),
       http(), kDeny, "d", 0},
      {"root namespace with other selector",
       doc("d", "{selector: {matchLabels: {app: api}}, action: DENY, rules: [{}]}", "istio-system"),
       http(), kAllow},
      {"workload in the root namespace", doc("d", deny_all, "istio-system"), http(), kDeny, "d", 0,
       in_root},
      {"configurable root namespace applies mesh-wide", doc("d", deny_all, "mesh-root"), http(),
       kDeny, "d", 0, web(), "", "mesh-root"},
      {"istio-system is not special with another root", doc("d", deny_all, "istio-system"), http(),
       kAllow, "", -1, web(), "", "mesh-root"},
      {"workload in a configured root namespace", doc("d", deny_all, "mesh-root"), http(), kDeny,
       "d", 0, in_mesh_root, "", "mesh-root"},
      {"namespace omitted means default: default workload", doc("d", deny_all, ""), http(), kDeny,
       "d", 0, in_default},
      {"namespace omitted means default: other workload", doc("d", deny_all, ""), http(), kAllow},
      {"root ALLOW counts as an ALLOW policy",
       doc("a", "{rules: [{to: [{operation: {paths: [/a]}}]}]}", "istio-system"), http(), kDeny},
      {"root ALLOW may allow",
       doc("a", "{rules: [{to: [{operation: {paths: [/a]}}]}]}", "istio-system"), http().path("/a"),
       kAllow, "a", 0},
      {"root DENY before workload ALLOW", doc("rd", deny_all, "istio-system") + allow("{}"), http(),
       kDeny, "rd", 0},
      {"workload DENY before root ALLOW", deny("{}") + doc("ra", "{rules: [{}]}", "istio-system"),
       http(), kDeny, "deny", 0},
  });
}

TEST(EngineTest, ScopingSelectsPolicyLists) {
  const std::string yaml =
      doc("root-allow", "{rules: [{}]}", "istio-system") +
      doc("root-api", "{selector: {matchLabels: {app: api}}, action: DENY, rules: [{}]}",
          "istio-system") +
      doc("b-deny", "{action: DENY, rules: [{}]}") + doc("a-deny", "{action: DENY, rules: [{}]}") +
      doc("audit", "{action: AUDIT, rules: [{}]}") +
      doc("dry-deny", "{action: DENY, rules: [{}]}", "foo",
          R"(annotations: {"istio.io/dry-run": "true"})") +
      doc("dry-allow", "{rules: [{}]}", "foo", R"(annotations: {"istio.io/dry-run": "true"})") +
      doc("elsewhere", "{action: DENY, rules: [{}]}", "bar");
  auto set = compileYaml(yaml, "istio-system");
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->size(), 8u);
  WorkloadAuthz authz(set, web());
  auto names = [](const std::vector<const CompiledPolicy*>& list) {
    std::vector<std::string> out;
    for (const CompiledPolicy* p : list) {
      out.push_back(p->ns + "/" + p->name);
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names(authz.deny()), (V{"foo/a-deny", "foo/b-deny"}));
  EXPECT_EQ(names(authz.allow()), (V{"istio-system/root-allow"}));
  EXPECT_EQ(names(authz.audit()), (V{"foo/audit"}));
  EXPECT_EQ(names(authz.dryRunDeny()), (V{"foo/dry-deny"}));
  EXPECT_EQ(names(authz.dryRunAllow()), (V{"foo/dry-allow"}));
}

TEST(EngineTest, KeepsPolicySetAlive) {
  auto set = compileYaml(deny("{to: [{operation: {paths: [/admin]}}]}"), "istio-system");
  ASSERT_NE(set, nullptr);
  WorkloadAuthz authz(set, web());
  set.reset();
  const Req req = http().path("/admin");
  BuiltRequest request(req);
  Decision d = authz.evaluate(request.view());
  EXPECT_EQ(d.verdict, kDeny);
  ASSERT_TRUE(d.by);
  EXPECT_EQ(d.by.policy->name, "deny");
  EXPECT_EQ(d.by.policy->ns, "foo");
}

// --- TCP -------------------------------------------------------------------------------------

TEST(EngineTest, TcpAllowDropsRulesWithHttpFields) {
  // "Return the error as-is for allow policy. This will make all rules in the current
  // permission ignored" (Istio model.go): the whole rule is skipped on the TCP filter chain,
  // even when another `to` entry could be evaluated.
  const std::string methods = allowTo("{methods: [GET]}");
  const std::string two_to = allow(R"({to: [{operation: {methods: [GET]}}, )"
                                   R"({operation: {ports: ["8080"]}}]})");
  const std::string with_from =
      allow(R"({from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}], )"
            R"(when: [{key: "request.headers[x-user]", values: [alice]}]})");
  const std::string two_rules = allow(R"({to: [{operation: {hosts: [web.foo.svc]}}]}, )"
                                      R"({to: [{operation: {ports: ["8080"]}}]})");
  expectRows({
      {"methods: HTTP matches", methods, http(), kAllow, "allow", 0},
      {"methods: TCP dropped", methods, tcp(), kDeny},
      {"hosts: TCP dropped", allowTo("{hosts: [web.foo.svc]}"), tcp(), kDeny},
      {"paths: TCP dropped", allowTo(R"({paths: ["*"]})"), tcp(), kDeny},
      {"notPaths: TCP dropped", allowTo("{notPaths: [/admin]}"), tcp(), kDeny},
      {"notMethods: TCP dropped", allowTo("{notMethods: [DELETE]}"), tcp(), kDeny},
      {"notHosts: TCP dropped", allowTo("{notHosts: [x]}"), tcp(), kDeny},
      {"request.headers condition: TCP dropped",
       allowWhen(R"({key: "request.headers[x-user]", notValues: [bob]})"), tcp(), kDeny},
      {"header condition with from: TCP dropped", with_from, tcp().peer(kSleep), kDeny},
      {"two to entries: HTTP second entry", two_to, http().method("POST"), kAllow, "allow", 0},
      {"two to entries: TCP dropped although ports match", two_to, tcp(), kDeny},
      {"other rule still applies to TCP", two_rules, tcp(), kAllow, "allow", 1},
      {"other rule, HTTP first rule", two_rules, http(), kAllow, "allow", 0},
      {"ports only: TCP", allowTo(R"({ports: ["8080"]})"), tcp(), kAllow, "allow", 0},
      {"ports only: TCP other port", allowTo(R"({ports: ["8080"]})"), tcp().port(9090), kDeny},
      {"notPorts: TCP", allowTo(R"({notPorts: ["9090"]})"), tcp(), kAllow, "allow", 0},
      {"principals: TCP", allowFrom("{principals: [cluster.local/ns/foo/sa/sleep]}"),
       tcp().peer(kSleep), kAllow, "allow", 0},
      {"namespaces: TCP", allowFrom("{namespaces: [bar]}"), tcp().peer(kClient), kAllow, "allow",
       0},
      {"serviceAccounts: TCP", allowFrom("{serviceAccounts: [sleep]}"), tcp().peer(kSleep), kAllow,
       "allow", 0},
      {"ipBlocks: TCP", allowFrom("{ipBlocks: [10.1.0.0/16]}"), tcp(), kAllow, "allow", 0},
      {"remoteIpBlocks: TCP", allowFrom("{remoteIpBlocks: [10.1.0.0/16]}"), tcp(), kAllow, "allow",
       0},
      {"connection.sni: TCP", allowWhen("{key: connection.sni, values: [web.foo.svc]}"),
       tcp().sni("web.foo.svc"), kAllow, "allow", 0},
      {"destination.port: TCP", allowWhen(R"({key: destination.port, values: ["8080"]})"), tcp(),
       kAllow, "allow", 0},
      {"destination.ip: TCP", allowWhen("{key: destination.ip, values: [10.2.0.0/16]}"), tcp(),
       kAllow, "allow", 0},
      {"source.ip: TCP", allowWhen("{key: source.ip, values: [10.1.0.0/16]}"), tcp(), kAllow,
       "allow", 0},
      {"remote.ip: TCP", allowWhen("{key: remote.ip, values: [10.1.0.0/16]}"), tcp(), kAllow,
       "allow", 0},
      {"source.namespace: TCP", allowWhen("{key: source.namespace, values: [foo]}"),
       tcp().peer(kSleep), kAllow, "allow", 0},
      {"source.principal: TCP",
       allowWhen("{key: source.principal, values: [cluster.local/ns/foo/sa/sleep]}"),
       tcp().peer(kSleep), kAllow, "allow", 0},
  });
}

TEST(EngineTest, TcpDenyAndAuditDropOnlyHttpFields) {
  // "Ignore the error for a deny or audit policy ... effectively resulting in a wider deny or
  // audit policy" (Istio model.go): only the HTTP-only values are left out.
  const std::string methods = deny("{to: [{operation: {methods: [POST]}}]}");
  const std::string methods_port =
      deny(R"({to: [{operation: {methods: [POST], ports: ["8080"]}}]})");
  const std::string principal_path = deny(
      "{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}], "
      "to: [{operation: {paths: [/admin]}}]}");
  const std::string header_ip = deny(R"({when: [{key: "request.headers[x-user]", values: [a]}, )"
                                     R"({key: source.ip, values: [10.1.0.0/16]}]})");
  const std::string two_to = deny(R"({to: [{operation: {methods: [GET]}}, )"
                                  R"({operation: {ports: ["1"]}}]})");
  expectRows({
      {"methods only: HTTP other method", methods, http(), kAllow},
      {"methods only: HTTP listed method", methods, http().method("POST"), kDeny, "deny", 0},
      // A DENY with only `methods` denies every TCP connection.
      {"methods only: every TCP connection", methods, tcp().peer(kSleep), kDeny, "deny", 0},
      {"methods and ports: TCP same port", methods_port, tcp(), kDeny, "deny", 0},
      {"methods and ports: TCP other port", methods_port, tcp().port(9090), kAllow},
      {"principal and path: TCP same principal", principal_path, tcp().peer(kSleep), kDeny, "deny",
       0},
      {"principal and path: TCP other principal", principal_path, tcp().peer(kClient), kAllow},
      {"notPaths: every TCP connection", deny("{to: [{operation: {notPaths: [/public]}}]}"), tcp(),
       kDeny, "deny", 0},
      {"hosts: every TCP connection", deny("{to: [{operation: {hosts: [x.example]}}]}"), tcp(),
       kDeny, "deny", 0},
      {"header and ip: TCP inside", header_ip, tcp(), kDeny, "deny", 0},
      {"header and ip: TCP outside", header_ip, tcp().src("10.9.0.1"), kAllow},
      {"header and ip: HTTP without header", header_ip, http(), kAllow},
      {"an emptied to entry matches every TCP connection", two_to, tcp().port(9090), kDeny, "deny",
       0},
      {"DENY widened on TCP beats ALLOW", methods + allow("{}"), tcp(), kDeny, "deny", 0},
      {"DENY widened on TCP, ALLOW dropped on TCP",
       deny("{to: [{operation: {paths: [/admin]}}]}") + allowTo("{hosts: [web.foo.svc]}"), tcp(),
       kDeny, "deny", 0},
      {"AUDIT methods only: every TCP connection", audit("{to: [{operation: {methods: [POST]}}]}"),
       tcp(), kAllow, "", -1, web(), "audit"},
      {"AUDIT methods only: HTTP other method", audit("{to: [{operation: {methods: [POST]}}]}"),
       http(), kAllow},
  });
}

// --- Dry run ---------------------------------------------------------------------------------

struct DryRow {
  std::string name;
  std::string policies;
  Req request;
  Verdict want;             // enforced: never changed by dry-run policies
  std::string want_policy;  // the enforced deciding policy; "" for none
  bool want_has_dry_run;
  Verdict want_dry_verdict;     // what enforcing the dry-run policies too would give
  std::string want_dry_policy;  // the policy that would decide; "" for none
};

TEST(EngineTest, DryRun) {
  const std::string dry = R"(annotations: {"istio.io/dry-run": "true"})";
  const std::string dry_deny_admin = doc(
      "dry-deny", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}", "foo", dry);
  const std::string dry_allow_public =
      doc("dry-allow", "{rules: [{to: [{operation: {paths: [/public]}}]}]}", "foo", dry);
  const std::vector<DryRow> rows = {
      {"dry-run DENY matching", dry_deny_admin, http().path("/admin"), kAllow, "", true, kDeny,
       "dry-deny"},
      {"dry-run DENY not matching", dry_deny_admin, http().path("/x"), kAllow, "", true, kAllow,
       ""},
      {"dry-run DENY matching, enforced DENY matching", dry_deny_admin + deny("{}"),
       http().path("/admin"), kDeny, "deny", true, kDeny, "deny"},
      {"dry-run DENY matching, enforced ALLOW matching", dry_deny_admin + allow("{}"),
       http().path("/admin"), kAllow, "allow", true, kDeny, "dry-deny"},
      // Dry-run ALLOW policies are not enforced: alone they leave "no ALLOW policy" in force.
      {"dry-run ALLOW not matching", dry_allow_public, http().path("/x"), kAllow, "", true, kDeny,
       ""},
      {"dry-run ALLOW matching", dry_allow_public, http().path("/public"), kAllow, "", true, kAllow,
       "dry-allow"},
      {"dry-run ALLOW matching, enforced ALLOW not matching",
       dry_allow_public + allowTo("{paths: [/a]}"), http().path("/public"), kDeny, "", true, kAllow,
       "dry-allow"},
      {"dry-run ALLOW not matching, enforced ALLOW matching",
       dry_allow_public + allowTo("{paths: [/a]}"), http().path("/a"), kAllow, "allow", true,
       kAllow, "allow"},
      {"dry-run DENY on TCP widened",
       doc("dry-deny",
           "{action: DENY, rules: [{to: [{operation: "
           "{methods: [GET]}}]}]}",
           "foo", dry),
       tcp(), kAllow, "", true, kDeny, "dry-deny"},
      {"dry-run annotation false is enforced",
       doc("d", "{action: DENY, rules: [{}]}", "foo",
           R"(annotations: {"istio.io/dry-run": "false"})"),
       http(), kDeny, "d", false, kDeny, ""},
      {"no dry-run policy", deny("{}"), http(), kDeny, "deny", false, kDeny, ""},
      {"dry-run policy in another namespace",
       doc("dry-deny", "{action: DENY, rules: [{}]}", "bar", dry), http(), kAllow, "", false,
       kAllow, ""},
      {"dry-run policy with other selector",
       doc("dry-deny", "{selector: {matchLabels: {app: api}}, action: DENY, rules: [{}]}", "foo",
           dry),
       http(), kAllow, "", false, kAllow, ""},
      {"dry-run policy in the root namespace",
       doc("dry-deny", "{action: DENY, rules: [{}]}", "istio-system", dry), http(), kAllow, "",
       true, kDeny, "dry-deny"},
  };
  for (const DryRow& row : rows) {
    SCOPED_TRACE(row.name);
    auto set = compileYaml(row.policies, "istio-system");
    ASSERT_NE(set, nullptr);
    WorkloadAuthz authz(set, web());
    BuiltRequest request(row.request);
    Decision d = authz.evaluate(request.view());
    EXPECT_STREQ(verdictName(d.verdict), verdictName(row.want));
    EXPECT_EQ(policyName(d.by), row.want_policy);
    EXPECT_EQ(d.has_dry_run, row.want_has_dry_run);
    if (row.want_has_dry_run) {
      EXPECT_STREQ(verdictName(d.dry_run_verdict), verdictName(row.want_dry_verdict));
      EXPECT_EQ(policyName(d.dry_run_by), row.want_dry_policy);
      EXPECT_EQ(d.dryRunChanges(), row.want_dry_verdict != row.want);
    } else {
      EXPECT_FALSE(d.dryRunChanges());
    }
  }
}

TEST(EngineTest, DryRunReasons) {
  const std::string dry = R"(annotations: {"istio.io/dry-run": "true"})";
  auto set =
      compileYaml(doc("dry-allow", "{rules: [{to: [{operation: {paths: [/a]}}]}]}", "foo", dry),
                  "istio-system");
  ASSERT_NE(set, nullptr);
  WorkloadAuthz authz(set, web());
  const Req other = http().path("/b");
  BuiltRequest request(other);
  Decision d = authz.evaluate(request.view());
  EXPECT_EQ(d.reason, DecisionReason::kNoAllowPolicies);
  EXPECT_EQ(d.dry_run_reason, DecisionReason::kNoAllowMatched);
  EXPECT_TRUE(d.dryRunChanges());
}

}  // namespace
}  // namespace palisade::policy
