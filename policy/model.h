#pragma once

// The policy model: plain structs for Istio's AuthorizationPolicy and PeerAuthentication
// (security.istio.io/v1 and v1beta1) as loaded from YAML, each value with the place it came
// from so that errors and warnings can say file:line:col. No behaviour lives here; the
// loader fills these, the compiler turns them into matchers. Thread: any; plain values.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace palisade::policy {

// Where a YAML node stands. line and column are 1-based; 0 means unknown.
struct Mark {
  std::string file;
  int line = 0;
  int column = 0;
};

// "file:line:col" (or just "file" when the place is unknown).
std::string formatMark(const Mark& mark);

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  Mark mark;
  std::string message;
};

// "file:line:col: message", the form every error and warning takes.
std::string formatDiagnostic(const Diagnostic& d);

struct Value {
  std::string text;
  Mark mark;
};
using Values = std::vector<Value>;

// Values and their negation for one attribute; both empty means "not set".
struct Field {
  Values values;
  Values not_values;
  Mark mark;  // the key that introduced the field
  bool empty() const { return values.empty() && not_values.empty(); }
};

struct Source {
  Field principals;
  Field request_principals;  // refused at load: needs JWT
  Field namespaces;
  Field service_accounts;
  Field ip_blocks;
  Field remote_ip_blocks;
  Mark mark;
};

struct Operation {
  Field hosts;
  Field ports;
  Field methods;
  Field paths;
  Mark mark;
};

struct Condition {
  Value key;
  Values values;
  Values not_values;
  Mark mark;
};

struct Rule {
  std::vector<Source> from;
  std::vector<Operation> to;
  std::vector<Condition> when;
  Mark mark;
};

enum class Action { kAllow, kDeny, kAudit };

const char* actionName(Action action);

struct WorkloadSelector {
  std::map<std::string, std::string> match_labels;
  Mark mark;
};

struct ObjectMeta {
  std::string name;
  std::string ns;                  // metadata.namespace; empty means "default"
  std::string creation_timestamp;  // RFC 3339, when present; used to order conflicts
  std::map<std::string, std::string> annotations;
  Mark mark;
};

struct AuthorizationPolicy {
  std::string api_version;
  ObjectMeta metadata;
  std::optional<WorkloadSelector> selector;
  Action action = Action::kAllow;
  Mark action_mark;
  bool has_rules = false;  // `rules:` holds at least one rule
  std::vector<Rule> rules;
  bool dry_run = false;  // istio.io/dry-run: "true"
  Mark mark;             // the document
};

enum class MtlsMode { kUnset, kDisable, kPermissive, kStrict };

const char* mtlsModeName(MtlsMode mode);

struct PeerAuthentication {
  std::string api_version;
  ObjectMeta metadata;
  std::optional<WorkloadSelector> selector;
  MtlsMode mode = MtlsMode::kUnset;
  std::map<std::uint32_t, MtlsMode> port_level_mtls;
  Mark mark;
};

// Services and endpoints (networking.istio.io ServiceEntry and WorkloadEntry).

enum class ServiceLocation { kMeshExternal, kMeshInternal };
enum class Resolution { kNone, kStatic, kDns, kDnsRoundRobin };

struct ServicePort {
  std::uint32_t number = 0;
  std::string protocol;  // upper case: HTTP, HTTP2, GRPC, TCP, TLS, ...; "" when not given
  std::string name;
  std::uint32_t target_port = 0;  // 0: same as number
  Mark mark;
};

// WorkloadEntry's spec, also the form of ServiceEntry.spec.endpoints[i].
struct WorkloadEndpoint {
  std::string address;
  std::map<std::string, std::uint32_t> ports;  // service port name -> endpoint port
  std::map<std::string, std::string> labels;
  std::string network;
  std::string locality;
  std::uint32_t weight = 0;
  std::string service_account;
  Mark mark;
};

