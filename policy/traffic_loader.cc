#include "policy/traffic_loader.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <set>

#include "policy/dns_name.h"
#include "policy/ip_address.h"
#include "policy/traffic_policy.h"

namespace palisade::policy {
namespace {

using std::chrono::milliseconds;

// Istio's int32 fields (maxConnections, http2MaxRequests, ...) and UInt32Value wrappers.
constexpr std::uint64_t kInt32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::uint64_t kUint32Max = std::numeric_limits<std::uint32_t>::max();

void notApplied(YamlReader& r, const Mark& at, const std::string& path) {
  r.warning(at, path + " is not applied by the sidecar; it is ignored");
}

// An integer in min..max from a scalar (quoted or not, as protobuf's JSON mapping takes it).
std::optional<std::uint32_t> integer(YamlReader& r, const YAML::Node& v, const Mark& at,
                                     const std::string& where, std::uint64_t min,
                                     std::uint64_t max) {
  const std::string rule =
      where + " must be an integer in " + std::to_string(min) + ".." + std::to_string(max);
  if (!v.IsScalar()) {
    r.error(v.IsNull() ? at : r.mark(v), rule);
    return std::nullopt;
  }
  const std::string& text = v.Scalar();
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n < min || n > max) {
    r.error(r.mark(v), rule + ", got \"" + text + "\"");
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(n);
}

// Go's time.ParseDuration, which is how Istio reads its Duration fields ("10s", "1.5s",
// "100ms", "1h30m", "0"): an optional sign, then one or more decimal numbers each with a
// unit (ns, us, µs, ms, s, m, h). False on bad syntax or beyond Go's ±292 years.
bool parseGoDuration(std::string_view s, long long& nanos) {
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") {
    nanos = 0;
    return true;
  }
  if (s.empty()) {
    return false;
  }
  using Wide = unsigned __int128;
  const Wide limit = static_cast<Wide>(std::numeric_limits<long long>::max());
  auto digit = [&](std::size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; };
  Wide total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    Wide whole = 0;
    bool any_digit = false;
    for (; digit(i); ++i) {
      whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
      any_digit = true;
      if (whole > limit) {
        return false;
      }
    }
    Wide frac = 0;
    Wide scale = 1;
    if (i < s.size() && s[i] == '.') {
      for (++i; digit(i); ++i) {
        any_digit = true;
        if (scale < static_cast<Wide>(1'000'000'000'000'000'000ULL)) {  // beyond: below 1ns
          frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
          scale *= 10;
        }
      }
    }
    if (!any_digit) {
      return false;
    }
    std::size_t unit_end = i;
    while (unit_end < s.size() && s[unit_end] != '.' && !digit(unit_end)) {
      ++unit_end;
    }
    const std::string_view unit = s.substr(i, unit_end - i);
    Wide per = 0;
    if (unit == "ns") {
      per = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {  // µs, μs
      per = 1'000;
    } else if (unit == "ms") {
      per = 1'000'000;
    } else if (unit == "s") {
      per = 1'000'000'000;
    } else if (unit == "m") {
      per = 60'000'000'000;
    } else if (unit == "h") {
      per = 3'600'000'000'000;
    } else {
      return false;  // a missing or unknown unit
    }
    total += whole * per + frac * per / scale;
    if (total > limit) {
      return false;
    }
    s.remove_prefix(unit_end);
  }
  nanos = negative ? -static_cast<long long>(total) : static_cast<long long>(total);
  return true;
}

// A Duration field. Istio's ValidateDuration: "duration must be greater than 1ms" and "only
// durations to ms precision are supported". `zero_disables`: "0s" is also taken (a route
// timeout of 0s turns the timeout off) and read as 0ms.
std::optional<milliseconds> duration(YamlReader& r, const YAML::Node& v, const Mark& at,
                                     const std::string& where, bool zero_disables = false) {
  auto text = r.scalar(v, at, where);
  if (!text) {
    return std::nullopt;
  }
  long long nanos = 0;
  if (!parseGoDuration(*text, nanos)) {
    r.error(r.mark(v),
            where + " must be a duration such as 10s, 1.5s or 100ms, got \"" + *text + "\"");
    return std::nullopt;
  }
  if (zero_disables && nanos == 0) {
    return milliseconds(0);
  }
  if (nanos < 1'000'000) {
    r.error(r.mark(v), where + " must be at least 1ms" +
                           (zero_disables ? " (or 0s for none)" : "") + ", got \"" + *text + "\"");
    return std::nullopt;
  }
  if (nanos % 1'000'000 != 0) {
    r.error(r.mark(v), where + " must be a whole number of milliseconds, got \"" + *text + "\"");
    return std::nullopt;
  }
  return milliseconds(nanos / 1'000'000);
}

// A Kubernetes namespace name (a DNS-1123 label).
bool isNamespaceName(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

// Istio's validateExportTo for DestinationRule and VirtualService: "." (this namespace), "*"
// (every namespace) or namespace names, without duplicates, and "*" alone.
std::vector<std::string> exportTo(YamlReader& r, const Values& values, const std::string& ns) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const Value& v : values) {
    if (v.text != "." && v.text != "*" && !isNamespaceName(v.text)) {
      r.error(v.mark,
              "bad entry \"" + v.text + "\" in spec.exportTo (\".\", \"*\" or a namespace name)");
      continue;
    }
    if (!seen.insert(v.text == "." ? ns : v.text).second) {
      r.error(v.mark, "duplicate entry \"" + v.text + "\" in spec.exportTo");
      continue;
    }
    out.push_back(v.text);
  }
  if (seen.count("*") && values.size() > 1) {
    r.error(values.front().mark, "spec.exportTo cannot have \"*\" and other entries together");
  }
  return out;
}

