#include "proxy/outbound.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "common/log.h"
#include "proxy/http/codec.h"
#include "proxy/http/http_session.h"
#include "proxy/sniffer.h"
#include "proxy/tcp_proxy.h"

namespace palisade::proxy {
namespace {

using common::HandshakeFailure;

class OutboundConnection : public Connection, public http::UpstreamProvider {
 public:
  OutboundConnection(Worker& w, int fd, const Sockaddr& peer)
      : Connection(w), fd_(fd), peer_(peer), snapshot_(w.snapshot()) {}

  ~OutboundConnection() override {
    sniffer_.reset();
    pump_.reset();
    for (bufferevent* b : {app_, upstream_}) {
      if (b != nullptr) {
        bufferevent_free(b);
      }
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  void start(const ListenerSpec& listener) {
    const Services& services = *snapshot_->services;
    if (listener.kind == ListenerKind::kOutboundExplicit) {
      route_ = services.find(listener.outbound->service, listener.outbound->port);
      target_ = listener.outbound->service + ":" + std::to_string(listener.outbound->port);
      if (route_ == nullptr) {
        PALISADE_LOG(kInfo, "outbound", "no service " + target_ + " in the services config");
        close("unknown service");
        return;
      }
    } else {
      auto original = originalDestination(fd_);
      if (!original) {
        PALISADE_LOG(kInfo, "outbound",
                     "connection from " + peer_.toString() +
                         " on the transparent listener was not redirected "
                         "(no original destination), closing");
        close("not redirected");
        return;
      }
      route_ = services.findByDestination(original->ip(), original->port());
      target_ = original->toString();
      if (route_ == nullptr) {
        passthrough(*original);
        return;
      }
    }
    if (route_->endpoints.empty()) {
      PALISADE_LOG(kInfo, "outbound", "service " + target_ + " has no endpoints");
      close("no endpoints");
      return;
    }
    if (route_->opaque) {
      connectNext();
      return;
    }
    state_ = State::kSniffing;
    deadline_ = std::time(nullptr) + 1 + snapshot_->bootstrap->limits.sniff_timeout.count() / 1000;
    sniffer_ = std::make_unique<Sniffer>(
        worker().base(), fd_, snapshot_->bootstrap->limits.sniff_timeout,
        [this](std::string_view bytes, bool eof) {
          if (eof) {
            close("app closed");
            return;
          }
          alpn_ = std::string(sniffAlpn(bytes).value_or(""));
          if (snapshot_->bootstrap->outbound_pooled_http && !alpn_.empty()) {
            startHttp();
            return;
          }
          connectNext();
        });
  }

  // Connection::
  void onPoliciesChanged(const Policies&) override {}  // inbound policies; nothing here

  void onTick(std::time_t now) override {
    if (state_ == State::kHttp) {
      return;  // the session keeps its own idle timer; the pool its connect timeouts
    }
    if (state_ != State::kPumping && state_ != State::kClosed && now > deadline_) {
      PALISADE_LOG(kInfo, "outbound", "timed out connecting to " + target_);
      inc(worker().stats().outbound_connect_failures);
      close("timed out");
      return;
    }
    if (state_ == State::kPumping && pump_ != nullptr &&
        pump_->idleFor(snapshot_->bootstrap->limits.idle_timeout, now)) {
      close("idle timeout");
    }
  }

  void drain() override {
    if (session_ != nullptr) {
      session_->drain();
    } else if (state_ != State::kPumping) {
      close("draining");
    }
  }
  void abort() override {
    if (session_ != nullptr) {
      session_->abort();  // on_closed destroys us
      return;
    }
    close("shutting down");
  }

  // http::UpstreamProvider::
  http::UpstreamRequest* newStream(http::Exchange& ex, http::UpstreamCallbacks& cb) override {
    // Each request goes by the worker's newest services config, so a long-lived app
    // connection follows endpoint changes (removed endpoints drain, new ones take requests).
    const std::shared_ptr<const Snapshot>& newest = worker().snapshot();
    if (newest->services != current_->services) {
      const ServiceRoute* r = newest->services->find(http_route_->host, http_route_->port);
      if (r == nullptr) {
        ex.failure_reason = "upstream connect error: service " + http_route_->host + ":" +
                            std::to_string(http_route_->port) +
                            " is no longer in the services config";
        return nullptr;
      }
      current_ = newest;
      http_route_ = r;
    }
    if (ex.request.authority.empty()) {
      // HTTP/1.0 without Host: HTTP/2 needs an authority, and the service is known (Envoy's
      // default_host_for_http_10).
      ex.request.authority = http_route_->host;
    }
    return worker().upstreamPool().newStream(current_, *http_route_, ex, cb);
  }

 private:
  enum class State { kStart, kSniffing, kConnecting, kPumping, kHttp, kClosed };

  // The app speaks HTTP/1.1 or h2c: decode its requests and send each as a stream over the
  // worker's pooled HTTP/2-over-mTLS connections, balanced per request. Authorization is the
  // server side's (its inbound sidecar checks every request); nothing is checked here.
  void startHttp() {
    sniffer_.reset();
    state_ = State::kHttp;
    const BootstrapConfig& b = *snapshot_->bootstrap;
    http::SessionOptions o;
    o.downstream = alpn_ == "h2" ? http::Codec::kHttp2 : http::Codec::kHttp1;
    o.upstream = http::Codec::kHttp2;
    o.upstream_provider = this;
    current_ = snapshot_;
    http_route_ = route_;
    const TrafficSettings& t = route_->traffic;
    o.max_attempts = 1 + t.retry_attempts;
    o.request_timeout = t.request_timeout;
    o.on_request_timeout = [this] { worker().upstreamPool().onRequestTimeout(*http_route_); };
    o.limits = sessionLimits(b.limits);
    // The receiving sidecar normalizes and authorizes; the path leaves as the app wrote it.
    o.path_normalization = policy::PathNormalization::kNone;
    o.on_closed = [this] {
      session_ = nullptr;
      if (state_ == State::kClosed) {
        destroy();  // close() aborted the session and left this for its on_closed
      } else {
        close("done");
      }
    };
    bufferevent* down = bufferevent_socket_new(worker().base(), fd_, BEV_OPT_CLOSE_ON_FREE);
    fd_ = -1;
    session_ = http::HttpSession::start(worker().base(), down, std::move(o));
  }

  void passthrough(const Sockaddr& original) {
    const BootstrapConfig& b = *snapshot_->bootstrap;
    // Never loop back into our own listeners.
    for (const SocketAddress* a : {&b.inbound_address, &*b.transparent_outbound}) {
      if (a->port == original.port()) {
        PALISADE_LOG(kInfo, "outbound",
                     "refusing to pass through to our own listener " + original.toString());
        close("loop");
        return;
      }
    }
    inc(worker().stats().outbound_passthrough);
    PALISADE_LOG(kDebug, "outbound", original.toString() + " is no known service: passthrough");
    state_ = State::kConnecting;
    deadline_ = std::time(nullptr) + 1 + b.limits.connect_timeout.count() / 1000;
    tls_ = false;
    upstream_ = bufferevent_socket_new(worker().base(), -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(upstream_, nullptr, nullptr, &OutboundConnection::onUpstream, this);
    if (bufferevent_socket_connect(upstream_, original.get(), static_cast<int>(original.len)) !=
        0) {
      close("connect failed");
      return;
    }
    setNoDelay(bufferevent_getfd(upstream_));
  }

  void connectNext() {
    sniffer_.reset();
    UpstreamPool& pool = worker().upstreamPool();
    if (endpoint_ != nullptr) {
      pool.tcpDone(*endpoint_, false, true);  // the previous attempt failed
      endpoint_ = nullptr;
    }
    if (attempts_ >= route_->endpoints.size()) {
      inc(worker().stats().outbound_connect_failures);
      PALISADE_LOG(kInfo, "outbound",
                   "no endpoint of " + target_ + " could be reached (" + std::to_string(attempts_) +
                       " tried)");
      close("no endpoint reachable");
      return;
    }
    // The first choice by the service's load balancer (requests in flight are this worker's
    // connections to each endpoint); after a failure, the next endpoints in turn.
    if (attempts_ == 0) {
      first_endpoint_ = pool.tcpPick(*snapshot_, *route_);
    }
    endpoint_ = &route_->endpoints[(first_endpoint_ + attempts_) % route_->endpoints.size()];
    pool.tcpStart(*snapshot_, *route_, *endpoint_);
    ++attempts_;
    state_ = State::kConnecting;
    const BootstrapConfig& b = *snapshot_->bootstrap;
    deadline_ = std::time(nullptr) + 1 +
                (b.limits.connect_timeout + b.limits.handshake_timeout).count() / 1000;
    common::SslPtr ssl = snapshot_->identity->client->newSsl(endpoint_->allowed_ids);
    SSL_set_mode(ssl.get(), SSL_MODE_RELEASE_BUFFERS);
    SSL_set_options(ssl.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_set_tlsext_host_name(ssl.get(), route_->sni.c_str());
    if (!alpn_.empty()) {
      std::string wire(1, static_cast<char>(alpn_.size()));
      wire += alpn_;
      SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned>(wire.size()));
    }
    ssl_ = ssl.get();
    tls_ = true;
    if (upstream_ != nullptr) {
      bufferevent_free(upstream_);
    }
    upstream_ = bufferevent_openssl_socket_new(worker().base(), -1, ssl.release(),
                                               BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(upstream_, nullptr, nullptr, &OutboundConnection::onUpstream, this);
    if (bufferevent_socket_connect(upstream_,
                                   reinterpret_cast<const sockaddr*>(&endpoint_->address),
                                   static_cast<int>(endpoint_->address_len)) != 0) {
      connectNext();
      return;
    }
    setNoDelay(bufferevent_getfd(upstream_));
  }

  static void onUpstream(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<OutboundConnection*>(arg);
    if (what & BEV_EVENT_CONNECTED) {
      self->connected();
      return;
    }
    if (!self->tls_) {
      inc(self->worker().stats().outbound_connect_failures);
      self->close("passthrough connect failed");
      return;
    }
    const common::PeerIdentity* p = common::peerIdentity(self->ssl_);
    if (p != nullptr && p->failure != HandshakeFailure::kNone) {
      // The server was reached but is not who the service may be served by: no retry on
      // another endpoint would make that right, and the operator must see it.
      inc(self->worker().stats().outbound_handshake_failures[static_cast<std::size_t>(p->failure)]);
      inc(self->worker().stats().outbound_connect_failures);
      PALISADE_LOG(kWarning, "tls",
                   "outbound to " + self->target_ + " endpoint " + self->endpoint_->text +
                       " failed: " + common::handshakeFailureName(p->failure) + ": " + p->reason);
      self->worker().upstreamPool().tcpDone(*self->endpoint_, false, true);
      self->endpoint_ = nullptr;
      self->close("server refused");
      return;
    }
    std::string openssl;
    while (unsigned long e = bufferevent_get_openssl_error(bev)) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      openssl += (openssl.empty() ? "" : "; ") + std::string(buf);
    }
    PALISADE_LOG(kInfo, "outbound",
                 "endpoint " + self->endpoint_->text + " of " + self->target_ + " failed: " +
                     (openssl.empty() ? std::string("connection refused or closed") : openssl));
    self->connectNext();
  }

  void connected() {
    state_ = State::kPumping;
    if (endpoint_ != nullptr) {
      worker().upstreamPool().tcpConnected(*endpoint_);
    }
    inc(worker().stats().outbound_connections);
    app_ = bufferevent_socket_new(worker().base(), fd_, BEV_OPT_CLOSE_ON_FREE);
    fd_ = -1;
    bufferevent* app = app_;
    bufferevent* up = upstream_;
    app_ = nullptr;
    upstream_ = nullptr;
    pump_ = std::make_unique<Pump>(Pump::Side{app, false}, Pump::Side{up, tls_},
                                   snapshot_->bootstrap->limits.buffer_limit,
                                   [this](const char*) { close("done"); });
    pump_->start();
  }

  void close(const char* why) {
    if (state_ == State::kClosed) {
      return;
    }
    PALISADE_LOG(kDebug, "outbound", "connection from " + peer_.toString() + " closed: " + why);
    const State state_before = state_;
    state_ = State::kClosed;
    sniffer_.reset();
    if (endpoint_ != nullptr) {
      worker().upstreamPool().tcpDone(*endpoint_, state_before == State::kPumping, false);
      endpoint_ = nullptr;
    }
    if (session_ != nullptr) {
      http::HttpSession* s = session_;
      session_ = nullptr;
      s->abort();
      return;  // its on_closed comes back here with nothing left to do but destroy
    }
    for (bufferevent** b : {&app_, &upstream_}) {
      if (*b != nullptr) {
        bufferevent_free(*b);
        *b = nullptr;
      }
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    destroy();
  }

  int fd_;
  Sockaddr peer_;
  std::shared_ptr<const Snapshot> snapshot_;
  const ServiceRoute* route_ = nullptr;
  // Opaque TCP: the endpoint this connection goes to (counted by the pool until tcpDone).
  const Endpoint* endpoint_ = nullptr;
  // HTTP: the snapshot and route the last request went by (newer than snapshot_ once the
  // services config changed).
  std::shared_ptr<const Snapshot> current_;
  const ServiceRoute* http_route_ = nullptr;
  std::string target_;
  std::string alpn_;
  State state_ = State::kStart;
  std::time_t deadline_ = 0;
  std::size_t first_endpoint_ = 0;
  std::size_t attempts_ = 0;
  std::unique_ptr<Sniffer> sniffer_;
  bufferevent* app_ = nullptr;
  bufferevent* upstream_ = nullptr;
  SSL* ssl_ = nullptr;
  bool tls_ = false;
  std::unique_ptr<Pump> pump_;
  http::HttpSession* session_ = nullptr;  // frees itself; on_closed clears this
};

}  // namespace

void startOutbound(Worker& worker, int fd, const Sockaddr& peer, const ListenerSpec& listener) {
  auto* c = new OutboundConnection(worker, fd, peer);
  c->start(listener);
}

}  // namespace palisade::proxy