struct ServiceEntry {
  std::string api_version;
  ObjectMeta metadata;
  std::vector<std::string> hosts;
  std::vector<std::string> addresses;  // IPs or CIDRs
  std::vector<ServicePort> ports;
  ServiceLocation location = ServiceLocation::kMeshExternal;
  Resolution resolution = Resolution::kNone;
  std::vector<WorkloadEndpoint> endpoints;
  std::optional<std::map<std::string, std::string>> workload_selector;
  // The SPIFFE IDs allowed to serve the service (secure naming).
  std::vector<std::string> subject_alt_names;
  std::vector<std::string> export_to;
  Mark mark;
};

struct WorkloadEntry {
  std::string api_version;
  ObjectMeta metadata;
  WorkloadEndpoint spec;
  Mark mark;
};

// Traffic settings (networking.istio.io DestinationRule and VirtualService): what the
// outbound sidecar applies per service. Only the fields below are read; policy/
// traffic_loader.h says which others are accepted and ignored with a warning.

enum class LoadBalancerPolicy { kUnset, kLeastRequest, kRoundRobin, kRandom };

// trafficPolicy.outlierDetection; unset fields take the defaults of the consumer.
struct OutlierDetection {
  std::optional<std::uint32_t> consecutive_5xx_errors;      // consecutive5xxErrors
  std::optional<std::uint32_t> consecutive_gateway_errors;  // consecutiveGatewayErrors
  std::optional<std::chrono::milliseconds> interval;
  std::optional<std::chrono::milliseconds> base_ejection_time;  // baseEjectionTime
  std::optional<std::uint32_t> max_ejection_percent;            // maxEjectionPercent
  Mark mark;
};

struct TrafficPolicy {
  LoadBalancerPolicy load_balancer = LoadBalancerPolicy::kUnset;  // loadBalancer.simple
  std::optional<std::chrono::milliseconds> warmup;                // loadBalancer.warmupDurationSecs
  std::optional<std::uint32_t> max_connections;              // connectionPool.tcp.maxConnections
  std::optional<std::chrono::milliseconds> connect_timeout;  // connectionPool.tcp.connectTimeout
  std::optional<std::uint32_t> http2_max_requests;           // connectionPool.http.http2MaxRequests
  std::optional<std::uint32_t> http1_max_pending_requests;   // ...http.http1MaxPendingRequests
  std::optional<std::uint32_t> max_requests_per_connection;  // ...http.maxRequestsPerConnection
  std::optional<std::uint32_t> max_retries;                  // connectionPool.http.maxRetries
  std::optional<OutlierDetection> outlier_detection;
  Mark mark;
};

// trafficPolicy.portLevelSettings[i]: overrides for one port.
struct PortTrafficPolicy {
  std::uint32_t port = 0;  // port.number
  TrafficPolicy policy;
  Mark mark;
};

struct DestinationRule {
  std::string api_version;
  ObjectMeta metadata;
  std::string host;
  TrafficPolicy traffic_policy;
  std::vector<PortTrafficPolicy> port_level_settings;
  std::vector<std::string> export_to;
  Mark mark;
};

// One entry of VirtualService spec.http.
struct HttpRoute {
  std::string name;
  bool has_match = false;                      // match conditions given (not applied: warned)
  std::vector<std::string> destination_hosts;  // route[].destination.host
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::uint32_t> retry_attempts;               // retries.attempts
  std::optional<std::chrono::milliseconds> per_try_timeout;  // retries.perTryTimeout
  std::string retry_on;                                      // retries.retryOn
  Mark mark;
};

struct VirtualService {
  std::string api_version;
  ObjectMeta metadata;
  std::vector<std::string> hosts;
  std::vector<std::string> gateways;  // spec.gateways; empty means "mesh" (the sidecars)
  std::vector<HttpRoute> http;
  std::vector<std::string> export_to;
  Mark mark;
};

// Everything one load produced: the documents of every file, in a stable order
// (files sorted by path, documents in file order).
struct PolicyBundle {
  std::vector<AuthorizationPolicy> authorization_policies;
  std::vector<PeerAuthentication> peer_authentications;
  std::vector<ServiceEntry> service_entries;
  std::vector<WorkloadEntry> workload_entries;
  std::vector<DestinationRule> destination_rules;
  std::vector<VirtualService> virtual_services;
};

}  // namespace palisade::policy
