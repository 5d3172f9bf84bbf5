#include "policy/traffic_policy.h"

#include "policy/string_pattern.h"

#include "policy/ip_address.h"

namespace palisade::policy {
namespace {

std::string_view withoutTrailingDot(std::string_view host) {
  if (host.size() > 1 && host.back() == '.') {
    host.remove_suffix(1);
  }
  return host;
}

// How well a rule's host pattern fits the requested host; compared by `better`.
struct Fit {
  bool exact = false;
  std::size_t pattern_length = 0;  // among wildcards, the longer the more specific
  const std::string* created = nullptr;
  std::size_t order = 0;
};

// Whether `a` beats `b`.
bool better(const Fit& a, const Fit& b) {
  if (a.exact != b.exact) {
    return a.exact;
  }
  if (a.pattern_length != b.pattern_length) {
    return a.pattern_length > b.pattern_length;
  }
  const bool a_dated = !a.created->empty();
  const bool b_dated = !b.created->empty();
  if (a_dated != b_dated) {
    return a_dated;
  }
  if (a_dated && *a.created != *b.created) {
    return *a.created < *b.created;  // RFC 3339 in UTC ("...Z") orders as text
  }
  return a.order < b.order;
}

// The fit of one pattern written in namespace `ns`, if it covers `host`.
std::optional<Fit> fit(std::string_view pattern, const ObjectMeta& meta, std::string_view host,
                       std::size_t order) {
  const std::string qualified = qualifyHost(pattern, meta.ns);
  if (!hostMatches(qualified, host)) {
    return std::nullopt;
  }
  const std::string_view q = withoutTrailingDot(qualified);
  return Fit{q.empty() || q.front() != '*', q.size(), &meta.creation_timestamp, order};
}

// Field by field: what `over` sets replaces what `base` has.
void overlay(TrafficPolicy& base, const TrafficPolicy& over) {
  if (over.load_balancer != LoadBalancerPolicy::kUnset) {
    base.load_balancer = over.load_balancer;
  }
  auto take = [](auto& to, const auto& from) {
    if (from) {
      to = from;
    }
  };
  take(base.warmup, over.warmup);
  take(base.max_connections, over.max_connections);
  take(base.connect_timeout, over.connect_timeout);
  take(base.http2_max_requests, over.http2_max_requests);
  take(base.http1_max_pending_requests, over.http1_max_pending_requests);
  take(base.max_requests_per_connection, over.max_requests_per_connection);
  take(base.max_retries, over.max_retries);
  take(base.outlier_detection, over.outlier_detection);  // as a whole
}

bool appliesToMesh(const VirtualService& vs) {
  if (vs.gateways.empty()) {
    return true;
  }
  for (const std::string& g : vs.gateways) {
    if (g == "mesh") {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string qualifyHost(std::string_view host, std::string_view ns) {
  if (host == "*" || host.find('.') != std::string_view::npos || host.empty() ||
      IpAddress::parse(host).ok()) {
    return std::string(host);
  }
  std::string out(host);
  out += '.';
  out += ns.empty() ? std::string_view("default") : ns;
  out += ".svc.";
  out += kClusterDomain;
  return out;
}

bool hostMatches(std::string_view pattern, std::string_view host) {
  pattern = withoutTrailingDot(pattern);
  host = withoutTrailingDot(host);
  if (pattern == "*") {
    return true;
  }
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() &&
           equalsIgnoreCase(host.substr(host.size() - suffix.size()), suffix);
  }
  return equalsIgnoreCase(pattern, host);
}

ResolvedTraffic resolveTraffic(const PolicyBundle& bundle, std::string_view host,
                               std::uint32_t port) {
  ResolvedTraffic out;

  std::optional<Fit> best;
  for (std::size_t i = 0; i < bundle.destination_rules.size(); ++i) {
    const DestinationRule& dr = bundle.destination_rules[i];
    std::optional<Fit> f = fit(dr.host, dr.metadata, host, i);
    if (f && (!best || better(*f, *best))) {
      best = f;
      out.destination_rule = &dr;
    }
  }
  if (out.destination_rule != nullptr) {
    out.policy = out.destination_rule->traffic_policy;
    for (const PortTrafficPolicy& p : out.destination_rule->port_level_settings) {
      if (p.port == port) {
        overlay(out.policy, p.policy);
        break;  // the first entry for a port applies, as in Istio
      }
    }
  }

  best.reset();
  for (std::size_t i = 0; i < bundle.virtual_services.size(); ++i) {
    const VirtualService& vs = bundle.virtual_services[i];
    if (!appliesToMesh(vs)) {
      continue;
    }
    for (const std::string& h : vs.hosts) {
      std::optional<Fit> f = fit(h, vs.metadata, host, i);
      if (f && (!best || better(*f, *best))) {
        best = f;
        out.virtual_service = &vs;
      }
    }
  }
  if (out.virtual_service != nullptr) {
    const VirtualService& vs = *out.virtual_service;
    for (const HttpRoute& route : vs.http) {
      if (route.has_match) {
        continue;
      }
      bool targets_host = route.destination_hosts.empty();
      for (const std::string& d : route.destination_hosts) {
        targets_host = targets_host || hostMatches(qualifyHost(d, vs.metadata.ns), host);
      }
      if (targets_host) {
        out.http_route = route;
      }
      break;  // routes after the first without conditions are never used
    }
  }
  return out;
}

}  // namespace palisade::policy
