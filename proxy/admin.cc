#include "proxy/admin.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <cstring>

#include "common/log.h"

namespace palisade::proxy {
namespace {

void reply(evhttp_request* req, int code, const char* reason, const std::string& body,
           const char* content_type = "text/plain; charset=utf-8") {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(req, code, reason, out);
  evbuffer_free(out);
}

std::string pathOf(evhttp_request* req) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* p = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  return p != nullptr ? p : "/";
}

std::string queryParam(evhttp_request* req, const char* name) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* q = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
  if (q == nullptr) {
    return "";
  }
  evkeyvalq params{};
  if (evhttp_parse_query_str(q, &params) != 0) {
    return "";
  }
  const char* v = evhttp_find_header(&params, name);
  std::string out = v != nullptr ? v : "";
  evhttp_clear_headers(&params);
  return out;
}

Status bindOne(evhttp* http, const Sockaddr& a, const char* what) {
  const std::string host = a.ip().toString();
  if (evhttp_bind_socket(http, host.c_str(), a.port()) != 0) {
    return Error{ErrorCode::kIo, std::string(what) + ": cannot listen on " + a.toString() + ": " +
                                     std::strerror(errno)};
  }
  return Ok{};
}

}  // namespace

AdminServer::AdminServer(event_base* base, AdminHandler& handler)
    : base_(base), handler_(handler) {}

AdminServer::~AdminServer() {
  for (evhttp* h : {admin_, readiness_, metrics_}) {
    if (h != nullptr) {
      evhttp_free(h);
    }
  }
}

Status AdminServer::bind(const Sockaddr& admin, const Sockaddr& readiness,
                         const Sockaddr& metrics) {
  admin_ = evhttp_new(base_);
  evhttp_set_gencb(admin_, &AdminServer::onAdmin, this);
  if (Status s = bindOne(admin_, admin, "admin"); !s.ok()) {
    return s;
  }
  readiness_ = evhttp_new(base_);
  evhttp_set_gencb(readiness_, &AdminServer::onReadiness, this);
  if (Status s = bindOne(readiness_, readiness, "readiness"); !s.ok()) {
    return s;
  }
  metrics_ = evhttp_new(base_);
  evhttp_set_gencb(metrics_, &AdminServer::onMetrics, this);
  return bindOne(metrics_, metrics, "metrics");
}

void AdminServer::onAdmin(evhttp_request* req, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  const std::string path = pathOf(req);
  const bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
  const bool get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
  auto needPost = [&] {
    reply(req, 405, "Method Not Allowed", "this admin call changes state: use POST\n");
  };
  if (path == "/config_dump" && get) {
    reply(req, 200, "OK", self->handler_.configDump(), "application/json");
  } else if (path == "/clusters" && get) {
    reply(req, 200, "OK", self->handler_.clusters(), "text/plain");
  } else if (path == "/certs" && get) {
    reply(req, 200, "OK", self->handler_.certs(), "application/json");
  } else if (path == "/ready" && get) {
    const bool ok = self->handler_.ready();
    reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", ok ? "LIVE\n" : "DRAINING\n");
  } else if (path == "/logging") {
    const std::string level = queryParam(req, "level");
    if (level.empty()) {
      reply(req, 200, "OK",
            std::string("active level: ") + common::logLevelName(common::logLevel()) +
                "\nlevels: trace debug info warning error off\n");
      return;
    }
    if (!post) {
      needPost();
      return;
    }
    auto parsed = common::parseLogLevel(level);
    if (!parsed) {
      reply(req, 400, "Bad Request",
            "unknown level \"" + level + "\" (trace, debug, info, warning, error, off)\n");
      return;
    }
    common::setLogLevel(*parsed);
    PALISADE_LOG(kInfo, "admin", std::string("log level set to ") + common::logLevelName(*parsed));
    reply(req, 200, "OK", std::string("active level: ") + common::logLevelName(*parsed) + "\n");
  } else if (path == "/drain" || path == "/drain_listeners") {
    if (!post) {
      needPost();
      return;
    }
    self->handler_.drainListeners();
    reply(req, 200, "OK", "OK\n");
  } else if (path == "/quitquitquit") {
    if (!post) {
      needPost();
      return;
    }
    reply(req, 200, "OK", "OK\n");
    self->handler_.quit();
  } else if (path == "/" || path == "/help") {
    reply(req, 200, "OK",
          "admin commands are:\n"
          "  /certs: this workload's certificates and trust domains\n"
          "  /config_dump: listeners, services, policy and certificate versions (JSON)\n"
          "  /drain: stop accepting connections, drain the open ones (POST)\n"
          "  /logging: show or change the log level, ?level=debug (POST)\n"
          "  /quitquitquit: exit now (POST)\n"
          "  /ready: LIVE, or DRAINING with 503\n");
  } else {
    reply(req, 404, "Not Found", "no admin command " + path + " (see /help)\n");
  }
}

void AdminServer::onReadiness(evhttp_request* req, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  if (pathOf(req) != "/healthz/ready") {
    reply(req, 404, "Not Found", "not found\n");
    return;
  }
  const bool ok = self->handler_.ready();
  reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", ok ? "" : "draining\n");
}

void AdminServer::onMetrics(evhttp_request* req, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  if (pathOf(req) != "/stats/prometheus" && pathOf(req) != "/metrics") {
    reply(req, 404, "Not Found", "not found\n");
    return;
  }
  reply(req, 200, "OK", self->handler_.metrics(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace palisade::proxy
