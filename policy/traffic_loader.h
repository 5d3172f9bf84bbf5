#pragma once

// Reading DestinationRule and VirtualService manifests (networking.istio.io v1, v1beta1,
// v1alpha3) with the checks of Istio's validation (ValidateDestinationRule,
// ValidateVirtualService), into the model. Called by the manifest loader for those kinds.
// Thread: the reader's.
//
// What the sidecar applies is read into the model (policy/model.h): for a DestinationRule,
// spec.host, spec.exportTo and, in spec.trafficPolicy and each of its portLevelSettings,
// loadBalancer.simple and .warmupDurationSecs (or .warmup.duration), connectionPool.tcp
// .maxConnections and .connectTimeout, connectionPool.http .http1MaxPendingRequests,
// .http2MaxRequests, .maxRequestsPerConnection and .maxRetries, and outlierDetection
// .consecutive5xxErrors, .consecutiveGatewayErrors, .interval, .baseEjectionTime and
// .maxEjectionPercent. For a VirtualService, spec.hosts, spec.gateways, spec.exportTo and in
// each spec.http route: name, match (only whether it is given), route[].destination.host,
// timeout ("0s" disables it) and retries.attempts, .perTryTimeout and .retryOn.
//
// Fields of Istio's API that the sidecar does not apply are accepted with a warning that
// says so: subsets, workloadSelector, trafficPolicy.tls, .tunnel, .proxyProtocol,
// loadBalancer.consistentHash and .localityLbSetting, warmup.minimumPercent and .aggression,
// tcp.tcpKeepalive, .maxConnectionDuration and .idleTimeout, http.idleTimeout,
// .h2UpgradePolicy, .useClientProtocol and .maxConcurrentStreams, outlierDetection
// .consecutiveErrors, .splitExternalLocalOriginErrors, .consecutiveLocalOriginFailures and
// .minHealthPercent; VirtualService tcp and tls routes, gateways other than "mesh" (a
// VirtualService without "mesh" in its gateways is not applied at all), match conditions
// (a route with any is never chosen), route[].destination.subset, route[].headers,
// redirect, directResponse, delegate, rewrite, fault, mirror, mirrors, mirrorPercent,
// mirrorPercentage, corsPolicy, headers, and retries.retryRemoteLocalities,
// .retryIgnorePreviousHosts and .backoff. route[].weight and route[].destination.port are
// checked but not kept (the sidecar does not split or redirect traffic).
// Every other field is an error, as are values of the wrong type or out of range.

#include <string>

#include "policy/yaml_reader.h"

namespace palisade::policy {

void readDestinationRule(YamlReader& reader, const YAML::Node& doc, const std::string& api);
void readVirtualService(YamlReader& reader, const YAML::Node& doc, const std::string& api);

}  // namespace palisade::policy
