#pragma once

// The sidecar's bootstrap file: who this workload is and where its traffic goes. A YAML
// mapping (see proxy/README.md for every field):
//
//   identity:                       # this workload's X509-SVID (files, for now)
//     certificateChain: certs/chain.pem
//     privateKey: certs/key.pem
//     trustBundles:                  # roots per trust domain
//     - file: certs/bundle.pem
//       trustDomain: cluster.local   # only for roots that name no trust domain
//   workload:
//     namespace: foo
//     labels: {app: httpbin}
//   rootNamespace: istio-system
//   policies: policies/              # AuthorizationPolicy, PeerAuthentication
//   services: services/              # ServiceEntry, WorkloadEntry
//   inbound:
//     address: 0.0.0.0:15006
//     ports:
//     - port: 8000                   # as peers dial it
//       targetPort: 8080             # the app, on 127.0.0.1
//       protocol: HTTP               # HTTP, HTTP2, GRPC or TCP; default: by ALPN
//       clientCertificateHeader: XFCC   # or RFC9440
//   outbound:
//     transparent: 127.0.0.1:15001   # SO_ORIGINAL_DST capture
//     listeners:
//     - address: 127.0.0.1:15432
//       service: postgres.db.svc.cluster.local
//       port: 5432
//     pooledHttp: true               # HTTP requests balanced per request over pooled
//                                    #   HTTP/2-over-mTLS connections; false: per connection
//     loadBalancer: LEAST_REQUEST    # ROUND_ROBIN or RANDOM: the default for services no
//                                    #   DestinationRule sets
//   admin: 127.0.0.1:15000
//   readiness: 0.0.0.0:15020
//   metrics: 0.0.0.0:15090
//   concurrency: 0                   # workers; 0: one per core
//   explainDenials: false            # say why in a response header x-palisade-denied-reason
//   pathNormalization: BASE          # NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES
//   drainTimeout: 5s                 # SIGTERM / drain: how long in-flight requests may take
//   limits:                          # every bound; the defaults are shown
//     maxConnections: 10000          # open downstream connections, all workers together
//     handshakeTimeout: 10s          # TLS handshake, inbound and outbound
//     sniffTimeout: 1s               # PERMISSIVE: wait this long for a TLS ClientHello
//     connectTimeout: 10s            # to the app or to an upstream sidecar
//     idleTimeout: 1h                # a connection with no traffic is closed
//     maxHeaderBytes: 61440          # one request's header block (Envoy's 60 KiB)
//     maxHeaders: 100                # header fields per request
//     maxConcurrentStreams: 100      # HTTP/2 streams per downstream connection
//     bufferLimit: 1048576           # bytes buffered per connection and direction
//
// Relative paths are relative to the bootstrap file. Every problem is a Diagnostic with
// file:line:col. Thread: any; plain values.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/ip_address.h"
#include "policy/loader.h"
#include "policy/model.h"
#include "policy/path_normalization.h"

namespace palisade::proxy {

struct SocketAddress {
  policy::IpAddress ip;
  std::uint16_t port = 0;
  std::string text;  // as written
};

struct TrustBundleFile {
  std::string file;
  std::optional<std::string> trust_domain;
  policy::Mark mark;
};

enum class InboundProtocol { kDetect, kHttp, kHttp2, kGrpc, kTcp };
enum class ClientCertHeader { kXfcc, kRfc9440 };

struct InboundPort {
  std::uint16_t port = 0;
  std::uint16_t target_port = 0;
  InboundProtocol protocol = InboundProtocol::kDetect;
  ClientCertHeader client_cert_header = ClientCertHeader::kXfcc;
  policy::Mark mark;
};

struct OutboundListener {
  SocketAddress address;
  std::string service;  // a ServiceEntry host
  std::uint16_t port = 0;
  policy::Mark mark;
};

// How an outbound HTTP request picks an endpoint (Istio's DestinationRule names).
enum class LoadBalancer { kLeastRequest, kRoundRobin, kRandom };

struct ProxyLimits {
  unsigned max_connections = 10000;
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds sniff_timeout{1'000};
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds idle_timeout{3'600'000};
  std::size_t max_header_bytes = 60 * 1024;
  std::size_t max_headers = 100;
  std::uint32_t max_concurrent_streams = 100;
  std::size_t buffer_limit = 1024 * 1024;
};

// controlPlane: the SVID comes from palisade-cp instead of files. The sidecar makes its
// key, attests (a join token or the pod's projected service-account token), gets its
// certificate and the trust bundles, renews at renewFraction of the lifetime (± jitter),
// retries with exponential backoff (retryInitial doubling up to retryMax, jittered) and keeps
// serving with the certificate it has while the control plane is away.
struct ControlPlaneConfig {
  std::string host;  // controlPlane.address: HOST:PORT
  std::uint16_t port = 15012;
  std::string identity;  // the control plane's SPIFFE ID; default
                         // spiffe://TD/ns/palisade-system/sa/palisade-cp
  std::string join_token;
  std::string join_token_file;
  std::string service_account_token_file;
  std::chrono::milliseconds certificate_ttl{0};  // 0: the control plane's default
  double renew_fraction = 0.5;
  double renew_jitter = 0.1;  // ± this fraction of the lifetime
  std::chrono::milliseconds retry_initial{1'000};
  std::chrono::milliseconds retry_max{60'000};
  std::chrono::milliseconds keepalive{30'000};
  policy::Mark mark;
};

struct BootstrapConfig {
  std::string file;  // where it was read from
  std::optional<ControlPlaneConfig> control_plane;
  std::string certificate_chain;
  std::string private_key;
  policy::Mark certificate_chain_mark;  // where the bootstrap names them
  policy::Mark private_key_mark;
  std::vector<TrustBundleFile> trust_bundles;
  std::string ns = "default";
  std::map<std::string, std::string> labels;
  std::string root_namespace = "istio-system";
  std::string policies;  // file or directory; "" for none
  std::string services;  // file or directory; "" for none
  SocketAddress inbound_address;
  std::vector<InboundPort> inbound_ports;
  std::optional<SocketAddress> transparent_outbound;
  std::vector<OutboundListener> outbound_listeners;
  // outbound.pooledHttp: true (the default) sends the app's HTTP/1.1 and h2c requests as
  // streams over the worker's pooled HTTP/2-over-mTLS connections, balanced per request;
  // false pumps each app connection's bytes over its own mTLS connection.
  bool outbound_pooled_http = true;
  LoadBalancer outbound_load_balancer = LoadBalancer::kLeastRequest;  // outbound.loadBalancer
  SocketAddress admin;
  SocketAddress readiness;
  SocketAddress metrics;
  unsigned concurrency = 0;
  bool explain_denials = false;
  policy::PathNormalization path_normalization = policy::PathNormalization::kBase;
  std::chrono::milliseconds drain_timeout{5'000};
  ProxyLimits limits;
};

// Parses "IP:PORT" or "[IPv6]:PORT".
std::optional<SocketAddress> parseSocketAddress(const std::string& text);

// Reads and checks the file itself: fields, types, addresses, ports. Diagnostics (errors and
// warnings) go to `out`; the config is meaningful only when out.ok().
BootstrapConfig loadBootstrap(const std::string& path, policy::LoadResult& out);

// Everything the config refers to: the SVID and its key, the trust bundles, the policies and
// services (their own diagnostics included), and outbound listeners naming known services.
// What `palisade-proxy --validate` checks.
void validateBootstrapReferences(const BootstrapConfig& config, policy::LoadResult& out);

}  // namespace palisade::proxy
