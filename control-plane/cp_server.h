#pragma once

// palisade-cp: the control plane's process. It keeps the CA, the join-token store and the
// cluster's JWKS, and serves on one event loop:
//   - gRPC over TLS (default 127.0.0.1:15012): palisade.v1.CertificateService and
//     grpc.health.v1.Health, with its own SVID
//     (spiffe://TD/ns/palisade-system/sa/palisade-cp, plus DNS names so stock gRPC clients
//     can check it by host name), renewed by itself at half-life;
//   - HTTP (default 127.0.0.1:15014): /metrics (Prometheus text), /ready, /healthz.
// The CA's expiry is watched: a warning is logged well before it (--ca-expiry-warning) and
// exported as a gauge. Thread: one (the loop); the constructor's caller runs it.

#include <event2/event.h>
#include <event2/http.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/grpc/server.h"
#include "control-plane/cert_service.h"
#include "control-plane/join_token.h"
#include "control-plane/sa_token.h"
#include "policy/result.h"

namespace palisade::cp {

struct ControlPlaneOptions {
  std::string trust_domain = "cluster.local";
  std::string ca_dir;  // a CA saved by `palisadectl ca init`; made here when empty
  std::string data_dir = "/var/lib/palisade-cp";
  std::string grpc_host = "127.0.0.1";
  std::uint16_t grpc_port = 15012;
  std::string monitoring_host = "127.0.0.1";
  std::uint16_t monitoring_port = 15014;
  std::string jwks_path;  // Kubernetes service-account tokens accepted when set
  std::string token_audience = "palisade-cp";
  std::string token_issuer;  // checked when set
  std::chrono::seconds default_ttl{3600};
  std::chrono::seconds max_ttl{24 * 3600};
  std::chrono::seconds ca_expiry_warning{30 * 24 * 3600};
  std::vector<std::string> dns_names = {"palisade-cp", "palisade-cp.palisade-system.svc",
                                        "localhost"};
  std::chrono::seconds own_ttl{24 * 3600};
  std::chrono::milliseconds keepalive_time{30'000};
};

class ControlPlane {
 public:
  static Result<std::unique_ptr<ControlPlane>> create(event_base* base,
                                                      const ControlPlaneOptions& options);
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  palisade::Status start();  // binds both ports
  void shutdown();           // stops accepting; GOAWAY to clients
  std::uint16_t grpcPort() const;
  std::uint16_t monitoringPort() const { return monitoring_port_; }
  std::string metricsText() const;

 private:
  struct Metrics;
  ControlPlane(event_base* base, ControlPlaneOptions options);
  palisade::Status issueOwnSvid();
  void onCreateCertificate(const std::shared_ptr<common::grpc::ServerCall>& call,
                           const std::string& request);
  void onWatchBundles(const std::shared_ptr<common::grpc::ServerCall>& call);
  void onHealth(const std::shared_ptr<common::grpc::ServerCall>& call, const std::string& request);
  void checkCaExpiry();
  static void onTimer(evutil_socket_t, short, void* arg);
  static void onHttp(evhttp_request* req, void* arg);

  event_base* base_;
  ControlPlaneOptions options_;
  std::shared_ptr<const CertificateAuthority> ca_;
  std::unique_ptr<JoinTokenStore> tokens_;
  std::optional<Jwks> jwks_;
  std::unique_ptr<CertService> certs_;
  std::shared_ptr<const common::TlsContext> tls_;
  std::time_t own_expires_ = 0;
  std::time_t own_renew_at_ = 0;
  std::unique_ptr<common::grpc::Server> grpc_;
  evhttp* http_ = nullptr;
  std::uint16_t monitoring_port_ = 0;
  event* timer_ = nullptr;
  std::unique_ptr<Metrics> metrics_;
  std::vector<std::shared_ptr<common::grpc::ServerCall>> watchers_;
  bool ready_ = false;
};

}  // namespace palisade::cp