// --- DestinationRule ------------------------------------------------------------------------

constexpr const char* kLoadBalancers =
    "(LEAST_REQUEST, ROUND_ROBIN, RANDOM, LEAST_CONN or UNSPECIFIED)";

void loadBalancer(YamlReader& r, const YAML::Node& node, const Mark& at, const std::string& where,
                  TrafficPolicy& p) {
  if (!r.expectMap(node, at, where)) {
    return;
  }
  bool simple = false;
  bool consistent_hash = false;
  bool warmup_secs = false;
  bool warmup = false;
  r.forEachField(
      node, where,
      {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"},
      [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
        const std::string fw = where + "." + key;
        if (key == "simple") {
          simple = true;
          auto text = r.scalar(v, key_at, fw);
          if (!text) {
            return;
          }
          // LEAST_CONN is Istio's deprecated name of LEAST_REQUEST.
          if (*text == "LEAST_REQUEST" || *text == "LEAST_CONN") {
            p.load_balancer = LoadBalancerPolicy::kLeastRequest;
          } else if (*text == "ROUND_ROBIN") {
            p.load_balancer = LoadBalancerPolicy::kRoundRobin;
          } else if (*text == "RANDOM") {
            p.load_balancer = LoadBalancerPolicy::kRandom;
          } else if (*text == "UNSPECIFIED") {
            p.load_balancer = LoadBalancerPolicy::kUnset;
          } else if (*text == "PASSTHROUGH") {
            r.error(r.mark(v), "load balancer PASSTHROUGH in " + fw +
                                   " is not supported: the sidecar always balances over the "
                                   "service's endpoints " +
                                   kLoadBalancers);
          } else {
            r.error(r.mark(v),
                    "unknown load balancer \"" + *text + "\" in " + fw + " " + kLoadBalancers);
          }
        } else if (key == "warmupDurationSecs") {
          warmup_secs = true;
          p.warmup = duration(r, v, key_at, fw);
        } else if (key == "warmup") {
          warmup = true;
          if (!r.expectMap(v, key_at, fw)) {
            return;
          }
          bool has_duration = false;
          r.forEachField(v, fw, {"duration", "minimumPercent", "aggression"},
                         [&](const std::string& wk, const YAML::Node& wv, const Mark& wat) {
                           if (wk == "duration") {
                             has_duration = true;
                             p.warmup = duration(r, wv, wat, fw + ".duration");
                           } else {
                             notApplied(r, wat, fw + "." + wk);
                           }
                         });
          if (!has_duration) {
            r.error(r.mark(v), fw + ".duration is required");
          }
        } else {
          consistent_hash = consistent_hash || key == "consistentHash";
          notApplied(r, key_at, fw);
        }
      });
  if (simple && consistent_hash) {
    r.error(r.mark(node), where + ": only one of simple and consistentHash can be set");
  }
  if (warmup_secs && warmup) {
    r.error(r.mark(node), where + ": only one of warmupDurationSecs and warmup can be set");
  }
}

void connectionPool(YamlReader& r, const YAML::Node& node, const Mark& at, const std::string& where,
                    TrafficPolicy& p) {
  if (!r.expectMap(node, at, where)) {
    return;
  }
  if (node.size() == 0) {
    r.error(r.mark(node), where + " must have at least one field");  // Istio: tcp or http
    return;
  }
  r.forEachField(
      node, where, {"tcp", "http"},
      [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
        const std::string fw = where + "." + key;
        if (!r.expectMap(v, key_at, fw)) {
          return;
        }
        if (key == "tcp") {
          r.forEachField(v, fw,
                         {"maxConnections", "connectTimeout", "tcpKeepalive",
                          "maxConnectionDuration", "idleTimeout"},
                         [&](const std::string& k, const YAML::Node& fv, const Mark& fat) {
                           if (k == "maxConnections") {
                             p.max_connections = integer(r, fv, fat, fw + "." + k, 1, kInt32Max);
                           } else if (k == "connectTimeout") {
                             p.connect_timeout = duration(r, fv, fat, fw + "." + k);
                           } else {
                             notApplied(r, fat, fw + "." + k);
                           }
                         });
          return;
        }
        r.forEachField(v, fw,
                       {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection",
                        "maxRetries", "idleTimeout", "h2UpgradePolicy", "useClientProtocol",
                        "maxConcurrentStreams"},
                       [&](const std::string& k, const YAML::Node& fv, const Mark& fat) {
                         const std::string kw = fw + "." + k;
                         if (k == "http1MaxPendingRequests") {
                           p.http1_max_pending_requests = integer(r, fv, fat, kw, 1, kInt32Max);
                         } else if (k == "http2MaxRequests") {
                           p.http2_max_requests = integer(r, fv, fat, kw, 1, kInt32Max);
                         } else if (k == "maxRequestsPerConnection") {
                           p.max_requests_per_connection = integer(r, fv, fat, kw, 0, kInt32Max);
                         } else if (k == "maxRetries") {
                           p.max_retries = integer(r, fv, fat, kw, 0, kInt32Max);
                         } else {
                           notApplied(r, fat, kw);
                         }
                       });
      });
}

void outlierDetection(YamlReader& r, const YAML::Node& node, const Mark& at,
                      const std::string& where, TrafficPolicy& p) {
  if (!r.expectMap(node, at, where)) {
    return;
  }
  OutlierDetection od;
  od.mark = r.mark(node);
  r.forEachField(
      node, where,
      {"consecutive5xxErrors", "consecutiveGatewayErrors", "interval", "baseEjectionTime",
       "maxEjectionPercent", "consecutiveErrors", "splitExternalLocalOriginErrors",
       "consecutiveLocalOriginFailures", "minHealthPercent"},
      [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
        const std::string fw = where + "." + key;
        // "0 disables" for both counters (Istio); any uint32 is taken.
        if (key == "consecutive5xxErrors") {
          od.consecutive_5xx_errors = integer(r, v, key_at, fw, 0, kUint32Max);
        } else if (key == "consecutiveGatewayErrors") {
          od.consecutive_gateway_errors = integer(r, v, key_at, fw, 0, kUint32Max);
        } else if (key == "interval") {
          od.interval = duration(r, v, key_at, fw);
        } else if (key == "baseEjectionTime") {
          od.base_ejection_time = duration(r, v, key_at, fw);
        } else if (key == "maxEjectionPercent") {
          od.max_ejection_percent = integer(r, v, key_at, fw, 0, 100);
        } else {
          notApplied(r, key_at, fw);
        }
      });
  p.outlier_detection = od;
}

// One of the fields a TrafficPolicy and a portLevelSettings entry share and the sidecar
// applies; false if `key` is none of them.
bool appliedSetting(YamlReader& r, const std::string& key, const YAML::Node& v, const Mark& at,
                    const std::string& where, TrafficPolicy& p) {
  if (key == "loadBalancer") {
    loadBalancer(r, v, at, where, p);
  } else if (key == "connectionPool") {
    connectionPool(r, v, at, where, p);
  } else if (key == "outlierDetection") {
    outlierDetection(r, v, at, where, p);
  } else {
    return false;
  }
  return true;
}

void portLevelSettings(YamlReader& r, const YAML::Node& node, const Mark& at,
                       const std::string& where, DestinationRule& dr) {
  if (!node.IsSequence()) {
    r.error(node.IsNull() ? at : r.mark(node), where + " must be a list");
    return;
  }
  std::set<std::uint32_t> ports;
  int i = 0;
  for (const YAML::Node& item : node) {
    const std::string pw = where + "[" + std::to_string(i++) + "]";
    PortTrafficPolicy ptp;
    ptp.mark = item.IsNull() ? at : r.mark(item);
    ptp.policy.mark = ptp.mark;
    if (!r.expectMap(item, at, pw)) {
      continue;
    }
    bool has_port = false;
    bool has_number = false;
    bool has_setting = false;
    r.forEachField(item, pw, {"port", "loadBalancer", "connectionPool", "outlierDetection", "tls"},
                   [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
                     const std::string fw = pw + "." + key;
                     if (key == "port") {
                       has_port = true;
                       if (!r.expectMap(v, key_at, fw)) {
                         return;
                       }
                       r.forEachField(
                           v, fw, {"number"},
                           [&](const std::string&, const YAML::Node& nv, const Mark& nat) {
                             has_number = true;
                             ptp.port = integer(r, nv, nat, fw + ".number", 1, 65535).value_or(0);
                           });
                       if (!has_number) {
                         r.error(r.mark(v), fw + ".number is required");
                       }
                       return;
                     }
                     has_setting = true;
                     if (!appliedSetting(r, key, v, key_at, fw, ptp.policy)) {
                       notApplied(r, key_at, fw);  // tls
                     }
                   });
    // Istio: "portTrafficPolicy must have valid port", "port traffic policy must have at
    // least one field".
    if (!has_port) {
      r.error(ptp.mark, pw + ".port is required");
    }
    if (!has_setting) {
      r.error(ptp.mark, pw + " must have at least one field besides port");
    }
    if (ptp.port != 0 && !ports.insert(ptp.port).second) {
      r.warning(ptp.mark, "port " + std::to_string(ptp.port) + " appears more than once in " +
                              where + "; only its first entry applies");
    }
    dr.port_level_settings.push_back(std::move(ptp));
  }
}

void trafficPolicy(YamlReader& r, const YAML::Node& node, const Mark& at, DestinationRule& dr) {
  const std::string where = "spec.trafficPolicy";
  dr.traffic_policy.mark = node.IsNull() ? at : r.mark(node);
  if (!r.expectMap(node, at, where)) {
    return;
  }
  if (node.size() == 0) {
    r.error(r.mark(node), where + " must have at least one field");
    return;
  }
  r.forEachField(node, where,
                 {"loadBalancer", "connectionPool", "outlierDetection", "portLevelSettings", "tls",
                  "tunnel", "proxyProtocol"},
                 [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
                   const std::string fw = where + "." + key;
                   if (key == "portLevelSettings") {
                     portLevelSettings(r, v, key_at, fw, dr);
                   } else if (!appliedSetting(r, key, v, key_at, fw, dr.traffic_policy)) {
                     notApplied(r, key_at, fw);
                   }
                 });
}

// --- VirtualService -------------------------------------------------------------------------

// Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on policies, as Istio's validation lists
// them; an HTTP status code is also a policy.
constexpr std::string_view kRetryOnPolicies[] = {"5xx",
                                                 "gateway-error",
                                                 "reset",
                                                 "reset-before-request",
                                                 "connect-failure",
                                                 "retriable-4xx",
                                                 "refused-stream",
                                                 "retriable-status-codes",
                                                 "retriable-headers",
                                                 "envoy-ratelimited",
                                                 "http3-post-connect-failure",
                                                 "cancelled",
                                                 "deadline-exceeded",
                                                 "internal",
                                                 "resource-exhausted",
                                                 "unavailable"};

bool isRetryOnPolicy(std::string_view policy) {
  if (std::find(std::begin(kRetryOnPolicies), std::end(kRetryOnPolicies), policy) !=
      std::end(kRetryOnPolicies)) {
    return true;
  }
  unsigned code = 0;
  auto [end, ec] = std::from_chars(policy.data(), policy.data() + policy.size(), code);
  return !policy.empty() && ec == std::errc() && end == policy.data() + policy.size() &&
         code >= 100 && code <= 599;
}

void retries(YamlReader& r, const YAML::Node& node, const Mark& at, const std::string& where,
             HttpRoute& route) {
  if (!r.expectMap(node, at, where)) {
    return;
  }
  route.retry_attempts = 0;  // `retries` without attempts is Istio's "retries disabled"
  bool policy_given = false;
  r.forEachField(node, where,
                 {"attempts", "perTryTimeout", "retryOn", "retryRemoteLocalities",
                  "retryIgnorePreviousHosts", "backoff"},
                 [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
                   const std::string fw = where + "." + key;
                   if (key == "attempts") {
                     route.retry_attempts = integer(r, v, key_at, fw, 0, kInt32Max).value_or(0);
                   } else if (key == "perTryTimeout") {
                     policy_given = true;
                     route.per_try_timeout = duration(r, v, key_at, fw);
                   } else if (key == "retryOn") {
                     policy_given = true;
                     auto text = r.scalar(v, key_at, fw);
                     if (!text) {
                       return;
                     }
                     route.retry_on = *text;
                     std::string_view rest = *text;
                     while (true) {
                       const std::size_t comma = rest.find(',');
                       const std::string_view policy = rest.substr(0, comma);
                       if (!isRetryOnPolicy(policy)) {
                         r.error(r.mark(v), "\"" + std::string(policy) +
                                                "\" is not a valid retryOn policy in " + fw);
                       }
                       if (comma == std::string_view::npos) {
                         break;
                       }
                       rest.remove_prefix(comma + 1);
                     }
                   } else {
                     notApplied(r, key_at, fw);
                   }
                 });
  if (route.retry_attempts == 0u && policy_given) {
    r.error(r.mark(node), where +
                              ": perTryTimeout or retryOn is set while attempts is 0, "
                              "which disables retries");
  }
}

void routeDestination(YamlReader& r, const YAML::Node& node, const Mark& at,
                      const std::string& where, HttpRoute& route, std::uint64_t& total_weight) {
  if (!r.expectMap(node, at, where)) {
    return;
  }
  bool has_destination = false;
  r.forEachField(node, where, {"destination", "weight", "headers"},
                 [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
                   const std::string fw = where + "." + key;
                   if (key == "weight") {
                     total_weight += integer(r, v, key_at, fw, 0, kInt32Max).value_or(0);
                     return;
                   }
                   if (key == "headers") {
                     notApplied(r, key_at, fw);
                     return;
                   }
                   has_destination = true;
                   if (!r.expectMap(v, key_at, fw)) {
                     return;
                   }
                   bool has_host = false;
                   r.forEachField(
                       v, fw, {"host", "subset", "port"},
                       [&](const std::string& dk, const YAML::Node& dv, const Mark& dat) {
                         const std::string dw = fw + "." + dk;
                         if (dk == "host") {
                           has_host = true;
                           auto host = r.scalar(dv, dat, dw);
                           if (!host) {
                             return;
                           }
                           if (*host == "*" || !isDnsName(*host)) {
                             r.error(r.mark(dv), "bad host \"" + *host + "\" in " + dw);
                             return;
                           }
                           route.destination_hosts.push_back(*host);
                         } else if (dk == "subset") {
                           notApplied(r, dat, dw);
                         } else if (r.expectMap(dv, dat, dw)) {
                           r.forEachField(
                               dv, dw, {"number"},
                               [&](const std::string&, const YAML::Node& nv, const Mark& nat) {
                                 integer(r, nv, nat, dw + ".number", 1, 65535);
                               });
                         }
                       });
                   if (!has_host) {
                     r.error(r.mark(v), fw + ".host is required");
                   }
                 });
  if (!has_destination) {
    r.error(r.mark(node), where + ".destination is required");
  }
}

HttpRoute httpRoute(YamlReader& r, const YAML::Node& node, const Mark& at,
                    const std::string& where) {
  HttpRoute route;
  route.mark = node.IsNull() ? at : r.mark(node);
  if (!r.expectMap(node, at, where)) {
    return route;
  }
  bool has_route = false;
  bool redirect = false;
  bool direct_response = false;
  bool delegate = false;
  r.forEachField(
      node, where,
      {"name", "match", "route", "timeout", "retries", "redirect", "directResponse", "delegate",
       "rewrite", "fault", "mirror", "mirrors", "mirrorPercent", "mirrorPercentage", "corsPolicy",
       "headers"},
      [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
        const std::string fw = where + "." + key;
        if (key == "name") {
          route.name = r.scalar(v, key_at, fw).value_or("");
        } else if (key == "match") {
          if (v.IsNull() || (v.IsSequence() && v.size() == 0)) {
            return;  // no conditions: the route takes every request
          }
          if (!v.IsSequence()) {
            r.error(r.mark(v), fw + " must be a list");
            return;
          }
          route.has_match = true;
          r.warning(
              key_at,
              fw + ": match conditions are not applied; this route is ignored by the sidecar");
        } else if (key == "route") {
          if (!v.IsSequence()) {
            r.error(v.IsNull() ? key_at : r.mark(v), fw + " must be a list");
            return;
          }
          has_route = v.size() > 0;
          std::uint64_t total_weight = 0;
          int i = 0;
          for (const YAML::Node& item : v) {
            routeDestination(r, item, key_at, fw + "[" + std::to_string(i++) + "]", route,
                             total_weight);
          }
          if (v.size() > 1 && total_weight == 0) {
            r.error(key_at, fw + ": the total weight of several destinations must not be 0");
          }
        } else if (key == "timeout") {
          route.timeout = duration(r, v, key_at, fw, /*zero_disables=*/true);
        } else if (key == "retries") {
          retries(r, v, key_at, fw, route);
        } else {
          redirect = redirect || key == "redirect";
          direct_response = direct_response || key == "directResponse";
          delegate = delegate || key == "delegate";
          notApplied(r, key_at, fw);
        }
      });
  // Istio's validateHTTPRouteConflict.
  if (!has_route && !redirect && !direct_response && !delegate) {
    r.error(route.mark, where + ": route, redirect or directResponse is required");
  }
  if (has_route && redirect) {
    r.error(route.mark, where + " cannot contain both route and redirect");
  }
  if (has_route && direct_response) {
    r.error(route.mark, where + " cannot contain both route and directResponse");
  }
  if (redirect && direct_response) {
    r.error(route.mark, where + " cannot contain both redirect and directResponse");
  }
  return route;
}

}  // namespace

