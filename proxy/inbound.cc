#include "proxy/inbound.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

#include "common/log.h"
#include "common/openssl.h"
#include "policy/explain.h"
#include "proxy/http/http_session.h"
#include "proxy/sniffer.h"
#include "proxy/tcp_proxy.h"

namespace palisade::proxy {
namespace {

using common::HandshakeFailure;
using policy::MtlsMode;

std::string base64(const unsigned char* data, int len) {
  std::string out(static_cast<std::size_t>(4 * ((len + 2) / 3)) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, len);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string derBase64(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) {
    return "";
  }
  std::string out = base64(der, len);
  OPENSSL_free(der);
  return out;
}

std::string subjectRfc2253(X509* cert) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// Why a handshake failed, from what our verifier recorded or from OpenSSL's error queue.
std::pair<HandshakeFailure, std::string> handshakeError(bufferevent* bev, SSL* ssl) {
  std::string openssl;
  bool no_certificate = false;
  while (unsigned long e = bufferevent_get_openssl_error(bev)) {
    if (ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      no_certificate = true;
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    openssl += (openssl.empty() ? "" : "; ") + std::string(buf);
  }
  if (const common::PeerIdentity* p = common::peerIdentity(ssl);
      p != nullptr && p->failure != HandshakeFailure::kNone) {
    return {p->failure, p->reason};
  }
  if (no_certificate) {
    return {HandshakeFailure::kNoPeerCertificate, "the client sent no certificate"};
  }
  if (openssl.empty()) {
    openssl = "connection closed during the handshake";
  }
  return {HandshakeFailure::kOther, openssl};
}

class InboundConnection : public Connection {
 public:
  InboundConnection(Worker& w, int fd, const Sockaddr& peer)
      : Connection(w), fd_(fd), peer_(peer), snapshot_(w.snapshot()) {}

  ~InboundConnection() override {
    sniffer_.reset();
    pump_.reset();
    if (bev_ != nullptr) {
      bufferevent_free(bev_);
    } else if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  void start() {
    local_ = localAddress(fd_);
    const BootstrapConfig& b = *snapshot_->bootstrap;
    if (auto original = originalDestination(fd_)) {
      local_ = *original;
      port_ = findPort(original->port());
    } else if (b.inbound_ports.size() == 1) {
      port_ = &b.inbound_ports.front();
    }
    const policy::EffectiveMtls& mtls = snapshot_->policies->mtls;
    const MtlsMode mode = port_ != nullptr ? mtls.forPort(port_->port) : mtls.mode;
    if (mode == MtlsMode::kDisable) {
      startPlaintext();
      return;
    }
    // A ClientHello starts with a handshake record; anything else is plaintext, which STRICT
    // refuses (and counts as such) and PERMISSIVE serves. STRICT waits for a client that
    // says nothing as long as for a handshake; PERMISSIVE takes it for a server-first
    // plaintext protocol after sniffTimeout.
    const bool strict = mode == MtlsMode::kStrict;
    const std::chrono::milliseconds wait =
        strict ? b.limits.handshake_timeout : b.limits.sniff_timeout;
    state_ = State::kSniffing;
    deadline_ = std::time(nullptr) + 1 + wait.count() / 1000;
    sniffer_ = std::make_unique<Sniffer>(worker().base(), fd_, wait,
                                         [this, strict](std::string_view bytes, bool eof) {
                                           if (eof) {
                                             close("closed before sending anything");
                                             return;
                                           }
                                           if (sniffTls(bytes).value_or(false)) {
                                             startTls();
                                           } else if (strict && bytes.empty()) {
                                             close("said nothing within the handshake timeout");
                                           } else {
                                             first_bytes_ = std::string(bytes);
                                             startPlaintext();
                                           }
                                         });
  }

  // Connection::
  void onPoliciesChanged(const Policies& policies) override {
    if (state_ == State::kTcp) {
      policy::RequestView view = l4View();
      policy::Decision d = policies.authz->evaluate(view);
      if (d.verdict == policy::Verdict::kDeny) {
        inc(worker().stats().closed_by_policy);
        logDenied("closing open connection", policies, d, view);
        close("denied by a policy change");
      }
    } else if (state_ == State::kHttp && session_ != nullptr) {
      policy::RequestView view = l4View();
      policy::MatchRef by = policies.authz->deniesEveryRequest(view);
      if (by) {
        inc(worker().stats().closed_by_policy);
        PALISADE_LOG(kInfo, "rbac",
                     "closing open HTTP connection from " + peerName() + " (" + peer_.toString() +
                         ") to port " + std::to_string(port_->port) +
                         " after a policy change: no request of this peer can be allowed: " +
                         (by.rule >= 0 ? "denied by " + policy::describe(by)
                                       : "no ALLOW policy can match (" +
                                             policy::policyNames(policies.authz->allow()) + ")"));
        session_->drain();
      }
    }
  }

  void onTick(std::time_t now) override {
    if ((state_ == State::kHandshake || state_ == State::kSniffing ||
         state_ == State::kConnecting) &&
        now > deadline_) {
      if (state_ == State::kHandshake) {
        inc(worker()
                .stats()
                .inbound_handshake_failures[static_cast<std::size_t>(HandshakeFailure::kOther)]);
        inc(worker().stats().inbound[static_cast<std::size_t>(InboundResult::kHandshakeFailed)]);
      }
      close("timed out");
      return;
    }
    if (peer_expires_ != 0 && now >= peer_expires_ && !expired_) {
      expired_ = true;
      inc(worker().stats().closed_cert_expired);
      PALISADE_LOG(kInfo, "tls",
                   "closing connection from " + peerName() + " (" + peer_.toString() +
                       "): its certificate expired");
      if (session_ != nullptr) {
        session_->drain();
      } else {
        close("peer certificate expired");
      }
      return;
    }
    if (state_ == State::kTcp && pump_ != nullptr &&
        pump_->idleFor(snapshot_->bootstrap->limits.idle_timeout, now)) {
      close("idle timeout");
    }
  }

  void drain() override {
    if (session_ != nullptr) {
      session_->drain();
    } else if (state_ != State::kTcp) {
      close("draining");
    }
    // An opaque TCP connection has no request boundary: it runs until the drain timeout.
  }

  void abort() override {
    if (session_ != nullptr) {
      session_->abort();  // on_closed destroys us
      return;
    }
    close("shutting down");
  }

 private:
  enum class State { kStart, kSniffing, kHandshake, kConnecting, kTcp, kHttp, kClosed };

  const InboundPort* findPort(std::uint16_t port) const {
    for (const InboundPort& p : snapshot_->bootstrap->inbound_ports) {
      if (p.port == port) {
        return &p;
      }
    }
    return nullptr;
  }

  std::string peerName() const {
    return peer_id_ ? std::string(peer_id_->uri()) : std::string("plaintext peer");
  }

  policy::RequestView l4View() const {
    policy::RequestView v;
    v.protocol = policy::Protocol::kTcp;
    v.peer = peer_id_.get();
    v.source_ip = peer_.ip();
    v.destination_ip = local_.ip();
    v.destination_port = port_ != nullptr ? port_->port : local_.port();
    v.sni = sni_;
    return v;
  }

  void logDenied(const std::string& what, const Policies& policies, const policy::Decision& d,
                 const policy::RequestView& view) {
    PALISADE_LOG(kInfo, "rbac",
                 "denied connection from " + peerName() + " (" + peer_.toString() + ") to port " +
                     std::to_string(view.destination_port) + ": " +
                     policy::denialSummary(d, *policies.authz, view) +
                     (what.empty() ? "" : " (" + what + ")"));
  }

  void startTls() {
    sniffer_.reset();
    state_ = State::kHandshake;
    deadline_ =
        std::time(nullptr) + 1 + snapshot_->bootstrap->limits.handshake_timeout.count() / 1000;
    common::SslPtr ssl = snapshot_->identity->server->newSsl();
    SSL_set_mode(ssl.get(), SSL_MODE_RELEASE_BUFFERS);
    SSL_set_options(ssl.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    ssl_ = ssl.get();
    bev_ = bufferevent_openssl_socket_new(worker().base(), fd_, ssl.release(),
                                          BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    fd_ = -1;
    bufferevent_setcb(bev_, nullptr, nullptr, &InboundConnection::onHandshake, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
  }

  static void onHandshake(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<InboundConnection*>(arg);
    if (what & BEV_EVENT_CONNECTED) {
      self->handshakeDone();
      return;
    }
    auto [failure, reason] = handshakeError(bev, self->ssl_);
    WorkerStats& stats = self->worker().stats();
    inc(stats.inbound_handshake_failures[static_cast<std::size_t>(failure)]);
    inc(stats.inbound[static_cast<std::size_t>(InboundResult::kHandshakeFailed)]);
    PALISADE_LOG(kInfo, "tls",
                 "inbound handshake from " + self->peer_.toString() +
                     " failed: " + common::handshakeFailureName(failure) + ": " + reason);
    self->close("handshake failed");
  }

  void handshakeDone() {
    const common::PeerIdentity* p = common::peerIdentity(ssl_);
    if (p == nullptr || !p->id) {
      inc(worker().stats().inbound_handshake_failures[static_cast<std::size_t>(
          HandshakeFailure::kNoPeerCertificate)]);
      inc(worker().stats().inbound[static_cast<std::size_t>(InboundResult::kHandshakeFailed)]);
      PALISADE_LOG(kInfo, "tls",
                   "inbound handshake from " + peer_.toString() +
                       " failed: no_peer_certificate: no verified SVID");
      close("no peer certificate");
      return;
    }
    peer_id_ = p->id;
    peer_expires_ = p->expires;
    if (const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) {
      sni_ = sni;
    }
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    alpn_.assign(reinterpret_cast<const char*>(alpn), alpn_len);
    if (port_ == nullptr) {
      port_ = findPort(portFromSni(sni_));
    }
    proceed(true);
  }

  void startPlaintext() {
    sniffer_.reset();
    if (port_ == nullptr) {
      PALISADE_LOG(kInfo, "inbound",
                   "plaintext connection from " + peer_.toString() +
                       " to an inbound listener with several ports and no original "
                       "destination: no way to tell the port, closing");
      close("unknown port");
      return;
    }
    if (snapshot_->policies->mtls.forPort(port_->port) == MtlsMode::kStrict) {
      inc(worker().stats().inbound[static_cast<std::size_t>(InboundResult::kPlaintextRefused)]);
      PALISADE_LOG(kInfo, "tls",
                   "refused plaintext connection from " + peer_.toString() + " to port " +
                       std::to_string(port_->port) + ": PeerAuthentication mode is STRICT");
      close("plaintext refused");
      return;
    }
    bev_ = bufferevent_socket_new(worker().base(), fd_, BEV_OPT_CLOSE_ON_FREE);
    fd_ = -1;
    if (auto a = sniffAlpn(first_bytes_)) {
      alpn_ = *a;
    }
    proceed(false);
  }

  void proceed(bool tls) {
    if (port_ == nullptr) {
      PALISADE_LOG(kInfo, "inbound",
                   "connection from " + peerName() + " (" + peer_.toString() +
                       ") names no configured inbound port (original destination " +
                       local_.toString() + ", SNI \"" + sni_ + "\"), closing");
      close("unknown port");
      return;
    }
    if (tls && snapshot_->policies->mtls.forPort(port_->port) == MtlsMode::kDisable) {
      // DISABLE: mutual TLS is not required; a peer that used it anyway is served as such.
    }
    using http::Codec;
    std::optional<Codec> downstream;
    switch (port_->protocol) {
      case InboundProtocol::kTcp:
        break;
      case InboundProtocol::kHttp:
        downstream = alpn_ == "h2" ? Codec::kHttp2 : Codec::kHttp1;
        break;
      case InboundProtocol::kHttp2:
      case InboundProtocol::kGrpc:
        downstream = alpn_ == "http/1.1" ? Codec::kHttp1 : Codec::kHttp2;
        break;
      case InboundProtocol::kDetect:
        if (alpn_ == "h2") {
          downstream = Codec::kHttp2;
        } else if (alpn_ == "http/1.1") {
          downstream = Codec::kHttp1;
        }
        break;
    }
    if (downstream) {
      startHttp(*downstream);
    } else {
      startTcp();
    }
  }

  void startTcp() {
    policy::RequestView view = l4View();
    const Policies& policies = *worker().snapshot()->policies;
    policy::Decision d = policies.authz->evaluate(view);
    if (d.verdict == policy::Verdict::kDeny) {
      inc(worker().stats().inbound[static_cast<std::size_t>(InboundResult::kDenied)]);
      logDenied("", policies, d, view);
      close("denied");
      return;
    }
    inc(worker().stats().inbound[static_cast<std::size_t>(InboundResult::kAccepted)]);
    state_ = State::kConnecting;
    deadline_ =
        std::time(nullptr) + 1 + snapshot_->bootstrap->limits.connect_timeout.count() / 1000;
    bufferevent_disable(bev_, EV_READ);
    app_ = bufferevent_socket_new(worker().base(), -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(app_, nullptr, nullptr, &InboundConnection::onAppConnect, this);
    Sockaddr app = makeSockaddr(*policy::IpAddress::parse("127.0.0.1"), port_->target_port);
    if (bufferevent_socket_connect(app_, app.get(), static_cast<int>(app.len)) != 0) {
      PALISADE_LOG(kInfo, "inbound", "cannot connect to the app at " + app.toString());
      close("app unreachable");
      return;
    }
    setNoDelay(bufferevent_getfd(app_));
  }

  static void onAppConnect(bufferevent*, short what, void* arg) {
    auto* self = static_cast<InboundConnection*>(arg);
    if (!(what & BEV_EVENT_CONNECTED)) {
      PALISADE_LOG(kInfo, "inbound",
                   "cannot connect to the app on 127.0.0.1:" +
                       std::to_string(self->port_->target_port) + " for " + self->peerName());
      self->close("app unreachable");
      return;
    }
    self->state_ = State::kTcp;
    const bool tls = self->ssl_ != nullptr;
    bufferevent* down = self->bev_;
    bufferevent* app = self->app_;
    self->bev_ = nullptr;
    self->app_ = nullptr;
    self->pump_ = std::make_unique<Pump>(Pump::Side{down, tls}, Pump::Side{app, false},
                                         self->snapshot_->bootstrap->limits.buffer_limit,
                                         [self](const char*) {
                                           WorkerStats& s = self->worker().stats();
                                           inc(s.tcp_received_bytes, self->pump_->bytesFromA());
                                           inc(s.tcp_sent_bytes, self->pump_->bytesFromB());
                                           self->close("done");
                                         });
    self->pump_->start();
  }

  void startHttp(http::Codec downstream) {
    state_ = State::kHttp;
    inc(worker().stats().inbound[static_cast<std::size_t>(InboundResult::kAccepted)]);
    const BootstrapConfig& b = *snapshot_->bootstrap;
    http::SessionOptions o;
    o.downstream = downstream;
    switch (port_->protocol) {
      case InboundProtocol::kHttp:
        o.upstream = http::Codec::kHttp1;
        break;
      case InboundProtocol::kHttp2:
      case InboundProtocol::kGrpc:
        o.upstream = http::Codec::kHttp2;
        break;
      default:
        o.upstream = downstream;
    }
    Sockaddr app = makeSockaddr(*policy::IpAddress::parse("127.0.0.1"), port_->target_port);
    o.app_address = app.storage;
    o.app_address_len = app.len;
    o.limits = sessionLimits(b.limits);
    o.connection = l4View();
    o.path_normalization = b.path_normalization;
    o.authorize = [this](const policy::RequestView& r) { return authorize(r); };
    o.strip_headers = {"x-forwarded-client-cert", "client-cert", "client-cert-chain"};
    if (peer_id_ && ssl_ != nullptr) {
      X509* leaf = SSL_get0_peer_certificate(ssl_);
      if (port_->client_cert_header == ClientCertHeader::kXfcc) {
        const common::Sha256 hash = common::certificateSha256(leaf);
        // Envoy's format with Istio's fields: By (us), Hash (of the peer's leaf DER),
        // Subject (quoted, may be empty), URI (the peer's SPIFFE ID).
        o.add_headers.emplace_back("x-forwarded-client-cert",
                                   "By=" + std::string(snapshot_->identity->id->uri()) +
                                       ";Hash=" + common::hex(hash.data(), hash.size()) +
                                       ";Subject=\"" + subjectRfc2253(leaf) +
                                       "\";URI=" + std::string(peer_id_->uri()));
      } else {
        // RFC 9440: byte sequences (RFC 8941) of the DER certificates.
        o.add_headers.emplace_back("client-cert", ":" + derBase64(leaf) + ":");
        std::string chain;
        STACK_OF(X509)* sk = SSL_get_peer_cert_chain(ssl_);
        for (int i = 0; sk != nullptr && i < sk_X509_num(sk); ++i) {
          X509* c = sk_X509_value(sk, i);
          if (X509_cmp(c, leaf) == 0) {
            continue;
          }
          chain += (chain.empty() ? ":" : ", :") + derBase64(c) + ":";
        }
        if (!chain.empty()) {
          o.add_headers.emplace_back("client-cert-chain", chain);
        }
      }
    }
    o.on_closed = [this] {
      session_ = nullptr;
      if (state_ == State::kClosed) {
        destroy();  // close() aborted the session and left this for its on_closed
      } else {
        close("done");
      }
    };
    bufferevent* down = bev_;
    bev_ = nullptr;
    session_ = http::HttpSession::start(worker().base(), down, std::move(o));
  }

  http::AuthzOutcome authorize(const policy::RequestView& r) {
    // The newest policies, not the ones the connection started with: a policy change applies
    // to the next request on every open connection.
    const Policies& policies = *worker().snapshot()->policies;
    policy::Decision d = policies.authz->evaluate(r);
    WorkerStats& stats = worker().stats();
    if (d.verdict == policy::Verdict::kAllow) {
      inc(stats.http_allowed);
      return {};
    }
    inc(stats.http_denied);
    std::string summary = policy::denialSummary(d, *policies.authz, r);
    PALISADE_LOG(kInfo, "rbac",
                 "denied request " + std::string(r.method) + " " + std::string(r.path) + " from " +
                     peerName() + " (" + peer_.toString() + ") to port " +
                     std::to_string(r.destination_port) + ": " + summary);
    http::AuthzOutcome out;
    out.allowed = false;
    if (snapshot_->bootstrap->explain_denials) {
      out.denied_reason = std::move(summary);
    }
    return out;
  }

  void close(const char* why) {
    if (state_ == State::kClosed) {
      return;
    }
    PALISADE_LOG(kDebug, "inbound", "connection from " + peer_.toString() + " closed: " + why);
    state_ = State::kClosed;
    sniffer_.reset();
    if (session_ != nullptr) {
      http::HttpSession* s = session_;
      session_ = nullptr;
      s->abort();
      return;  // its on_closed comes back here with nothing left to do but destroy
    }
    if (app_ != nullptr) {
      bufferevent_free(app_);
      app_ = nullptr;
    }
    if (bev_ != nullptr) {
      bufferevent_free(bev_);
      bev_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    destroy();
  }

  int fd_;
  Sockaddr peer_;
  Sockaddr local_;
  std::shared_ptr<const Snapshot> snapshot_;
  const InboundPort* port_ = nullptr;
  State state_ = State::kStart;
  std::time_t deadline_ = 0;
  std::unique_ptr<Sniffer> sniffer_;
  std::string first_bytes_;
  bufferevent* bev_ = nullptr;  // downstream, before a pump or session takes it
  bufferevent* app_ = nullptr;
  SSL* ssl_ = nullptr;  // owned by bev_ / the pump / the session
  std::shared_ptr<const policy::SpiffeId> peer_id_;
  std::time_t peer_expires_ = 0;
  bool expired_ = false;
  std::string sni_;
  std::string alpn_;
  std::unique_ptr<Pump> pump_;
  http::HttpSession* session_ = nullptr;
};

}  // namespace

void startInbound(Worker& worker, int fd, const Sockaddr& peer) {
  auto* c = new InboundConnection(worker, fd, peer);
  c->start();
}

}  // namespace palisade::proxy
