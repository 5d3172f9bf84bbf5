#pragma once

// Traffic resolution: the DestinationRule settings and the VirtualService route the outbound
// sidecar applies to a request for one host and port, chosen by Istio's host rules. Pure
// functions over a loaded bundle (policy/traffic_loader.h). Thread: any.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/model.h"

namespace palisade::policy {

// The cluster DNS domain that short host names are completed with.
inline constexpr std::string_view kClusterDomain = "cluster.local";

// A host as Istio reads it in a rule of namespace `ns` (ResolveShortnameToFQDN): a short name
// (no dot) "reviews" means "reviews.<ns>.svc.cluster.local", an empty `ns` meaning "default";
// "*", IP addresses and names with a dot stay as written.
std::string qualifyHost(std::string_view host, std::string_view ns);

// Whether the host pattern of a rule ("*", "*.suffix" or a name) covers `host`: "*" covers
// every host, "*.example.com" every host that ends in ".example.com" (any number of labels,
// not "example.com" itself), a name only itself. ASCII case-insensitive; a trailing dot on
// either side is ignored.
bool hostMatches(std::string_view pattern, std::string_view host);

struct ResolvedTraffic {
  // The chosen rule's spec.trafficPolicy, with the set fields of its first portLevelSettings
  // entry for `port` overriding it field by field (outlierDetection as a whole when the entry
  // sets it). Default-constructed (nothing set) when no rule applies.
  TrafficPolicy policy;
  const DestinationRule* destination_rule = nullptr;
  // The route of `virtual_service` the sidecar applies, if any (see resolveTraffic).
  std::optional<HttpRoute> http_route;
  const VirtualService* virtual_service = nullptr;
};

// The traffic settings for a request to `host` (a fully qualified name such as
// "reviews.prod.svc.cluster.local", or an IP address; no port) on `port`.
//
// DestinationRule: among the rules whose qualified spec.host covers `host`, an exact name
// wins over a wildcard, and among wildcards the longest (most specific) pattern wins; ties go
// to the oldest metadata.creationTimestamp (RFC 3339 as Kubernetes writes it; a rule without
// one counts as newer than any with one), then to the first loaded (files by path, documents
// in order).
//
// VirtualService: chosen the same way over each one's qualified spec.hosts (the best of its
// hosts counts), skipping VirtualServices whose spec.gateways is non-empty and lacks "mesh".
// Its route is its first spec.http entry without match conditions — Istio tries routes in
// order and such an entry takes every request, so later ones are never used; entries with
// conditions are never chosen, as the sidecar does not evaluate them. That entry is the route
// when it has no route destinations (redirect, directResponse, delegate) or when one of its
// route[].destination.host values, qualified with the VirtualService's namespace, covers
// `host`; otherwise it sends traffic elsewhere, and `http_route` is empty while
// `virtual_service` still names the VirtualService.
//
// Not considered: exportTo, the DestinationRule's workloadSelector and subsets, and the
// client's namespace (Istio also prefers rules of the client's namespace).
//
// The pointers (and nothing else) refer into `bundle`, which must outlive the result.
ResolvedTraffic resolveTraffic(const PolicyBundle& bundle, std::string_view host,
                               std::uint32_t port);

}  // namespace palisade::policy
