#include "policy/explain.h"

#include <gtest/gtest.h>

#include <string>

#include "policy/compiler.h"
#include "policy/duration.h"
#include "policy/loader.h"

// Decision explanations (deny logs, x-palisade-denied-reason, palisadectl authz check), the
// re-check of open HTTP connections after a policy change, and durations in config files.

namespace palisade::policy {
namespace {

constexpr const char* kPolicies = R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-intruder, namespace: foo}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/evil/sa/intruder"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: foo}
spec:
  action: ALLOW
  rules:
  - from: [{source: {namespaces: ["bar"]}}]
    to: [{operation: {methods: ["GET"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-ops, namespace: foo}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/ops/sa/admin"]}}]
)";

struct Fixture {
  Fixture() {
    LoadResult r;
    loadYaml(kPolicies, "p.yaml", r);
    EXPECT_TRUE(r.ok()) << r.errorText();
    set = PolicySet::compile(r.bundle);
    authz = std::make_unique<WorkloadAuthz>(set, Workload{"foo", {}});
  }
  std::shared_ptr<const PolicySet> set;
  std::unique_ptr<WorkloadAuthz> authz;
};

RequestView httpView(const SpiffeId* peer, std::string_view method, std::string_view path) {
  RequestView v;
  v.protocol = Protocol::kHttp;
  v.peer = peer;
  v.method = method;
  v.path = path;
  v.host = "httpbin";
  return v;
}

TEST(ExplainTest, DenyPolicyNamedWithRuleAndPlace) {
  Fixture f;
  auto peer = SpiffeId::parse("spiffe://cluster.local/ns/bar/sa/client");
  ASSERT_TRUE(peer.ok());
  RequestView v = httpView(&*peer, "GET", "/admin");
  Decision d = f.authz->evaluate(v);
  ASSERT_EQ(d.verdict, Verdict::kDeny);
  EXPECT_EQ(denialSummary(d, *f.authz, v),
            "denied by DENY policy foo/deny-admin, rule 0 (p.yaml:7:5)");
}

TEST(ExplainTest, DefaultDenyNamesCandidatesAndTheirMismatches) {
  Fixture f;
  auto peer = SpiffeId::parse("spiffe://cluster.local/ns/bar/sa/client");
  ASSERT_TRUE(peer.ok());
  RequestView v = httpView(&*peer, "POST", "/data");
  Decision d = f.authz->evaluate(v);
  ASSERT_EQ(d.verdict, Verdict::kDeny);
  const std::string s = denialSummary(d, *f.authz, v);
  EXPECT_TRUE(
      s.starts_with("no ALLOW policy matched; candidates: foo/allow-get rule 0 (not matched: "))
      << s;
  EXPECT_NE(s.find("methods"), std::string::npos) << s;
  EXPECT_NE(s.find("foo/allow-ops rule 0 (not matched: "), std::string::npos) << s;
}

TEST(ExplainTest, DeniesEveryRequestOnlyWhenNoRequestCouldPass) {
  Fixture f;
  auto intruder = SpiffeId::parse("spiffe://cluster.local/ns/evil/sa/intruder");
  auto client = SpiffeId::parse("spiffe://cluster.local/ns/bar/sa/client");
  auto stranger = SpiffeId::parse("spiffe://cluster.local/ns/other/sa/x");
  auto ops = SpiffeId::parse("spiffe://cluster.local/ns/ops/sa/admin");
  RequestView v;
  v.protocol = Protocol::kTcp;

  // A DENY rule on the principal alone decides for every request.
  v.peer = &*intruder;
  MatchRef by = f.authz->deniesEveryRequest(v);
  ASSERT_TRUE(by);
  EXPECT_EQ(by.policy->name, "deny-intruder");
  EXPECT_EQ(by.rule, 0);

  // allow-get's rule needs a GET: some request of the bar namespace may pass. deny-admin's
  // rule has only a path, so it never denies a whole connection.
  v.peer = &*client;
  EXPECT_FALSE(f.authz->deniesEveryRequest(v));

  // No ALLOW rule can match this peer, whatever the request: a default deny.
  v.peer = &*stranger;
  by = f.authz->deniesEveryRequest(v);
  ASSERT_TRUE(by);
  EXPECT_EQ(by.rule, -1);

  // An ALLOW rule without HTTP fields matches the peer outright.
  v.peer = &*ops;
  EXPECT_FALSE(f.authz->deniesEveryRequest(v));

  // A plaintext peer: the namespace and principal rules cannot match it.
  v.peer = nullptr;
  EXPECT_TRUE(f.authz->deniesEveryRequest(v));
}

TEST(ExplainTest, NoAllowPoliciesNeverDeniesAConnection) {
  LoadResult r;
  WorkloadAuthz authz(PolicySet::compile(r.bundle), Workload{"foo", {}});
  RequestView v;
  EXPECT_FALSE(authz.deniesEveryRequest(v));
}

TEST(DurationTest, MillisecondsInConfigFiles) {
  struct Row {
    const char* in;
    long long want_ms;  // -1: error
  };
  for (const Row& row : {Row{"100ms", 100}, Row{"1s500ms", 1500}, Row{"2m", 120'000},
                         Row{"1h", 3'600'000}, Row{"ms", -1}, Row{"5x", -1}, Row{"", -1}}) {
    SCOPED_TRACE(row.in);
    auto d = parseDurationMillis(row.in);
    if (row.want_ms < 0) {
      EXPECT_FALSE(d.ok());
    } else {
      ASSERT_TRUE(d.ok()) << d.error().message;
      EXPECT_EQ(d->count(), row.want_ms);
    }
  }
  // Whole-second durations (certificate TTLs) do not take milliseconds.
  EXPECT_FALSE(parseDuration("100ms").ok());
  EXPECT_EQ(parseDuration("90s")->count(), 90);
}

}  // namespace
}  // namespace palisade::policy
