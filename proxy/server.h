#pragma once

// Server: the sidecar process. The main thread loads the bootstrap and everything it names
// into a Snapshot, starts the workers, serves the admin endpoints, watches the files the
// bootstrap names (policies, services, certificates, bundles: polled once a second, so a
// Kubernetes ConfigMap's symlink swap is seen too), and on a good change publishes a new
// snapshot to every worker; a bad one is logged with file:line:col and the last good one
// keeps serving. SIGTERM (or SIGINT) drains: readiness turns 503, listeners close, open
// requests finish within drainTimeout, then the process exits.
// Thread: the main thread.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/admin.h"
#include "proxy/agent.h"
#include "proxy/bootstrap.h"
#include "proxy/dispatcher.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

namespace palisade::proxy {

class Server : public AdminHandler {
 public:
  // Loads everything; an error names what could not be loaded.
  static Result<std::unique_ptr<Server>> create(BootstrapConfig config);
  ~Server() override;

  // Binds every listener, starts the workers, runs until drained or told to quit. Returns
  // the process exit code.
  int run();

  // AdminHandler::
  std::string configDump() override;
  std::string certs() override;
  std::string clusters() override;
  std::string metrics() override;
  bool ready() override;
  void drainListeners() override;
  void quit() override;

 private:
  struct Watched {
    std::string fingerprint;         // of the files as last seen
    std::string failed_fingerprint;  // a version that failed to load, logged once
  };

  Server() = default;
  static void onTick(evutil_socket_t, short, void* arg);
  static void onSignal(evutil_socket_t sig, short, void* arg);
  static void onDrainTimeout(evutil_socket_t, short, void* arg);
  void reload(bool force);
  void publish();
  void onAgentIdentity(const AgentSvid& svid);
  void startDrain(bool then_exit);
  void stopWorkers();

  std::shared_ptr<const BootstrapConfig> bootstrap_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::uint64_t next_version_ = 1;
  Watched policies_watch_;
  Watched services_watch_;
  Watched identity_watch_;
  EventBasePtr base_;
  std::unique_ptr<AdminServer> admin_;
  std::optional<AgentSvid> agent_initial_;  // controlPlane: the first SVID, until run()
  std::unique_ptr<CertificateAgent> agent_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<unsigned> open_connections_{0};
  ProcessStats process_stats_;
  EventPtr tick_;
  EventPtr sigterm_;
  EventPtr sigint_;
  EventPtr sighup_;
  EventPtr drain_timer_;
  bool draining_ = false;
  bool exit_after_drain_ = false;
  std::atomic<std::size_t> drained_workers_{0};
  EventPtr drain_poll_;
  int exit_code_ = 0;
};

// The fingerprint of a file or of every file under a directory (names, sizes, mtimes,
// inodes): a change of any of them changes it.
std::string fingerprintPath(const std::string& path);

}  // namespace palisade::proxy