void readDestinationRule(YamlReader& r, const YAML::Node& doc, const std::string& api) {
  DestinationRule dr;
  dr.api_version = api;
  dr.mark = r.mark(doc);
  dr.traffic_policy.mark = dr.mark;
  Values export_to;
  bool host_missing = true;  // no spec.host, or an empty one
  r.forEachField(
      doc, "DestinationRule", {"apiVersion", "kind", "metadata", "spec", "status"},
      [&](const std::string& key, const YAML::Node& v, const Mark& at) {
        if (key == "metadata") {
          dr.metadata = r.metadata(v, at, "DestinationRule");
          return;
        }
        if (key != "spec" || !r.expectMap(v, at, "spec")) {
          return;
        }
        r.forEachField(
            v, "DestinationRule.spec",
            {"host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"},
            [&](const std::string& sk, const YAML::Node& sv, const Mark& sat) {
              const std::string fw = "spec." + sk;
              if (sk == "host") {
                auto host = r.scalar(sv, sat, fw);
                if (host && host->empty()) {
                  return;
                }
                host_missing = false;  // given, or of the wrong type (reported)
                if (!host) {
                  return;
                }
                if (*host != "*" && !isDnsName(*host)) {
                  r.error(r.mark(sv), "bad host \"" + *host + "\" in spec.host");
                }
                dr.host = *host;
              } else if (sk == "trafficPolicy") {
                trafficPolicy(r, sv, sat, dr);
              } else if (sk == "exportTo") {
                export_to = r.stringList(sv, sat, fw);
              } else if (sk == "workloadSelector") {
                r.warning(sat, fw + " is not applied by the sidecar; it is ignored and the rule "
                                    "applies to every workload");
              } else {
                notApplied(r, sat, fw);  // subsets
              }
            });
      });
  if (!doc["metadata"]) {
    dr.metadata = r.metadata(YAML::Node(), dr.mark, "DestinationRule");
  }
  if (host_missing && (!doc["spec"] || doc["spec"].IsMap())) {  // else reported already
    r.error(dr.mark, "DestinationRule " + dr.metadata.name + ": spec.host is required");
  }
  dr.export_to = exportTo(r, export_to, dr.metadata.ns);
  r.out().bundle.destination_rules.push_back(std::move(dr));
}

