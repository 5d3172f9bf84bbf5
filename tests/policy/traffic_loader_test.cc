#include "policy/traffic_loader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "policy/loader.h"

// DestinationRule and VirtualService manifests: what loads into the model, what is accepted
// with a warning because the sidecar does not apply it, and every refusal with file:line:col,
// following Istio's ValidateDestinationRule / ValidateVirtualService.

namespace palisade::policy {
namespace {

using std::chrono::milliseconds;

LoadResult load(const std::string& yaml) {
  LoadResult r;
  loadYaml(yaml, "traffic.yaml", r);
  return r;
}

std::string errors(const LoadResult& r) { return r.errorText(); }

std::string warnings(const LoadResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics) {
    if (d.severity == Diagnostic::Severity::kWarning) {
      out += formatDiagnostic(d) + "\n";
    }
  }
  return out;
}

// Lines 1-5; "spec:" on line 6.
const std::string kDrHead =
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata:\n"
    "  name: reviews\n"
    "  namespace: prod\n";

const std::string kVsHead =
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata:\n"
    "  name: reviews\n"
    "  namespace: prod\n";

// --- DestinationRule ----------------------------------------------------------------------

TEST(TrafficLoaderTest, LoadsEveryAppliedDestinationRuleField) {
  LoadResult r = load(kDrHead +
                      "spec:\n"
                      "  host: reviews.prod.svc.cluster.local\n"
                      "  exportTo: [\".\", other]\n"
                      "  trafficPolicy:\n"
                      "    loadBalancer:\n"
                      "      simple: ROUND_ROBIN\n"
                      "      warmupDurationSecs: 1.5s\n"
                      "    connectionPool:\n"
                      "      tcp:\n"
                      "        maxConnections: 100\n"
                      "        connectTimeout: 30ms\n"
                      "      http:\n"
                      "        http1MaxPendingRequests: 7\n"
                      "        http2MaxRequests: 1000\n"
                      "        maxRequestsPerConnection: 0\n"
                      "        maxRetries: \"3\"\n"
                      "    outlierDetection:\n"
                      "      consecutive5xxErrors: 0\n"
                      "      consecutiveGatewayErrors: 4294967295\n"
                      "      interval: 1m30s\n"
                      "      baseEjectionTime: 15m\n"
                      "      maxEjectionPercent: 100\n"
                      "    portLevelSettings:\n"
                      "    - port: {number: 9080}\n"
                      "      loadBalancer: {simple: LEAST_CONN}\n"
                      "      connectionPool: {http: {http2MaxRequests: 5}}\n"
                      "    - port: {number: 65535}\n"
                      "      outlierDetection: {}\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  EXPECT_EQ(warnings(r), "");
  ASSERT_EQ(r.bundle.destination_rules.size(), 1u);
  const DestinationRule& dr = r.bundle.destination_rules[0];
  EXPECT_EQ(dr.api_version, "networking.istio.io/v1");
  EXPECT_EQ(dr.metadata.name, "reviews");
  EXPECT_EQ(dr.metadata.ns, "prod");
  EXPECT_EQ(dr.host, "reviews.prod.svc.cluster.local");
  EXPECT_EQ(dr.export_to, (std::vector<std::string>{".", "other"}));
  const TrafficPolicy& p = dr.traffic_policy;
  EXPECT_EQ(p.load_balancer, LoadBalancerPolicy::kRoundRobin);
  EXPECT_EQ(p.warmup, milliseconds(1500));
  EXPECT_EQ(p.max_connections, 100u);
  EXPECT_EQ(p.connect_timeout, milliseconds(30));
  EXPECT_EQ(p.http1_max_pending_requests, 7u);
  EXPECT_EQ(p.http2_max_requests, 1000u);
  EXPECT_EQ(p.max_requests_per_connection, 0u);
  EXPECT_EQ(p.max_retries, 3u) << "protobuf's JSON mapping takes quoted integers";
  ASSERT_TRUE(p.outlier_detection.has_value());
  EXPECT_EQ(p.outlier_detection->consecutive_5xx_errors, 0u) << "0 disables, and is kept";
  EXPECT_EQ(p.outlier_detection->consecutive_gateway_errors, 4294967295u);
  EXPECT_EQ(p.outlier_detection->interval, milliseconds(90'000));
  EXPECT_EQ(p.outlier_detection->base_ejection_time, milliseconds(900'000));
  EXPECT_EQ(p.outlier_detection->max_ejection_percent, 100u);
  EXPECT_EQ(formatMark(p.outlier_detection->mark), "traffic.yaml:23:7");
  ASSERT_EQ(dr.port_level_settings.size(), 2u);
  const PortTrafficPolicy& p0 = dr.port_level_settings[0];
  EXPECT_EQ(p0.port, 9080u);
  EXPECT_EQ(p0.policy.load_balancer, LoadBalancerPolicy::kLeastRequest)
      << "LEAST_CONN is Istio's deprecated name of LEAST_REQUEST";
  EXPECT_EQ(p0.policy.http2_max_requests, 5u);
  EXPECT_FALSE(p0.policy.max_connections.has_value());
  EXPECT_FALSE(p0.policy.outlier_detection.has_value());
  EXPECT_EQ(formatMark(p0.mark), "traffic.yaml:29:7");
  const PortTrafficPolicy& p1 = dr.port_level_settings[1];
  EXPECT_EQ(p1.port, 65535u);
  EXPECT_EQ(p1.policy.load_balancer, LoadBalancerPolicy::kUnset);
  EXPECT_TRUE(p1.policy.outlier_detection.has_value()) << "an empty outlierDetection is set";
}

TEST(TrafficLoaderTest, LoadBalancerNames) {
  struct Row {
    std::string simple;
    LoadBalancerPolicy want;
  };
  for (const Row& row : std::vector<Row>{{"LEAST_REQUEST", LoadBalancerPolicy::kLeastRequest},
                                         {"LEAST_CONN", LoadBalancerPolicy::kLeastRequest},
                                         {"ROUND_ROBIN", LoadBalancerPolicy::kRoundRobin},
                                         {"RANDOM", LoadBalancerPolicy::kRandom},
                                         {"UNSPECIFIED", LoadBalancerPolicy::kUnset}}) {
    SCOPED_TRACE(row.simple);
    LoadResult r = load(
        kDrHead + "spec:\n  host: a.b\n  trafficPolicy:\n    loadBalancer: {simple: " + row.simple +
        "}\n");
    ASSERT_TRUE(r.ok()) << errors(r);
    EXPECT_EQ(r.bundle.destination_rules[0].traffic_policy.load_balancer, row.want);
  }
}

TEST(TrafficLoaderTest, WarmupConfigurationIsReadToo) {
  LoadResult r = load(kDrHead +
                      "spec:\n"
                      "  host: a.b\n"
                      "  trafficPolicy:\n"
                      "    loadBalancer:\n"
                      "      warmup: {duration: 45s, minimumPercent: 10, aggression: 2}\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  EXPECT_EQ(r.bundle.destination_rules[0].traffic_policy.warmup, milliseconds(45'000));
  EXPECT_EQ(warnings(r),
            "traffic.yaml:10:31: warning: spec.trafficPolicy.loadBalancer.warmup.minimumPercent "
            "is not applied by the sidecar; it is ignored\n"
            "traffic.yaml:10:51: warning: spec.trafficPolicy.loadBalancer.warmup.aggression is "
            "not applied by the sidecar; it is ignored\n");
}

// Go's time.ParseDuration, as Istio reads Duration fields, then "at least 1ms" and "whole
// milliseconds" (Istio's ValidateDuration).
TEST(TrafficLoaderTest, Durations) {
  struct Row {
    std::string text;
    long long want_ms;  // -1: refused
    std::string want_error;
  };
  const std::string field = "spec.trafficPolicy.connectionPool.tcp.connectTimeout";
  const std::vector<Row> rows = {
      {"1ms", 1, ""},
      {"10s", 10'000, ""},
      {"1.5s", 1'500, ""},
      {".5s", 500, ""},
      {"1.s", 1'000, ""},
      {"2m", 120'000, ""},
      {"1h30m", 5'400'000, ""},
      {"+3s", 3'000, ""},
      {"1000us", 1, ""},
      {"1000\xC2\xB5s", 1, ""},
      {"2000000ns", 2, ""},
      {"1.0000000000000000000001s", 1'000, ""},
      {"10", -1, " must be a duration such as 10s, 1.5s or 100ms, got \"10\""},
      {"7d", -1, " must be a duration such as 10s, 1.5s or 100ms, got \"7d\""},
      {"s", -1, " must be a duration such as 10s, 1.5s or 100ms, got \"s\""},
      {".s", -1, " must be a duration such as 10s, 1.5s or 100ms, got \".s\""},
      {"1 s", -1, " must be a duration such as 10s, 1.5s or 100ms, got \"1 s\""},
      {"3000000h", -1, " must be a duration such as 10s, 1.5s or 100ms, got \"3000000h\""},
      {"0", -1, " must be at least 1ms, got \"0\""},
      {"0s", -1, " must be at least 1ms, got \"0s\""},
      {"500us", -1, " must be at least 1ms, got \"500us\""},
      {"-1s", -1, " must be at least 1ms, got \"-1s\""},
      {"1.0005s", -1, " must be a whole number of milliseconds, got \"1.0005s\""},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.text);
    LoadResult r = load(kDrHead +
                        "spec:\n  host: a.b\n  trafficPolicy:\n    connectionPool:\n      tcp:\n"
                        "        connectTimeout: \"" +
                        row.text + "\"\n");
    if (row.want_ms < 0) {
      EXPECT_EQ(errors(r), "traffic.yaml:11:25: " + field + row.want_error + "\n");
    } else {
      ASSERT_TRUE(r.ok()) << errors(r);
      EXPECT_EQ(r.bundle.destination_rules[0].traffic_policy.connect_timeout,
                milliseconds(row.want_ms));
    }
  }
}

TEST(TrafficLoaderTest, DestinationRuleRefusals) {
  struct Row {
    std::string name;
    std::string spec;  // from line 6
    std::string want;
  };
  const std::string tp = "spec:\n  host: a.b\n  trafficPolicy:\n";  // lines 6-8
  const std::vector<Row> rows = {
      {"no spec", "", "traffic.yaml:1:1: DestinationRule reviews: spec.host is required\n"},
      {"no host", "spec:\n  exportTo: [\"*\"]\n",
       "traffic.yaml:1:1: DestinationRule reviews: spec.host is required\n"},
      {"empty host", "spec:\n  host: \"\"\n",
       "traffic.yaml:1:1: DestinationRule reviews: spec.host is required\n"},
      {"host not a string", "spec:\n  host: [a.b]\n",
       "traffic.yaml:7:9: spec.host must be a string\n"},
      {"bad host", "spec:\n  host: \"a b\"\n", "traffic.yaml:7:9: bad host \"a b\" in spec.host\n"},
      {"wildcard in the middle", "spec:\n  host: a.*.com\n",
       "traffic.yaml:7:9: bad host \"a.*.com\" in spec.host\n"},
      {"spec not a mapping", "spec: [1]\n", "traffic.yaml:6:7: spec must be a mapping\n"},
      {"unknown spec field", "spec:\n  host: a.b\n  hosts: [a.b]\n",
       "traffic.yaml:8:3: unknown field \"hosts\" in DestinationRule.spec\n"},
      {"unknown top-level field", "spec:\n  host: a.b\nextra: 1\n",
       "traffic.yaml:8:1: unknown field \"extra\" in DestinationRule\n"},
      {"duplicate field", "spec:\n  host: a.b\n  host: c.d\n",
       "traffic.yaml:8:3: duplicate field \"host\" in DestinationRule.spec\n"},
      {"bad exportTo", "spec:\n  host: a.b\n  exportTo: [\"~\"]\n",
       "traffic.yaml:8:14: bad entry \"~\" in spec.exportTo (\".\", \"*\" or a namespace name)\n"},
      {"exportTo duplicate through \".\"", "spec:\n  host: a.b\n  exportTo: [prod, \".\"]\n",
       "traffic.yaml:8:20: duplicate entry \".\" in spec.exportTo\n"},
      {"exportTo star with others", "spec:\n  host: a.b\n  exportTo: [\"*\", prod]\n",
       "traffic.yaml:8:14: spec.exportTo cannot have \"*\" and other entries together\n"},
      {"empty trafficPolicy", tp.substr(0, tp.size() - 1) + " {}\n",
       "traffic.yaml:8:18: spec.trafficPolicy must have at least one field\n"},
      {"trafficPolicy not a mapping", tp.substr(0, tp.size() - 1) + " 3\n",
       "traffic.yaml:8:18: spec.trafficPolicy must be a mapping\n"},
      {"unknown trafficPolicy field", tp + "    retries: {}\n",
       "traffic.yaml:9:5: unknown field \"retries\" in spec.trafficPolicy\n"},
      {"unknown load balancer", tp + "    loadBalancer: {simple: FASTEST}\n",
       "traffic.yaml:9:28: unknown load balancer \"FASTEST\" in "
       "spec.trafficPolicy.loadBalancer.simple (LEAST_REQUEST, ROUND_ROBIN, RANDOM, LEAST_CONN or "
       "UNSPECIFIED)\n"},
      {"load balancer names are case-sensitive", tp + "    loadBalancer: {simple: random}\n",
       "traffic.yaml:9:28: unknown load balancer \"random\" in "
       "spec.trafficPolicy.loadBalancer.simple (LEAST_REQUEST, ROUND_ROBIN, RANDOM, LEAST_CONN or "
       "UNSPECIFIED)\n"},
      {"passthrough", tp + "    loadBalancer: {simple: PASSTHROUGH}\n",
       "traffic.yaml:9:28: load balancer PASSTHROUGH in spec.trafficPolicy.loadBalancer.simple is "
       "not supported: the sidecar always balances over the service's endpoints (LEAST_REQUEST, "
       "ROUND_ROBIN, RANDOM, LEAST_CONN or UNSPECIFIED)\n"},
      {"simple and consistentHash",
       tp + "    loadBalancer:\n      simple: RANDOM\n      consistentHash: {useSourceIp: true}\n",
       "traffic.yaml:10:7: spec.trafficPolicy.loadBalancer: only one of simple and consistentHash "
       "can be set\n"},
      {"warmupDurationSecs and warmup",
       tp + "    loadBalancer:\n      warmupDurationSecs: 10s\n      warmup: {duration: 10s}\n",
       "traffic.yaml:10:7: spec.trafficPolicy.loadBalancer: only one of warmupDurationSecs and "
       "warmup can be set\n"},
      {"warmup without duration", tp + "    loadBalancer:\n      warmup: {}\n",
       "traffic.yaml:10:15: spec.trafficPolicy.loadBalancer.warmup.duration is required\n"},
      {"bad warmupDurationSecs", tp + "    loadBalancer: {warmupDurationSecs: 10}\n",
       "traffic.yaml:9:40: spec.trafficPolicy.loadBalancer.warmupDurationSecs must be a duration "
       "such as 10s, 1.5s or 100ms, got \"10\"\n"},
      {"empty connectionPool", tp + "    connectionPool: {}\n",
       "traffic.yaml:9:21: spec.trafficPolicy.connectionPool must have at least one field\n"},
      {"unknown connectionPool field", tp + "    connectionPool: {udp: {}}\n",
       "traffic.yaml:9:22: unknown field \"udp\" in spec.trafficPolicy.connectionPool\n"},
      {"tcp not a mapping", tp + "    connectionPool: {tcp: 5}\n",
       "traffic.yaml:9:27: spec.trafficPolicy.connectionPool.tcp must be a mapping\n"},
      {"maxConnections 0", tp + "    connectionPool: {tcp: {maxConnections: 0}}\n",
       "traffic.yaml:9:44: spec.trafficPolicy.connectionPool.tcp.maxConnections must be an "
       "integer in 1..2147483647, got \"0\"\n"},
      {"maxConnections too large", tp + "    connectionPool: {tcp: {maxConnections: 2147483648}}\n",
       "traffic.yaml:9:44: spec.trafficPolicy.connectionPool.tcp.maxConnections must be an "
       "integer in 1..2147483647, got \"2147483648\"\n"},
      {"maxConnections negative", tp + "    connectionPool: {tcp: {maxConnections: -1}}\n",
       "traffic.yaml:9:44: spec.trafficPolicy.connectionPool.tcp.maxConnections must be an "
       "integer in 1..2147483647, got \"-1\"\n"},
      {"maxConnections a list", tp + "    connectionPool: {tcp: {maxConnections: [1]}}\n",
       "traffic.yaml:9:44: spec.trafficPolicy.connectionPool.tcp.maxConnections must be an "
       "integer in 1..2147483647\n"},
      {"maxConnections null", tp + "    connectionPool: {tcp: {maxConnections: }}\n",
       "traffic.yaml:9:28: spec.trafficPolicy.connectionPool.tcp.maxConnections must be an "
       "integer in 1..2147483647\n"},
      {"connectTimeout 0", tp + "    connectionPool: {tcp: {connectTimeout: 0s}}\n",
       "traffic.yaml:9:44: spec.trafficPolicy.connectionPool.tcp.connectTimeout must be at "
       "least 1ms, got \"0s\"\n"},
      {"unknown tcp field", tp + "    connectionPool: {tcp: {maxConn: 1}}\n",
       "traffic.yaml:9:28: unknown field \"maxConn\" in spec.trafficPolicy.connectionPool.tcp\n"},
      {"http2MaxRequests 0", tp + "    connectionPool: {http: {http2MaxRequests: 0}}\n",
       "traffic.yaml:9:47: spec.trafficPolicy.connectionPool.http.http2MaxRequests must be an "
       "integer in 1..2147483647, got \"0\"\n"},
      {"http1MaxPendingRequests 0",
       tp + "    connectionPool: {http: {http1MaxPendingRequests: 0}}\n",
       "traffic.yaml:9:54: spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests must be "
       "an integer in 1..2147483647, got \"0\"\n"},
      {"maxRequestsPerConnection negative",
       tp + "    connectionPool: {http: {maxRequestsPerConnection: -2}}\n",
       "traffic.yaml:9:55: spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection must "
       "be an integer in 0..2147483647, got \"-2\"\n"},
      {"maxRetries not a number", tp + "    connectionPool: {http: {maxRetries: many}}\n",
       "traffic.yaml:9:41: spec.trafficPolicy.connectionPool.http.maxRetries must be an integer "
       "in 0..2147483647, got \"many\"\n"},
      {"unknown http field", tp + "    connectionPool: {http: {maxRequests: 1}}\n",
       "traffic.yaml:9:29: unknown field \"maxRequests\" in "
       "spec.trafficPolicy.connectionPool.http\n"},
      {"outlierDetection not a mapping", tp + "    outlierDetection: [1]\n",
       "traffic.yaml:9:23: spec.trafficPolicy.outlierDetection must be a mapping\n"},
      {"consecutive5xxErrors negative", tp + "    outlierDetection: {consecutive5xxErrors: -1}\n",
       "traffic.yaml:9:46: spec.trafficPolicy.outlierDetection.consecutive5xxErrors must be an "
       "integer in 0..4294967295, got \"-1\"\n"},
      {"consecutiveGatewayErrors too large",
       tp + "    outlierDetection: {consecutiveGatewayErrors: 4294967296}\n",
       "traffic.yaml:9:50: spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors must be "
       "an integer in 0..4294967295, got \"4294967296\"\n"},
      {"interval below 1ms", tp + "    outlierDetection: {interval: 100us}\n",
       "traffic.yaml:9:34: spec.trafficPolicy.outlierDetection.interval must be at least 1ms, got "
       "\"100us\"\n"},
      {"baseEjectionTime not a duration", tp + "    outlierDetection: {baseEjectionTime: 30}\n",
       "traffic.yaml:9:42: spec.trafficPolicy.outlierDetection.baseEjectionTime must be a "
       "duration such as 10s, 1.5s or 100ms, got \"30\"\n"},
      {"maxEjectionPercent over 100", tp + "    outlierDetection: {maxEjectionPercent: 101}\n",
       "traffic.yaml:9:44: spec.trafficPolicy.outlierDetection.maxEjectionPercent must be an "
       "integer in 0..100, got \"101\"\n"},
      {"unknown outlierDetection field", tp + "    outlierDetection: {consecutive5xx: 1}\n",
       "traffic.yaml:9:24: unknown field \"consecutive5xx\" in "
       "spec.trafficPolicy.outlierDetection\n"},
      {"portLevelSettings not a list", tp + "    portLevelSettings: {port: 80}\n",
       "traffic.yaml:9:24: spec.trafficPolicy.portLevelSettings must be a list\n"},
      {"port-level entry without port", tp + "    portLevelSettings:\n    - loadBalancer: {}\n",
       "traffic.yaml:10:7: spec.trafficPolicy.portLevelSettings[0].port is required\n"},
      {"port-level entry with only a port",
       tp + "    portLevelSettings:\n    - port: {number: 80}\n",
       "traffic.yaml:10:7: spec.trafficPolicy.portLevelSettings[0] must have at least one field "
       "besides port\n"},
      {"port without number", tp + "    portLevelSettings:\n    - port: {}\n      tls: {}\n",
       "traffic.yaml:10:13: spec.trafficPolicy.portLevelSettings[0].port.number is required\n"},
      {"port number 0",
       tp + "    portLevelSettings:\n    - port: {number: 0}\n      loadBalancer: {}\n",
       "traffic.yaml:10:22: spec.trafficPolicy.portLevelSettings[0].port.number must be an "
       "integer in 1..65535, got \"0\"\n"},
      {"port number too large",
       tp + "    portLevelSettings:\n    - port: {number: 65536}\n      loadBalancer: {}\n",
       "traffic.yaml:10:22: spec.trafficPolicy.portLevelSettings[0].port.number must be an "
       "integer in 1..65535, got \"65536\"\n"},
      {"port by name",
       tp + "    portLevelSettings:\n    - port: {name: http}\n      loadBalancer: {}\n",
       "traffic.yaml:10:14: unknown field \"name\" in "
       "spec.trafficPolicy.portLevelSettings[0].port\n"
       "traffic.yaml:10:13: spec.trafficPolicy.portLevelSettings[0].port.number is required\n"},
      {"port-level error keeps its path",
       tp + "    portLevelSettings:\n    - port: {number: 80}\n      connectionPool: {tcp: "
            "{maxConnections: 0}}\n",
       "traffic.yaml:11:46: spec.trafficPolicy.portLevelSettings[0].connectionPool.tcp"
       ".maxConnections must be an integer in 1..2147483647, got \"0\"\n"},
      {"unknown port-level field",
       tp + "    portLevelSettings:\n    - port: {number: 80}\n      tunnel: {}\n",
       "traffic.yaml:11:7: unknown field \"tunnel\" in spec.trafficPolicy.portLevelSettings[0]\n"
       "traffic.yaml:10:7: spec.trafficPolicy.portLevelSettings[0] must have at least one field "
       "besides port\n"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(errors(load(kDrHead + row.spec)), row.want);
  }
}

TEST(TrafficLoaderTest, DestinationRuleIgnoredFieldsWarn) {
  LoadResult r = load(kDrHead +
                      "spec:\n"                                           // 6
                      "  host: reviews\n"                                 // 7
                      "  workloadSelector: {matchLabels: {app: a}}\n"     // 8
                      "  subsets:\n"                                      // 9
                      "  - {name: v1, labels: {version: v1}}\n"           // 10
                      "  trafficPolicy:\n"                                // 11
                      "    tls: {mode: ISTIO_MUTUAL}\n"                   // 12
                      "    tunnel: {targetHost: a.b, targetPort: 80}\n"   // 13
                      "    proxyProtocol: {version: V2}\n"                // 14
                      "    loadBalancer:\n"                               // 15
                      "      consistentHash: {httpHeaderName: x-user}\n"  // 16
                      "      localityLbSetting: {enabled: true}\n"        // 17
                      "    connectionPool:\n"                             // 18
                      "      tcp:\n"                                      // 19
                      "        tcpKeepalive: {time: 7200s}\n"             // 20
                      "        maxConnectionDuration: 1h\n"               // 21
                      "        idleTimeout: 1h\n"                         // 22
                      "      http:\n"                                     // 23
                      "        idleTimeout: 5m\n"                         // 24
                      "        h2UpgradePolicy: UPGRADE\n"                // 25
                      "        useClientProtocol: true\n"                 // 26
                      "        maxConcurrentStreams: 100\n"               // 27
                      "    outlierDetection:\n"                           // 28
                      "      consecutiveErrors: 3\n"                      // 29
                      "      splitExternalLocalOriginErrors: true\n"      // 30
                      "      consecutiveLocalOriginFailures: 2\n"         // 31
                      "      minHealthPercent: 50\n"                      // 32
                      "    portLevelSettings:\n"                          // 33
                      "    - port: {number: 443}\n"                       // 34
                      "      tls: {mode: SIMPLE}\n");                     // 35
  ASSERT_TRUE(r.ok()) << errors(r);
  const std::string w = " is not applied by the sidecar; it is ignored\n";
  EXPECT_EQ(
      warnings(r),
      "traffic.yaml:8:3: warning: spec.workloadSelector is not applied by the sidecar; it "
      "is ignored and the rule applies to every workload\n"
      "traffic.yaml:9:3: warning: spec.subsets" +
          w + "traffic.yaml:12:5: warning: spec.trafficPolicy.tls" + w +
          "traffic.yaml:13:5: warning: spec.trafficPolicy.tunnel" + w +
          "traffic.yaml:14:5: warning: spec.trafficPolicy.proxyProtocol" + w +
          "traffic.yaml:16:7: warning: spec.trafficPolicy.loadBalancer.consistentHash" + w +
          "traffic.yaml:17:7: warning: spec.trafficPolicy.loadBalancer.localityLbSetting" + w +
          "traffic.yaml:20:9: warning: spec.trafficPolicy.connectionPool.tcp.tcpKeepalive" + w +
          "traffic.yaml:21:9: warning: spec.trafficPolicy.connectionPool.tcp"
          ".maxConnectionDuration" +
          w + "traffic.yaml:22:9: warning: spec.trafficPolicy.connectionPool.tcp.idleTimeout" + w +
          "traffic.yaml:24:9: warning: spec.trafficPolicy.connectionPool.http.idleTimeout" + w +
          "traffic.yaml:25:9: warning: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy" + w +
          "traffic.yaml:26:9: warning: spec.trafficPolicy.connectionPool.http"
          ".useClientProtocol" +
          w +
          "traffic.yaml:27:9: warning: spec.trafficPolicy.connectionPool.http"
          ".maxConcurrentStreams" +
          w + "traffic.yaml:29:7: warning: spec.trafficPolicy.outlierDetection.consecutiveErrors" +
          w +
          "traffic.yaml:30:7: warning: spec.trafficPolicy.outlierDetection"
          ".splitExternalLocalOriginErrors" +
          w +
          "traffic.yaml:31:7: warning: spec.trafficPolicy.outlierDetection"
          ".consecutiveLocalOriginFailures" +
          w + "traffic.yaml:32:7: warning: spec.trafficPolicy.outlierDetection.minHealthPercent" +
          w + "traffic.yaml:35:7: warning: spec.trafficPolicy.portLevelSettings[0].tls" + w);
  const DestinationRule& dr = r.bundle.destination_rules[0];
  EXPECT_EQ(dr.host, "reviews") << "kept as written; resolution qualifies short names";
  EXPECT_EQ(dr.traffic_policy.load_balancer, LoadBalancerPolicy::kUnset);
  ASSERT_EQ(dr.port_level_settings.size(), 1u);
  EXPECT_EQ(dr.port_level_settings[0].port, 443u);
}

TEST(TrafficLoaderTest, DuplicatePortLevelEntriesWarn) {
  LoadResult r = load(kDrHead +
                      "spec:\n  host: a.b\n  trafficPolicy:\n    portLevelSettings:\n"
                      "    - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n"
                      "    - {port: {number: 80}, loadBalancer: {simple: ROUND_ROBIN}}\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  EXPECT_EQ(warnings(r),
            "traffic.yaml:11:7: warning: port 80 appears more than once in "
            "spec.trafficPolicy.portLevelSettings; only its first entry applies\n");
  EXPECT_EQ(r.bundle.destination_rules[0].port_level_settings.size(), 2u);
}

// --- VirtualService -----------------------------------------------------------------------

TEST(TrafficLoaderTest, LoadsEveryAppliedVirtualServiceField) {
  LoadResult r = load(kVsHead +
                      "spec:\n"                                              // 6
                      "  hosts: [reviews, reviews.example.com, 10.0.0.1]\n"  // 7
                      "  gateways: [mesh]\n"                                 // 8
                      "  exportTo: [\"*\"]\n"                                // 9
                      "  http:\n"                                            // 10
                      "  - name: primary\n"                                  // 11
                      "    route:\n"                                         // 12
                      "    - destination:\n"                                 // 13
                      "        host: reviews\n"                              // 14
                      "        port: {number: 9080}\n"                       // 15
                      "      weight: 80\n"                                   // 16
                      "    - destination: {host: reviews.other.svc.cluster.local}\n"
                      "      weight: 20\n"            // 18
                      "    timeout: 2.5s\n"           // 19
                      "    retries:\n"                // 20
                      "      attempts: 3\n"           // 21
                      "      perTryTimeout: 500ms\n"  // 22
                      "      retryOn: 5xx,connect-failure,503,unavailable\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  EXPECT_EQ(warnings(r), "");
  ASSERT_EQ(r.bundle.virtual_services.size(), 1u);
  const VirtualService& vs = r.bundle.virtual_services[0];
  EXPECT_EQ(vs.api_version, "networking.istio.io/v1");
  EXPECT_EQ(vs.metadata.ns, "prod");
  EXPECT_EQ(vs.hosts, (std::vector<std::string>{"reviews", "reviews.example.com", "10.0.0.1"}));
  EXPECT_EQ(vs.gateways, std::vector<std::string>{"mesh"});
  EXPECT_EQ(vs.export_to, std::vector<std::string>{"*"});
  ASSERT_EQ(vs.http.size(), 1u);
  const HttpRoute& h = vs.http[0];
  EXPECT_EQ(h.name, "primary");
  EXPECT_FALSE(h.has_match);
  EXPECT_EQ(h.destination_hosts,
            (std::vector<std::string>{"reviews", "reviews.other.svc.cluster.local"}));
  EXPECT_EQ(h.timeout, milliseconds(2500));
  EXPECT_EQ(h.retry_attempts, 3u);
  EXPECT_EQ(h.per_try_timeout, milliseconds(500));
  EXPECT_EQ(h.retry_on, "5xx,connect-failure,503,unavailable");
  EXPECT_EQ(formatMark(h.mark), "traffic.yaml:11:5");
}

TEST(TrafficLoaderTest, ZeroTimeoutDisablesIt) {
  LoadResult r = load(kVsHead +
                      "spec:\n  hosts: [reviews]\n  http:\n"
                      "  - {route: [{destination: {host: reviews}}], timeout: 0s}\n"
                      "  - {route: [{destination: {host: reviews}}]}\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  const VirtualService& vs = r.bundle.virtual_services[0];
  EXPECT_EQ(vs.http[0].timeout, milliseconds(0)) << "\"0s\" is set, to zero";
  EXPECT_FALSE(vs.http[1].timeout.has_value());
  EXPECT_FALSE(vs.http[1].retry_attempts.has_value());
}

TEST(TrafficLoaderTest, RetriesWithoutAttemptsAreDisabled) {
  LoadResult r = load(kVsHead +
                      "spec:\n  hosts: [reviews]\n  http:\n"
                      "  - {route: [{destination: {host: reviews}}], retries: {}}\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  EXPECT_EQ(r.bundle.virtual_services[0].http[0].retry_attempts, 0u);
}

TEST(TrafficLoaderTest, VirtualServiceIgnoredFieldsWarn) {
  LoadResult r = load(kVsHead +
                      "spec:\n"                                               // 6
                      "  hosts: [reviews]\n"                                  // 7
                      "  gateways: [mesh, istio-system/ingress]\n"            // 8
                      "  tcp: [{route: [{destination: {host: reviews}}]}]\n"  // 9
                      "  tls: [{match: [{sniHosts: [reviews]}]}]\n"           // 10
                      "  http:\n"                                             // 11
                      "  - match: [{uri: {prefix: /v2}}]\n"                   // 12
                      "    rewrite: {uri: /}\n"                               // 13
                      "    fault: {abort: {httpStatus: 500}}\n"               // 14
                      "    mirror: {host: shadow}\n"                          // 15
                      "    mirrors: [{destination: {host: shadow}}]\n"        // 16
                      "    mirrorPercent: 5\n"                                // 17
                      "    mirrorPercentage: {value: 5}\n"                    // 18
                      "    corsPolicy: {allowOrigins: [{exact: a}]}\n"        // 19
                      "    headers: {request: {set: {x: y}}}\n"               // 20
                      "    route:\n"                                          // 21
                      "    - destination: {host: reviews, subset: v2}\n"      // 22
                      "      headers: {request: {set: {x: y}}}\n"             // 23
                      "    retries:\n"                                        // 24
                      "      attempts: 1\n"                                   // 25
                      "      retryRemoteLocalities: true\n"                   // 26
                      "      retryIgnorePreviousHosts: true\n"                // 27
                      "      backoff: 25ms\n"                                 // 28
                      "  - redirect: {uri: /elsewhere}\n"                     // 29
                      "  - directResponse: {status: 503}\n"                   // 30
                      "  - delegate: {name: other}\n");                       // 31
  ASSERT_TRUE(r.ok()) << errors(r);
  const std::string w = " is not applied by the sidecar; it is ignored\n";
  EXPECT_EQ(
      warnings(r),
      "traffic.yaml:9:3: warning: spec.tcp" + w + "traffic.yaml:10:3: warning: spec.tls" + w +
          "traffic.yaml:12:5: warning: spec.http[0].match: match conditions are not applied; "
          "this route is ignored by the sidecar\n"
          "traffic.yaml:13:5: warning: spec.http[0].rewrite" +
          w + "traffic.yaml:14:5: warning: spec.http[0].fault" + w +
          "traffic.yaml:15:5: warning: spec.http[0].mirror" + w +
          "traffic.yaml:16:5: warning: spec.http[0].mirrors" + w +
          "traffic.yaml:17:5: warning: spec.http[0].mirrorPercent" + w +
          "traffic.yaml:18:5: warning: spec.http[0].mirrorPercentage" + w +
          "traffic.yaml:19:5: warning: spec.http[0].corsPolicy" + w +
          "traffic.yaml:20:5: warning: spec.http[0].headers" + w +
          "traffic.yaml:22:36: warning: spec.http[0].route[0].destination.subset" + w +
          "traffic.yaml:23:7: warning: spec.http[0].route[0].headers" + w +
          "traffic.yaml:26:7: warning: spec.http[0].retries.retryRemoteLocalities" + w +
          "traffic.yaml:27:7: warning: spec.http[0].retries.retryIgnorePreviousHosts" + w +
          "traffic.yaml:28:7: warning: spec.http[0].retries.backoff" + w +
          "traffic.yaml:29:5: warning: spec.http[1].redirect" + w +
          "traffic.yaml:30:5: warning: spec.http[2].directResponse" + w +
          "traffic.yaml:31:5: warning: spec.http[3].delegate" + w +
          "traffic.yaml:8:3: warning: spec.gateways: gateways other than \"mesh\" are not "
          "applied by the sidecar; they are ignored\n"
          "traffic.yaml:30:5: warning: spec.http[2] is never used: spec.http[1] before it has "
          "no match conditions\n"
          "traffic.yaml:31:5: warning: spec.http[3] is never used: spec.http[1] before it has "
          "no match conditions\n");
  const VirtualService& vs = r.bundle.virtual_services[0];
  ASSERT_EQ(vs.http.size(), 4u);
  EXPECT_TRUE(vs.http[0].has_match);
  EXPECT_FALSE(vs.http[1].has_match);
  EXPECT_TRUE(vs.http[1].destination_hosts.empty());
}

TEST(TrafficLoaderTest, GatewayOnlyVirtualServiceWarns) {
  LoadResult r = load(kVsHead +
                      "spec:\n  hosts: [\"*\"]\n  gateways: [istio-system/ingress]\n  http:\n"
                      "  - route: [{destination: {host: reviews}}]\n");
  ASSERT_TRUE(r.ok()) << errors(r) << "\"*\" is fine for a VirtualService bound to gateways";
  EXPECT_EQ(warnings(r),
            "traffic.yaml:8:3: warning: spec.gateways does not include \"mesh\": this "
            "VirtualService is for gateways and the sidecar does not apply it\n");
  EXPECT_EQ(r.bundle.virtual_services[0].gateways,
            std::vector<std::string>{"istio-system/ingress"});
}

TEST(TrafficLoaderTest, VirtualServiceRefusals) {
  struct Row {
    std::string name;
    std::string spec;  // from line 6
    std::string want;
  };
  const std::string head = "spec:\n  hosts: [reviews]\n  http:\n";  // lines 6-8
  const std::string to = "route: [{destination: {host: reviews}}]";
  const std::vector<Row> rows = {
      {"no spec", "",
       "traffic.yaml:1:1: VirtualService reviews: spec.hosts must not be empty (delegate "
       "VirtualServices are not supported)\n"
       "traffic.yaml:1:1: VirtualService reviews: spec.http, spec.tcp or spec.tls must not be "
       "empty\n"},
      {"no routes", "spec:\n  hosts: [reviews]\n  http: []\n",
       "traffic.yaml:1:1: VirtualService reviews: spec.http, spec.tcp or spec.tls must not be "
       "empty\n"},
      {"hosts not a list", "spec:\n  hosts: reviews\n  http: [{" + to + "}]\n",
       "traffic.yaml:7:10: spec.hosts must be a list of strings\n"
       "traffic.yaml:1:1: VirtualService reviews: spec.hosts must not be empty (delegate "
       "VirtualServices are not supported)\n"},
      {"bad host", "spec:\n  hosts: [\"re views\"]\n  http: [{" + to + "}]\n",
       "traffic.yaml:7:11: bad host \"re views\" in spec.hosts\n"},
      {"star host for the mesh", "spec:\n  hosts: [\"*\"]\n  http: [{" + to + "}]\n",
       "traffic.yaml:7:11: wildcard host * is not allowed in spec.hosts of a VirtualService "
       "bound to the mesh\n"},
      {"duplicate hosts",
       "spec:\n  hosts: [a.example.com, A.example.com]\n  http: [{" + to + "}]\n",
       "traffic.yaml:7:26: duplicate hosts in spec.hosts: \"a.example.com\" and "
       "\"A.example.com\"\n"},
      {"hosts a wildcard covers",
       "spec:\n  hosts: [a.example.com, \"*.example.com\"]\n  http: [{" + to + "}]\n",
       "traffic.yaml:7:26: duplicate hosts in spec.hosts: \"a.example.com\" and "
       "\"*.example.com\"\n"},
      {"unknown spec field", "spec:\n  hosts: [reviews]\n  http: [{" + to + "}]\n  hostz: []\n",
       "traffic.yaml:9:3: unknown field \"hostz\" in VirtualService.spec\n"},
      {"http not a list", "spec:\n  hosts: [reviews]\n  http: {" + to + "}\n",
       "traffic.yaml:8:9: spec.http must be a list\n"
       "traffic.yaml:1:1: VirtualService reviews: spec.http, spec.tcp or spec.tls must not be "
       "empty\n"},
      {"route entry not a mapping", head + "  - 3\n",
       "traffic.yaml:9:5: spec.http[0] must be a mapping\n"},
      {"unknown route field", head + "  - {" + to + ", websocketUpgrade: true}\n",
       "traffic.yaml:9:47: unknown field \"websocketUpgrade\" in spec.http[0]\n"},
      {"no route", head + "  - {name: a}\n",
       "traffic.yaml:9:5: spec.http[0]: route, redirect or directResponse is required\n"},
      {"route and redirect", head + "  - {" + to + ", redirect: {uri: /}}\n",
       "traffic.yaml:9:5: spec.http[0] cannot contain both route and redirect\n"},
      {"route and directResponse", head + "  - {" + to + ", directResponse: {status: 503}}\n",
       "traffic.yaml:9:5: spec.http[0] cannot contain both route and directResponse\n"},
      {"redirect and directResponse",
       head + "  - {redirect: {uri: /}, directResponse: {status: 503}}\n",
       "traffic.yaml:9:5: spec.http[0] cannot contain both redirect and directResponse\n"},
      {"match not a list", head + "  - {" + to + ", match: {uri: {exact: /}}}\n",
       "traffic.yaml:9:54: spec.http[0].match must be a list\n"},
      {"route not a list", head + "  - {route: {destination: {host: reviews}}}\n",
       "traffic.yaml:9:13: spec.http[0].route must be a list\n"
       "traffic.yaml:9:5: spec.http[0]: route, redirect or directResponse is required\n"},
      {"route without destination", head + "  - {route: [{weight: 100}]}\n",
       "traffic.yaml:9:14: spec.http[0].route[0].destination is required\n"},
      {"destination without host", head + "  - {route: [{destination: {port: {number: 80}}}]}\n",
       "traffic.yaml:9:28: spec.http[0].route[0].destination.host is required\n"},
      {"destination host star", head + "  - {route: [{destination: {host: \"*\"}}]}\n",
       "traffic.yaml:9:35: bad host \"*\" in spec.http[0].route[0].destination.host\n"},
      {"destination host bad", head + "  - {route: [{destination: {host: \"a_b\"}}]}\n",
       "traffic.yaml:9:35: bad host \"a_b\" in spec.http[0].route[0].destination.host\n"},
      {"destination port 0",
       head + "  - {route: [{destination: {host: a.b, port: {number: 0}}}]}\n",
       "traffic.yaml:9:55: spec.http[0].route[0].destination.port.number must be an integer in "
       "1..65535, got \"0\"\n"},
      {"unknown destination field", head + "  - {route: [{destination: {host: a.b, name: x}}]}\n",
       "traffic.yaml:9:40: unknown field \"name\" in spec.http[0].route[0].destination\n"},
      {"negative weight", head + "  - {route: [{destination: {host: a.b}, weight: -1}]}\n",
       "traffic.yaml:9:49: spec.http[0].route[0].weight must be an integer in 0..2147483647, got "
       "\"-1\"\n"},
      {"total weight 0",
       head + "  - route:\n    - {destination: {host: a.b}}\n    - {destination: {host: c.d}}\n",
       "traffic.yaml:9:5: spec.http[0].route: the total weight of several destinations must not "
       "be 0\n"},
      {"bad timeout", head + "  - {" + to + ", timeout: 1x}\n",
       "traffic.yaml:9:56: spec.http[0].timeout must be a duration such as 10s, 1.5s or 100ms, got "
       "\"1x\"\n"},
      {"negative timeout", head + "  - {" + to + ", timeout: -1s}\n",
       "traffic.yaml:9:56: spec.http[0].timeout must be at least 1ms (or 0s for none), got "
       "\"-1s\"\n"},
      {"negative attempts", head + "  - {" + to + ", retries: {attempts: -1}}\n",
       "traffic.yaml:9:67: spec.http[0].retries.attempts must be an integer in 0..2147483647, got "
       "\"-1\"\n"},
      {"policy with attempts 0", head + "  - {" + to + ", retries: {attempts: 0, retryOn: 5xx}}\n",
       "traffic.yaml:9:56: spec.http[0].retries: perTryTimeout or retryOn is set while attempts is "
       "0, which disables retries\n"},
      {"policy without attempts", head + "  - {" + to + ", retries: {perTryTimeout: 1s}}\n",
       "traffic.yaml:9:56: spec.http[0].retries: perTryTimeout or retryOn is set while attempts is "
       "0, which disables retries\n"},
      {"perTryTimeout 0", head + "  - {" + to + ", retries: {attempts: 2, perTryTimeout: 0s}}\n",
       "traffic.yaml:9:85: spec.http[0].retries.perTryTimeout must be at least 1ms, got \"0s\"\n"},
      {"bad retryOn",
       head + "  - {" + to + ", retries: {attempts: 2, retryOn: \"5xx,sometimes,\"}}\n",
       "traffic.yaml:9:79: \"sometimes\" is not a valid retryOn policy in "
       "spec.http[0].retries.retryOn\n"
       "traffic.yaml:9:79: \"\" is not a valid retryOn policy in spec.http[0].retries.retryOn\n"},
      {"retryOn status out of range",
       head + "  - {" + to + ", retries: {attempts: 2, retryOn: \"600\"}}\n",
       "traffic.yaml:9:79: \"600\" is not a valid retryOn policy in "
       "spec.http[0].retries.retryOn\n"},
      {"unknown retries field", head + "  - {" + to + ", retries: {attempts: 2, tries: 3}}\n",
       "traffic.yaml:9:70: unknown field \"tries\" in spec.http[0].retries\n"},
      {"bad exportTo", "spec:\n  hosts: [reviews]\n  http: [{" + to + "}]\n  exportTo: [Prod]\n",
       "traffic.yaml:9:14: bad entry \"Prod\" in spec.exportTo (\".\", \"*\" or a namespace "
       "name)\n"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(errors(load(kVsHead + row.spec)), row.want);
  }
}

// --- Documents ----------------------------------------------------------------------------

TEST(TrafficLoaderTest, OtherApiVersionsListsAndMultiDocumentFiles) {
  LoadResult r = load(
      "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: a}\n"
      "spec: {host: a.b}\n"
      "---\n"
      "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: a}\n"
      "spec: {hosts: [a.b], http: [{route: [{destination: {host: a.b}}]}]}\n"
      "---\n"
      "apiVersion: v1\nkind: List\nitems:\n"
      "- apiVersion: networking.istio.io/v1alpha3\n  kind: DestinationRule\n"
      "  metadata: {name: c, namespace: other}\n  spec: {host: c.d}\n"
      "- apiVersion: networking.istio.io/v1beta1\n  kind: VirtualService\n"
      "  metadata: {name: c}\n  spec: {hosts: [c.d], tcp: [{route: [{destination: {host: "
      "c.d}}]}]}\n"
      "---\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  ASSERT_EQ(r.bundle.destination_rules.size(), 2u);
  ASSERT_EQ(r.bundle.virtual_services.size(), 2u);
  EXPECT_EQ(r.bundle.destination_rules[0].api_version, "networking.istio.io/v1beta1");
  EXPECT_EQ(r.bundle.destination_rules[0].metadata.ns, "default");
  EXPECT_EQ(r.bundle.destination_rules[1].api_version, "networking.istio.io/v1alpha3");
  EXPECT_EQ(r.bundle.destination_rules[1].host, "c.d");
  EXPECT_EQ(r.bundle.virtual_services[0].api_version, "networking.istio.io/v1alpha3");
  EXPECT_EQ(r.bundle.virtual_services[1].hosts, std::vector<std::string>{"c.d"});
  EXPECT_TRUE(r.bundle.virtual_services[1].http.empty()) << "tcp routes are not read";
}

TEST(TrafficLoaderTest, ErrorsInOneDocumentDoNotHideTheNext) {
  LoadResult r = load(kDrHead +
                      "spec:\n  host: a.b\n  trafficPolicy: {connectionPool: {tcp: "
                      "{maxConnections: 0}}}\n"
                      "---\n" +
                      kVsHead +
                      "spec:\n  hosts: [a.b]\n  http: [{route: [{destination: {host: "
                      "a.b}}], timeout: soon}]\n");
  EXPECT_EQ(errors(r),
            "traffic.yaml:8:58: spec.trafficPolicy.connectionPool.tcp.maxConnections must be an "
            "integer in 1..2147483647, got \"0\"\n"
            "traffic.yaml:17:57: spec.http[0].timeout must be a duration such as 10s, 1.5s or "
            "100ms, got \"soon\"\n");
  EXPECT_EQ(r.bundle.destination_rules.size(), 1u);
  EXPECT_EQ(r.bundle.virtual_services.size(), 1u);
}

TEST(TrafficLoaderTest, ApiVersionsAndMetadata) {
  EXPECT_EQ(errors(load("apiVersion: networking.istio.io/v2\nkind: DestinationRule\n")),
            "traffic.yaml:1:13: unsupported apiVersion \"networking.istio.io/v2\" for "
            "DestinationRule (use networking.istio.io/v1, v1beta1 or v1alpha3)\n");
  EXPECT_EQ(errors(load("apiVersion: security.istio.io/v1\nkind: VirtualService\n")),
            "traffic.yaml:1:13: unsupported apiVersion \"security.istio.io/v1\" for "
            "VirtualService (use networking.istio.io/v1, v1beta1 or v1alpha3)\n");
  EXPECT_EQ(errors(load("apiVersion: networking.istio.io/v1\nkind: Gateway\n")),
            "traffic.yaml:2:7: unsupported kind \"Gateway\" (networking.istio.io/v1): expected "
            "AuthorizationPolicy or PeerAuthentication (security.istio.io), ServiceEntry, "
            "WorkloadEntry, DestinationRule or VirtualService (networking.istio.io)\n");
  EXPECT_EQ(errors(load("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                        "spec: {host: a.b}\n")),
            "traffic.yaml:1:1: DestinationRule has no metadata\n");
  EXPECT_EQ(errors(load("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                        "metadata: {namespace: a}\n"
                        "spec: {hosts: [a.b], http: [{route: [{destination: {host: a.b}}]}]}\n")),
            "traffic.yaml:3:11: metadata.name is required\n");
}

}  // namespace
}  // namespace palisade::policy
