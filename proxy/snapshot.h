#pragma once

// Snapshot: everything a worker needs to serve connections, built and checked on the main
// thread, then handed to every worker as a shared_ptr<const Snapshot> (STYLE.md "Threads and
// the event loop"). A connection keeps the snapshot it was accepted with; a reload builds a
// new one, sharing the parts that did not change. Parts:
//   Identity  this workload's SVID as TLS contexts (inbound server, outbound client)
//   Policies  compiled AuthorizationPolicies selected for this workload, and its effective
//             PeerAuthentication
//   Services  outbound routes: service host and port -> endpoints and the SPIFFE IDs allowed
//             to serve them (secure naming)
// Thread: built on the main thread; immutable afterwards, read from any thread.

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "common/tls_context.h"
#include "policy/engine.h"
#include "policy/ip_address.h"
#include "policy/loader.h"
#include "policy/peer_authn.h"
#include "proxy/bootstrap.h"

namespace palisade::proxy {

struct Identity {
  std::uint64_t version = 0;
  std::shared_ptr<const common::TlsContext> server;  // inbound; ALPN h2, http/1.1
  std::shared_ptr<const common::TlsContext> client;  // outbound; ALPN set per connection
  std::shared_ptr<const policy::SpiffeId> id;
  std::string serial;
  std::time_t not_before = 0;
  std::time_t not_after = 0;
  std::vector<std::string> trust_domains;
  std::vector<std::string> chain_serials;  // intermediates sent with the leaf
};

// Reads the SVID and bundles the bootstrap names and builds both TLS contexts. A certificate
// that is not a valid SVID for our own bundles is refused here, before any handshake uses it.
Result<std::shared_ptr<const Identity>> loadIdentity(const BootstrapConfig& config,
                                                     std::uint64_t version);
// The same from an SVID in memory (the control plane's) and bundles; `source` names it in
// errors.
Result<std::shared_ptr<const Identity>> buildIdentity(
    const common::Svid& svid, std::shared_ptr<const common::BundleSet> bundles,
    std::uint64_t version, const std::string& source);
// The bootstrap's trust bundle files.
Result<std::shared_ptr<const common::BundleSet>> loadBundleFiles(const BootstrapConfig& config);

struct Policies {
  std::uint64_t version = 0;
  policy::PolicyBundle bundle;  // kept: `mtls` points into it
  std::shared_ptr<const policy::PolicySet> set;
  std::unique_ptr<const policy::WorkloadAuthz> authz;
  policy::EffectiveMtls mtls;
  std::size_t selected = 0;  // policies that select this workload
};

// Loads and compiles the policies directory. Errors come back as diagnostics in `out`; the
// result is null when there is any error (the caller keeps its last good Policies).
std::shared_ptr<const Policies> loadPolicies(const BootstrapConfig& config, std::uint64_t version,
                                             policy::LoadResult& out);

struct Endpoint {
  // Names this endpoint of this route (route SNI, address, allowed IDs) for the life of the
  // process, the same in every snapshot: the worker's pool keys its state by it.
  std::uint64_t key = 0;
  sockaddr_storage address{};
  socklen_t address_len = 0;
  std::string text;                      // "127.0.0.1:8000"
  std::vector<std::string> allowed_ids;  // SPIFFE ID URIs; empty: any trusted SVID
};

// How the outbound sidecar treats one service port: Istio's DestinationRule and
// VirtualService fields where they are given, else the defaults below (which are Envoy's and
// Istio's, except where noted). Counts are per sidecar; each worker thread enforces its share
// (the count divided by the workers, rounded up).
struct TrafficSettings {
  LoadBalancer load_balancer = LoadBalancer::kLeastRequest;
  std::size_t max_connections = 1024;           // per endpoint (connectionPool.tcp.maxConnections)
  std::size_t max_requests = 1024;              // in flight per endpoint (http.http2MaxRequests)
  std::size_t max_pending = 1024;               // queued per service (http.http1MaxPendingRequests)
  std::size_t max_requests_per_connection = 0;  // 0: no limit
  std::size_t max_retries = 1024;               // retries in flight per service (http.maxRetries)
  std::chrono::milliseconds connect_timeout{10'000};  // also how long a request may queue
  std::chrono::milliseconds request_timeout{0};       // VirtualService timeout; 0: none
  int retry_attempts = 2;  // VirtualService retries.attempts (Istio's default: 2)
  // Outlier detection. Ours is on without a DestinationRule (Istio's is off): 5 gateway
  // errors in a row (connect failure, reset, 502/503/504) eject an endpoint.
  std::uint32_t consecutive_5xx = 0;  // 0: off
  std::uint32_t consecutive_gateway = 5;
  std::chrono::milliseconds interval{10'000};
  std::chrono::milliseconds base_ejection_time{30'000};
  std::uint32_t max_ejection_percent = 10;  // at least one endpoint can always be ejected
  // An endpoint back from ejection gets a growing share of requests over this long
  // (loadBalancer.warmupDurationSecs; ours defaults to 10 s after an ejection).
  std::chrono::milliseconds warmup{10'000};
  std::string destination_rule;  // "namespace/name" of the rule applied, "" for none
  std::string virtual_service;
};

struct ServiceRoute {
  std::string host;
  std::uint16_t port = 0;
  std::string protocol;  // as declared: HTTP, HTTP2, GRPC, TCP, ...; "" when not given
  bool opaque = false;   // bytes only: no protocol sniffing (server-first protocols)
  std::string sni;       // "outbound_.<port>_._.<host>", as Istio names the cluster
  std::vector<policy::CidrRange> vips;  // the ServiceEntry's addresses
  std::vector<Endpoint> endpoints;
  std::string cluster;    // "outbound|8000||httpbin.foo.svc.cluster.local", as Envoy names it
  std::uint64_t key = 0;  // names the cluster for the life of the process (see Endpoint::key)
  TrafficSettings traffic;
};

struct Services {
  std::uint64_t version = 0;
  std::vector<ServiceRoute> routes;

  const ServiceRoute* find(std::string_view host, std::uint16_t port) const;
  // For a captured connection: a route whose addresses hold `ip` on `port`, or one with an
  // endpoint at exactly ip:port.
  const ServiceRoute* findByDestination(const policy::IpAddress& ip, std::uint16_t port) const;
};

std::shared_ptr<const Services> loadServices(const BootstrapConfig& config,
                                             const std::string& trust_domain, std::uint64_t version,
                                             policy::LoadResult& out);

struct Snapshot {
  std::shared_ptr<const BootstrapConfig> bootstrap;
  std::shared_ptr<const Identity> identity;
  std::shared_ptr<const Policies> policies;
  std::shared_ptr<const Services> services;
};

// SNI an outbound sidecar sends: "outbound_.8000_._.httpbin.foo.svc.cluster.local". The
// inbound side reads the port back when the connection was not captured.
std::string outboundSni(std::uint16_t port, std::string_view host);
std::uint16_t portFromSni(std::string_view sni);

}  // namespace palisade::proxy