void readVirtualService(YamlReader& r, const YAML::Node& doc, const std::string& api) {
  VirtualService vs;
  vs.api_version = api;
  vs.mark = r.mark(doc);
  Values hosts;
  Values gateways;
  Values export_to;
  Mark gateways_at;
  bool has_routes = false;
  r.forEachField(
      doc, "VirtualService", {"apiVersion", "kind", "metadata", "spec", "status"},
      [&](const std::string& key, const YAML::Node& v, const Mark& at) {
        if (key == "metadata") {
          vs.metadata = r.metadata(v, at, "VirtualService");
          return;
        }
        if (key != "spec" || !r.expectMap(v, at, "spec")) {
          return;
        }
        r.forEachField(
            v, "VirtualService.spec", {"hosts", "gateways", "http", "tcp", "tls", "exportTo"},
            [&](const std::string& sk, const YAML::Node& sv, const Mark& sat) {
              const std::string fw = "spec." + sk;
              if (sk == "hosts") {
                hosts = r.stringList(sv, sat, fw);
              } else if (sk == "gateways") {
                gateways_at = sat;
                gateways = r.stringList(sv, sat, fw);
              } else if (sk == "exportTo") {
                export_to = r.stringList(sv, sat, fw);
              } else if (sk == "http") {
                if (!sv.IsSequence()) {
                  r.error(sv.IsNull() ? sat : r.mark(sv), fw + " must be a list");
                  return;
                }
                has_routes = has_routes || sv.size() > 0;
                int i = 0;
                for (const YAML::Node& item : sv) {
                  vs.http.push_back(httpRoute(r, item, sat, fw + "[" + std::to_string(i++) + "]"));
                }
              } else {
                has_routes = has_routes || (sv.IsSequence() && sv.size() > 0);
                notApplied(r, sat, fw);  // tcp, tls
              }
            });
      });
  if (!doc["metadata"]) {
    vs.metadata = r.metadata(YAML::Node(), vs.mark, "VirtualService");
  }
  // An empty gateways list means "mesh", the sidecars. Without "mesh" the VirtualService is
  // for gateways only (Istio's isGateway).
  bool mesh = gateways.empty();
  for (const Value& g : gateways) {
    vs.gateways.push_back(g.text);
    mesh = mesh || g.text == "mesh";
  }
  if (!mesh) {
    r.warning(gateways_at,
              "spec.gateways does not include \"mesh\": this VirtualService is for gateways "
              "and the sidecar does not apply it");
  } else if (gateways.size() > 1) {
    r.warning(gateways_at,
              "spec.gateways: gateways other than \"mesh\" are not applied by the sidecar; they "
              "are ignored");
  }
  if (hosts.empty()) {
    r.error(vs.mark, "VirtualService " + vs.metadata.name +
                         ": spec.hosts must not be empty (delegate VirtualServices are not "
                         "supported)");
  }
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    const Value& h = hosts[i];
    if (h.text == "*") {
      if (mesh) {
        r.error(h.mark,
                "wildcard host * is not allowed in spec.hosts of a VirtualService "
                "bound to the mesh");
      }
    } else if (!isDnsName(h.text) && !IpAddress::parse(h.text).ok()) {
      r.error(h.mark, "bad host \"" + h.text + "\" in spec.hosts");
      continue;
    }
    // "Duplicates include literal duplicates as well as wildcard duplicates" (Istio).
    for (std::size_t j = 0; j < i; ++j) {
      if (hostMatches(hosts[j].text, h.text) || hostMatches(h.text, hosts[j].text)) {
        r.error(h.mark,
                "duplicate hosts in spec.hosts: \"" + hosts[j].text + "\" and \"" + h.text + "\"");
        break;
      }
    }
    vs.hosts.push_back(h.text);
  }
  if (!has_routes) {
    r.error(vs.mark, "VirtualService " + vs.metadata.name +
                         ": spec.http, spec.tcp or spec.tls must not be empty");
  }
  // Routes are tried in order and one without match conditions takes every request, so what
  // follows it is never used (Istio warns the same).
  for (std::size_t i = 0, catch_all = vs.http.size(); i < vs.http.size(); ++i) {
    if (catch_all < i) {
      r.warning(vs.http[i].mark, "spec.http[" + std::to_string(i) + "] is never used: spec.http[" +
                                     std::to_string(catch_all) +
                                     "] before it has no match conditions");
    } else if (!vs.http[i].has_match) {
      catch_all = i;
    }
  }
  vs.export_to = exportTo(r, export_to, vs.metadata.ns);
  r.out().bundle.virtual_services.push_back(std::move(vs));
}

}  // namespace palisade::policy
