#pragma once

// The sidecar's certificate agent (bootstrap `controlPlane:`). It makes an ECDSA P-256 key
// that never leaves the process, proves who the workload is to palisade-cp (a join token or
// the pod's projected service-account token), sends a CSR and gets its X509-SVID and the
// trust bundles (palisade.v1.CertificateService). Then it renews at a fraction of the
// lifetime with jitter, authenticated by the current SVID over mutual TLS, backs off
// exponentially with jitter while the control plane is away (the current certificate keeps
// serving), and follows trust-bundle changes on a WatchTrustBundles stream. Each new SVID or
// bundle reaches new handshakes; open connections keep theirs.
// Thread: the sidecar's main loop.

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "common/grpc/channel.h"
#include "common/tls_context.h"
#include "policy/result.h"
#include "proxy/bootstrap.h"

namespace palisade::proxy {

struct AgentSvid {
  std::shared_ptr<const common::Svid> svid;
  // The control plane's bundles for its trust domains, and the bootstrap's files for others
  // (federation).
  std::shared_ptr<const common::BundleSet> bundles;
  std::string bundle_version;
  std::string spiffe_id;
  std::time_t not_before = 0;  // the CA backdates it (clock skew): renewal counts from
  std::time_t received = 0;    // when the certificate arrived
  std::time_t not_after = 0;
};

struct AgentStats {
  std::uint64_t issued = 0;    // certificates received
  std::uint64_t failures = 0;  // attempts that failed
  std::uint64_t bundle_updates = 0;
  std::time_t next_renewal = 0;
  std::string last_error;
  bool bundle_stream_up = false;
};

class CertificateAgent {
 public:
  using OnChange = std::function<void(const AgentSvid&)>;

  CertificateAgent(event_base* base, const BootstrapConfig& config);
  ~CertificateAgent();
  CertificateAgent(const CertificateAgent&) = delete;
  CertificateAgent& operator=(const CertificateAgent&) = delete;

  // The first SVID, on a loop of its own: retries while the control plane cannot be reached
  // (backoff), gives up at a refusal (a bad or used token, an identity mismatch...) or after
  // `give_up`.
  static Result<AgentSvid> bootstrap(const BootstrapConfig& config,
                                     std::chrono::milliseconds give_up);

  // Keeps `current` renewed and its bundles current; `on_change` gets each new one.
  void start(AgentSvid current, OnChange on_change);
  const AgentSvid& current() const { return current_; }
  const AgentStats& stats() const { return stats_; }

 private:
  enum class Attempt { kPending, kIssued, kRefused, kRetry };

  void request(bool with_attestation);
  void onResponse(const common::grpc::Status& status, const std::string& response,
                  bool with_attestation);
  void scheduleRenewal();
  void scheduleRetry();
  void openBundleWatch();
  void applyBundles(const std::string& version, const std::string& update_bytes);
  std::shared_ptr<const common::TlsContext> channelContext();
  std::string controlPlaneId() const;
  static void onTimer(evutil_socket_t, short, void* arg);
  static void onWatchTimer(evutil_socket_t, short, void* arg);

  event_base* base_;
  const BootstrapConfig& config_;
  std::shared_ptr<const common::BundleSet> file_bundles_;
  std::unique_ptr<common::grpc::Channel> channel_;
  std::shared_ptr<common::grpc::ClientCall> call_;
  std::shared_ptr<common::grpc::ClientCall> watch_;
  event* timer_ = nullptr;
  event* watch_timer_ = nullptr;
  AgentSvid current_;
  bool have_svid_ = false;
  OnChange on_change_;
  AgentStats stats_;
  Attempt attempt_ = Attempt::kPending;
  common::EvpPkeyPtr pending_key_;
  bool reconnect_ = false;
  std::string refusal_;
  std::chrono::milliseconds backoff_{0};
  std::chrono::milliseconds watch_backoff_{0};
  std::mt19937_64 rng_;
};

}  // namespace palisade::proxy
