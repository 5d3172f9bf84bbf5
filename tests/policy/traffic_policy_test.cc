#include "policy/traffic_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "policy/loader.h"

// Which DestinationRule settings and VirtualService route apply to host:port: Istio's host
// rules (short names in the rule's namespace, exact over wildcard, the most specific
// wildcard, the oldest rule) and the port-level overrides.

namespace palisade::policy {
namespace {

using std::chrono::milliseconds;

PolicyBundle bundle(const std::string& yaml) {
  LoadResult r;
  loadYaml(yaml, "traffic.yaml", r);
  EXPECT_TRUE(r.ok()) << r.errorText();
  return r.bundle;
}

std::string dr(const std::string& name, const std::string& ns, const std::string& host,
               const std::string& created = "") {
  return "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: " +
         name + "\n  namespace: " + ns + "\n" +
         (created.empty() ? "" : "  creationTimestamp: \"" + created + "\"\n") +
         "spec:\n  host: \"" + host + "\"\n";
}

std::string vs(const std::string& name, const std::string& ns, const std::string& hosts,
               const std::string& http, const std::string& extra = "") {
  return "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: " +
         name + "\n  namespace: " + ns + "\nspec:\n  hosts: " + hosts + "\n" + extra + "  http:\n" +
         http;
}

// The name of the DestinationRule chosen for host:80, "" for none.
std::string ruleFor(const PolicyBundle& b, std::string_view host) {
  const DestinationRule* r = resolveTraffic(b, host, 80).destination_rule;
  return r == nullptr ? "" : r->metadata.name;
}

std::string serviceFor(const PolicyBundle& b, std::string_view host) {
  const VirtualService* v = resolveTraffic(b, host, 80).virtual_service;
  return v == nullptr ? "" : v->metadata.name;
}

TEST(TrafficPolicyTest, QualifyHost) {
  struct Row {
    std::string host;
    std::string ns;
    std::string want;
  };
  for (const Row& row : std::vector<Row>{
           {"reviews", "prod", "reviews.prod.svc.cluster.local"},
           {"reviews", "", "reviews.default.svc.cluster.local"},
           {"reviews.prod", "other", "reviews.prod"},  // has a dot: as written
           {"reviews.prod.svc.cluster.local", "other", "reviews.prod.svc.cluster.local"},
           {"*", "prod", "*"},
           {"*.example.com", "prod", "*.example.com"},
           {"10.0.0.1", "prod", "10.0.0.1"},
           {"::1", "prod", "::1"},
           {"", "prod", ""},
       }) {
    SCOPED_TRACE(row.host + " in " + row.ns);
    EXPECT_EQ(qualifyHost(row.host, row.ns), row.want);
  }
}

TEST(TrafficPolicyTest, HostMatches) {
  struct Row {
    std::string pattern;
    std::string host;
    bool want;
  };
  for (const Row& row : std::vector<Row>{
           {"*", "anything.at.all", true},
           {"*", "x", true},
           {"*.example.com", "a.example.com", true},
           {"*.example.com", "a.b.example.com", true},
           {"*.example.com", "example.com", false},
           {"*.example.com", "aexample.com", false},
           {"*.example.com", "a.example.com.evil", false},
           {"*.example.com", "A.EXAMPLE.COM", true},
           {"a.example.com", "a.example.com", true},
           {"a.example.com", "A.Example.Com", true},
           {"a.example.com", "a.example.com.", true},
           {"a.example.com.", "a.example.com", true},
           {"a.example.com", "b.example.com", false},
           {"a.example.com", "x.a.example.com", false},
           {"example.com", "a.example.com", false},
       }) {
    SCOPED_TRACE(row.pattern + " vs " + row.host);
    EXPECT_EQ(hostMatches(row.pattern, row.host), row.want);
  }
}

TEST(TrafficPolicyTest, NoRulesNothingSet) {
  const PolicyBundle b;
  ResolvedTraffic r = resolveTraffic(b, "reviews.prod.svc.cluster.local", 80);
  EXPECT_EQ(r.destination_rule, nullptr);
  EXPECT_EQ(r.virtual_service, nullptr);
  EXPECT_FALSE(r.http_route.has_value());
  EXPECT_EQ(r.policy.load_balancer, LoadBalancerPolicy::kUnset);
  EXPECT_FALSE(r.policy.max_connections.has_value());
  EXPECT_FALSE(r.policy.outlier_detection.has_value());
}

TEST(TrafficPolicyTest, ExactBeatsWildcardAndTheLongestWildcardWins) {
  const PolicyBundle b =
      bundle(dr("star", "a", "*") + dr("wide", "a", "*.com") + dr("narrow", "a", "*.example.com") +
             dr("exact", "a", "api.example.com"));
  EXPECT_EQ(ruleFor(b, "api.example.com"), "exact");
  EXPECT_EQ(ruleFor(b, "API.example.com"), "exact");
  EXPECT_EQ(ruleFor(b, "web.example.com"), "narrow");
  EXPECT_EQ(ruleFor(b, "web.other.com"), "wide");
  EXPECT_EQ(ruleFor(b, "example.com"), "wide");
  EXPECT_EQ(ruleFor(b, "localhost"), "star");
  // Load order does not matter for precedence.
  const PolicyBundle reversed = bundle(dr("exact", "a", "api.example.com") +
                                       dr("narrow", "a", "*.example.com") + dr("star", "a", "*"));
  EXPECT_EQ(ruleFor(reversed, "api.example.com"), "exact");
  EXPECT_EQ(ruleFor(reversed, "web.example.com"), "narrow");
  // As long as the exact name: "*.example.com" and "a.example.com" both have 13 characters.
  const PolicyBundle same_length =
      bundle(dr("older-wildcard", "a", "*.example.com", "2020-01-01T00:00:00Z") +
             dr("newer-exact", "a", "a.example.com", "2024-01-01T00:00:00Z"));
  EXPECT_EQ(ruleFor(same_length, "a.example.com"), "newer-exact");
}

TEST(TrafficPolicyTest, NoMatchingRule) {
  const PolicyBundle b = bundle(dr("r", "a", "*.example.com") + dr("s", "a", "api.other.com"));
  ResolvedTraffic r = resolveTraffic(b, "api.example.org", 80);
  EXPECT_EQ(r.destination_rule, nullptr);
  EXPECT_EQ(r.policy.load_balancer, LoadBalancerPolicy::kUnset);
}

TEST(TrafficPolicyTest, ShortNamesMeanTheRulesNamespace) {
  const PolicyBundle b =
      bundle(dr("in-prod", "prod", "reviews") + dr("in-test", "test", "reviews") +
             "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
             "metadata: {name: no-namespace}\nspec: {host: ratings}\n");
  EXPECT_EQ(ruleFor(b, "reviews.prod.svc.cluster.local"), "in-prod");
  EXPECT_EQ(ruleFor(b, "reviews.test.svc.cluster.local"), "in-test");
  EXPECT_EQ(ruleFor(b, "ratings.default.svc.cluster.local"), "no-namespace");
  EXPECT_EQ(ruleFor(b, "reviews.other.svc.cluster.local"), "");
  EXPECT_EQ(ruleFor(b, "reviews"), "") << "the requested host is fully qualified";
}

TEST(TrafficPolicyTest, ASuffixIsNotAShortName) {
  // "reviews.prod" has a dot: Istio takes it as written, so it names no cluster service.
  const PolicyBundle b = bundle(dr("partial", "prod", "reviews.prod"));
  EXPECT_EQ(ruleFor(b, "reviews.prod.svc.cluster.local"), "");
  EXPECT_EQ(ruleFor(b, "reviews.prod"), "partial");
}

TEST(TrafficPolicyTest, TiesGoToTheOldestThenTheFirstLoaded) {
  const PolicyBundle b = bundle(dr("undated", "a", "api.example.com") +
                                dr("newer", "a", "api.example.com", "2024-05-01T00:00:00Z") +
                                dr("older", "b", "api.example.com", "2023-01-01T00:00:00Z") +
                                dr("first-wildcard", "a", "*.example.com") +
                                dr("second-wildcard", "b", "*.example.com"));
  EXPECT_EQ(ruleFor(b, "api.example.com"), "older");
  EXPECT_EQ(ruleFor(b, "web.example.com"), "first-wildcard");
  const PolicyBundle undated =
      bundle(dr("one", "a", "api.example.com") + dr("two", "b", "api.example.com"));
  EXPECT_EQ(ruleFor(undated, "api.example.com"), "one");
  const PolicyBundle dated_later =
      bundle(dr("undated", "a", "api.example.com") +
             dr("dated", "b", "api.example.com", "2030-01-01T00:00:00Z"));
  EXPECT_EQ(ruleFor(dated_later, "api.example.com"), "dated")
      << "a rule without a timestamp counts as newer than any with one";
}

TEST(TrafficPolicyTest, PortLevelSettingsOverrideFieldByField) {
  const PolicyBundle b = bundle(
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
      "spec:\n"
      "  host: api.example.com\n"
      "  trafficPolicy:\n"
      "    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 20s}\n"
      "    connectionPool:\n"
      "      tcp: {maxConnections: 100, connectTimeout: 1s}\n"
      "      http: {http2MaxRequests: 50, maxRetries: 3}\n"
      "    outlierDetection: {consecutive5xxErrors: 7, interval: 5m}\n"
      "    portLevelSettings:\n"
      "    - port: {number: 8080}\n"
      "      loadBalancer: {simple: RANDOM}\n"
      "      connectionPool: {tcp: {maxConnections: 10}, http: {http1MaxPendingRequests: 4}}\n"
      "    - port: {number: 9090}\n"
      "      outlierDetection: {baseEjectionTime: 1m}\n"
      "    - port: {number: 8080}\n"
      "      connectionPool: {tcp: {maxConnections: 99}}\n");
  ResolvedTraffic top = resolveTraffic(b, "api.example.com", 80);
  ASSERT_NE(top.destination_rule, nullptr);
  EXPECT_EQ(top.policy.load_balancer, LoadBalancerPolicy::kRoundRobin);
  EXPECT_EQ(top.policy.max_connections, 100u);
  EXPECT_FALSE(top.policy.http1_max_pending_requests.has_value());

  ResolvedTraffic p8080 = resolveTraffic(b, "api.example.com", 8080);
  EXPECT_EQ(p8080.policy.load_balancer, LoadBalancerPolicy::kRandom);
  EXPECT_EQ(p8080.policy.max_connections, 10u) << "the first entry for a port applies";
  EXPECT_EQ(p8080.policy.http1_max_pending_requests, 4u);
  EXPECT_EQ(p8080.policy.warmup, milliseconds(20'000)) << "unset at port level: inherited";
  EXPECT_EQ(p8080.policy.connect_timeout, milliseconds(1'000));
  EXPECT_EQ(p8080.policy.http2_max_requests, 50u);
  EXPECT_EQ(p8080.policy.max_retries, 3u);
  ASSERT_TRUE(p8080.policy.outlier_detection.has_value());
  EXPECT_EQ(p8080.policy.outlier_detection->consecutive_5xx_errors, 7u);

  ResolvedTraffic p9090 = resolveTraffic(b, "api.example.com", 9090);
  EXPECT_EQ(p9090.policy.load_balancer, LoadBalancerPolicy::kRoundRobin);
  EXPECT_EQ(p9090.policy.max_connections, 100u);
  ASSERT_TRUE(p9090.policy.outlier_detection.has_value());
  EXPECT_EQ(p9090.policy.outlier_detection->base_ejection_time, milliseconds(60'000));
  EXPECT_FALSE(p9090.policy.outlier_detection->consecutive_5xx_errors.has_value())
      << "outlier detection is replaced as a whole";
  EXPECT_FALSE(p9090.policy.outlier_detection->interval.has_value());
  EXPECT_EQ(p9090.destination_rule, top.destination_rule);
  EXPECT_EQ(p9090.destination_rule, &b.destination_rules[0]) << "points into the bundle";
}

TEST(TrafficPolicyTest, VirtualServicePrecedence) {
  const std::string route = "  - route: [{destination: {host: \"*.example.com\"}}]\n";
  const PolicyBundle b = bundle(
      vs("wildcard", "a", "[\"*.example.com\"]", route) +
      vs("exact", "a", "[other.org, api.example.com]", route) +
      vs("gateway-only", "a", "[web.example.com]", route, "  gateways: [istio-system/ingress]\n") +
      vs("short", "prod", "[reviews]", "  - route: [{destination: {host: reviews}}]\n") +
      vs("mesh-and-gateway", "a", "[mixed.example.com]", route,
         "  gateways: [mesh, istio-system/ingress]\n"));
  EXPECT_EQ(serviceFor(b, "api.example.com"), "exact");
  EXPECT_EQ(serviceFor(b, "other.org"), "exact");
  EXPECT_EQ(serviceFor(b, "web.example.com"), "wildcard")
      << "a VirtualService without \"mesh\" in gateways is not the sidecar's";
  EXPECT_EQ(serviceFor(b, "mixed.example.com"), "mesh-and-gateway");
  EXPECT_EQ(serviceFor(b, "reviews.prod.svc.cluster.local"), "short");
  EXPECT_EQ(serviceFor(b, "reviews.a.svc.cluster.local"), "");
  EXPECT_EQ(resolveTraffic(b, "api.example.com", 80).virtual_service, &b.virtual_services[1]);
}

TEST(TrafficPolicyTest, TheRouteIsTheFirstWithoutMatchConditions) {
  const PolicyBundle b = bundle(vs("reviews", "prod", "[reviews]",
                                   "  - name: canary\n"
                                   "    match: [{headers: {end-user: {exact: jason}}}]\n"
                                   "    route: [{destination: {host: reviews}}]\n"
                                   "    timeout: 1s\n"
                                   "  - name: default\n"
                                   "    route: [{destination: {host: reviews}}]\n"
                                   "    timeout: 0s\n"
                                   "    retries: {attempts: 4, perTryTimeout: 2s, retryOn: 5xx}\n"
                                   "  - name: never\n"
                                   "    route: [{destination: {host: reviews}}]\n"
                                   "    timeout: 9s\n"));
  ResolvedTraffic r = resolveTraffic(b, "reviews.prod.svc.cluster.local", 9080);
  ASSERT_NE(r.virtual_service, nullptr);
  ASSERT_TRUE(r.http_route.has_value());
  EXPECT_EQ(r.http_route->name, "default");
  EXPECT_EQ(r.http_route->timeout, milliseconds(0)) << "0s: no timeout";
  EXPECT_EQ(r.http_route->retry_attempts, 4u);
  EXPECT_EQ(r.http_route->per_try_timeout, milliseconds(2'000));
  EXPECT_EQ(r.http_route->retry_on, "5xx");
}

TEST(TrafficPolicyTest, OnlyRoutesWithConditions) {
  const PolicyBundle b = bundle(vs("reviews", "prod", "[reviews]",
                                   "  - match: [{uri: {prefix: /a}}]\n"
                                   "    route: [{destination: {host: reviews}}]\n"));
  ResolvedTraffic r = resolveTraffic(b, "reviews.prod.svc.cluster.local", 80);
  EXPECT_NE(r.virtual_service, nullptr);
  EXPECT_FALSE(r.http_route.has_value());
}

TEST(TrafficPolicyTest, ARouteToAnotherHostIsNotApplied) {
  const PolicyBundle b =
      bundle(vs("moved", "prod", "[reviews]", "  - route: [{destination: {host: reviews-v2}}]\n") +
             vs("split", "prod", "[ratings]",
                "  - route:\n"
                "    - {destination: {host: ratings-v2}, weight: 10}\n"
                "    - {destination: {host: ratings.prod.svc.cluster.local}, weight: 90}\n"
                "    timeout: 3s\n") +
             vs("elsewhere", "prod", "[details]",
                "  - route: [{destination: {host: details}}]\n"
                "    match: [{uri: {prefix: /}}]\n"
                "  - route: [{destination: {host: details.other.svc.cluster.local}}]\n"
                "  - route: [{destination: {host: details}}]\n"));
  ResolvedTraffic moved = resolveTraffic(b, "reviews.prod.svc.cluster.local", 80);
  EXPECT_NE(moved.virtual_service, nullptr);
  EXPECT_FALSE(moved.http_route.has_value());
  ResolvedTraffic split = resolveTraffic(b, "ratings.prod.svc.cluster.local", 80);
  ASSERT_TRUE(split.http_route.has_value()) << "one destination is the host";
  EXPECT_EQ(split.http_route->timeout, milliseconds(3'000));
  ResolvedTraffic elsewhere = resolveTraffic(b, "details.prod.svc.cluster.local", 80);
  EXPECT_FALSE(elsewhere.http_route.has_value())
      << "the destination's short name is read in the VirtualService's namespace, and routes "
         "after the first without conditions are never used";
}

TEST(TrafficPolicyTest, ARouteWithoutDestinationsApplies) {
  const PolicyBundle b =
      bundle(vs("redirect", "prod", "[reviews]", "  - redirect: {uri: /new}\n    timeout: 2s\n"));
  ResolvedTraffic r = resolveTraffic(b, "reviews.prod.svc.cluster.local", 80);
  ASSERT_TRUE(r.http_route.has_value());
  EXPECT_EQ(r.http_route->timeout, milliseconds(2'000));
}

TEST(TrafficPolicyTest, RuleAndServiceTogether) {
  const PolicyBundle b =
      bundle(dr("dr", "prod", "reviews") +
             "  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 9}}}\n" +
             vs("vs", "prod", "[reviews.prod.svc.cluster.local]",
                "  - route: [{destination: {host: reviews}}]\n    timeout: 250ms\n"));
  ResolvedTraffic r = resolveTraffic(b, "reviews.prod.svc.cluster.local.", 80);
  ASSERT_NE(r.destination_rule, nullptr);
  ASSERT_NE(r.virtual_service, nullptr);
  EXPECT_EQ(r.policy.http2_max_requests, 9u);
  ASSERT_TRUE(r.http_route.has_value());
  EXPECT_EQ(r.http_route->timeout, milliseconds(250));
}

}  // namespace
}  // namespace palisade::policy
