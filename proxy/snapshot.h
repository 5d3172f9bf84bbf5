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
  sockaddr_storage address{};
  socklen_t address_len = 0;
  std::string text;                      // "127.0.0.1:8000"
  std::vector<std::string> allowed_ids;  // SPIFFE ID URIs; empty: any trusted SVID
};

struct ServiceRoute {
  std::string host;
  std::uint16_t port = 0;
  std::string protocol;  // as declared: HTTP, HTTP2, GRPC, TCP, ...; "" when not given
  bool opaque = false;   // bytes only: no protocol sniffing (server-first protocols)
  std::string sni;       // "outbound_.<port>_._.<host>", as Istio names the cluster
  std::vector<policy::CidrRange> vips;  // the ServiceEntry's addresses
  std::vector<Endpoint> endpoints;
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
