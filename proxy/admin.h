#pragma once

// The sidecar's HTTP endpoints on the main thread's event loop (libevent's evhttp):
//   admin (127.0.0.1:15000 by default, never exposed): GET /config_dump, GET /certs,
//     GET /clusters (outbound services and endpoints: requests, health, ejections),
//     GET|POST /logging[?level=L], POST /drain, POST /quitquitquit, GET /ready
//   readiness (15020): GET /healthz/ready, 200 when serving and 503 while draining
//   metrics (15090): GET /stats/prometheus
// Envoy's paths and verbs: a state-changing admin call must be a POST.
// Thread: the main thread.

#include <event2/event.h>
#include <event2/http.h>

#include <memory>
#include <string>

#include "policy/result.h"
#include "proxy/socket_util.h"

namespace palisade::proxy {

class AdminHandler {
 public:
  virtual ~AdminHandler() = default;
  virtual std::string configDump() = 0;  // JSON
  virtual std::string certs() = 0;       // JSON
  virtual std::string clusters() = 0;    // Envoy's /clusters text
  virtual std::string metrics() = 0;     // Prometheus text
  virtual bool ready() = 0;
  virtual void drainListeners() = 0;
  virtual void quit() = 0;
};

class AdminServer {
 public:
  AdminServer(event_base* base, AdminHandler& handler);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  Status bind(const Sockaddr& admin, const Sockaddr& readiness, const Sockaddr& metrics);

 private:
  static void onAdmin(evhttp_request* req, void* arg);
  static void onReadiness(evhttp_request* req, void* arg);
  static void onMetrics(evhttp_request* req, void* arg);

  event_base* base_;
  AdminHandler& handler_;
  evhttp* admin_ = nullptr;
  evhttp* readiness_ = nullptr;
  evhttp* metrics_ = nullptr;
};

}  // namespace palisade::proxy
