#include "common/grpc/server.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace palisade::common::grpc {

namespace {

std::string addressText(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (addr->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    // Appended piece by piece: "[" + std::string(...) trips GCC 12's -Wrestrict at -O3.
    std::string out;
    out.reserve(INET6_ADDRSTRLEN + 8);
    out.push_back('[');
    out.append(buf);
    out.append("]:");
    out.append(std::to_string(ntohs(in6->sin6_port)));
    return out;
  }
  return "unknown";
}

}  // namespace

class ServerConnection final : public Connection {
 public:
  ServerConnection(Server& server, const ConnectionLimits& limits)
      : Connection(server.base_, Role::kServer, limits), server_(server), limits_(limits) {}

  void begin(bufferevent* bev, SSL* ssl, std::string peer) {
    attach(bev, ssl, std::move(peer), ssl == nullptr);
  }

  void submitHeaders(ServerCall& call) {
    nghttp2_nv nva[] = {headerField(":status", "200"),
                        headerField("content-type", "application/grpc")};
    nghttp2_data_provider p = dataProvider();
    nghttp2_submit_response(session(), call.stream_id_, nva, std::size(nva), &p);
    call.headers_sent_ = true;
  }

  void send(ServerCall& call, std::string_view message) {
    if (!call.headers_sent_) {
      submitHeaders(call);
    }
    std::string framed;
    framed.reserve(message.size() + 5);
    appendMessage(framed, message);
    queue(call.stream_id_, out_[call.stream_id_], framed, false);
  }

  void finish(ServerCall& call, const Status& status) {
    status_[call.stream_id_] = status;
    if (!call.headers_sent_) {
      // Trailers-only: one HEADERS frame with the status, ending the stream.
      std::string code = std::to_string(static_cast<int>(status.code));
      std::string message = percentEncode(status.message);
      std::vector<nghttp2_nv> nva = {headerField(":status", "200"),
                                     headerField("content-type", "application/grpc"),
                                     headerField("grpc-status", code)};
      if (!message.empty()) {
        nva.push_back(headerField("grpc-message", message));
      }
      nghttp2_submit_response(session(), call.stream_id_, nva.data(), nva.size(), nullptr);
      call.headers_sent_ = true;
      scheduleFlush();
      return;
    }
    queue(call.stream_id_, out_[call.stream_id_], {}, true);
  }

  void reset(std::int32_t stream_id, std::uint32_t code) {
    if (session() != nullptr) {
      nghttp2_submit_rst_stream(session(), NGHTTP2_FLAG_NONE, stream_id, code);
      scheduleFlush();
    }
  }

  void httpError(std::int32_t stream_id, const char* status) {
    nghttp2_nv nva[] = {headerField(":status", status)};
    nghttp2_submit_response(session(), stream_id, nva, std::size(nva), nullptr);
    scheduleFlush();
  }

 protected:
  bool hasCalls() const override { return !calls_.empty(); }

  Outgoing* outgoing(std::int32_t stream_id) override {
    auto it = out_.find(stream_id);
    return it == out_.end() ? nullptr : &it->second;
  }

  void onOutgoingEnd(std::int32_t stream_id) override {
    const Status& st = status_[stream_id];
    std::string code = std::to_string(static_cast<int>(st.code));
    std::string message = percentEncode(st.message);
    std::vector<nghttp2_nv> nva = {headerField("grpc-status", code)};
    if (!message.empty()) {
      nva.push_back(headerField("grpc-message", message));
    }
    nghttp2_submit_trailer(session(), stream_id, nva.data(), nva.size());
  }

  void onFrameSent(std::int32_t stream_id, bool end_stream) override {
    // PROTOCOL-HTTP2/RFC 9113 8.1: a complete response while the client still sends is
    // followed by RST_STREAM(NO_ERROR). Never before: a RST_STREAM submitted with the status
    // still queued makes nghttp2 drop the status (the stream is CLOSING at submit time).
    if (end_stream && session() != nullptr &&
        nghttp2_session_get_stream_remote_close(session(), stream_id) == 0) {
      nghttp2_submit_rst_stream(session(), NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
      scheduleFlush();
    }
  }

  void onBeginHeaders(std::int32_t stream_id) override {
    if (calls_.count(stream_id) != 0) {
      trailers_.insert(stream_id);  // trailers from the client: not part of gRPC, ignored
      return;
    }
    auto call = std::make_shared<ServerCall>(this, stream_id, base_);
    call->reader_ = MessageReader(limits_.max_message);
    call->peer_address_ = peerAddress();
    if (ssl() != nullptr) {
      if (const PeerIdentity* id = peerIdentity(ssl())) {
        call->peer_ = *id;
      }
    }
    calls_.emplace(stream_id, std::move(call));
  }

  bool onHeader(std::int32_t stream_id, std::string_view name, std::string_view value) override {
    auto it = calls_.find(stream_id);
    if (it == calls_.end()) {
      return true;
    }
    ServerCall& c = *it->second;
    if (trailers_.count(stream_id) != 0 || c.done_ || (!c.method_.empty() && name == ":path")) {
      return true;
    }
    if (name == ":path") {
      c.method_ = value;
    } else if (name == ":method") {
      c.http_method_ = value;
    } else if (name == "content-type") {
      c.content_type_ = value;
    } else if (name == "grpc-encoding") {
      c.encoding_ = value;
    } else if (name == "grpc-timeout") {
      c.timeout_ = value;
    } else if (!name.empty() && name[0] != ':' && name != "te" && name.substr(0, 5) != "grpc-") {
      c.metadata_.emplace_back(name, value);
    }
    return true;
  }

  void onHeadersDone(std::int32_t stream_id, bool) override {
    auto it = calls_.find(stream_id);
    if (trailers_.erase(stream_id) != 0 || it == calls_.end() || it->second->http_method_.empty()) {
      return;  // trailers
    }
    std::shared_ptr<ServerCall> call = it->second;
    if (call->http_method_ != "POST") {
      call->done_ = true;
      httpError(stream_id, "405");
      return;
    }
    if (!isGrpcContentType(call->content_type_)) {
      call->done_ = true;
      httpError(stream_id, "415");
      return;
    }
    if (!call->encoding_.empty() && call->encoding_ != "identity") {
      call->finish(
          {StatusCode::kUnimplemented, "grpc-encoding " + call->encoding_ + " is not supported"});
      return;
    }
    if (!call->timeout_.empty()) {
      auto timeout = parseTimeout(call->timeout_);
      if (!timeout) {
        call->finish({StatusCode::kInternal, "malformed grpc-timeout: " + call->timeout_});
        return;
      }
      call->deadline_ = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(*timeout);
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(*timeout).count();
      timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
      evtimer_add(call->deadline_timer_, &tv);
    }
    server_.dispatch(call);
  }

  void onData(std::int32_t stream_id, const std::uint8_t* data, std::size_t len) override {
    auto it = calls_.find(stream_id);
    if (it == calls_.end() || it->second->done_) {
      return;
    }
    std::shared_ptr<ServerCall> call = it->second;
    Status st = deliverMessages(call->reader_, data, len, call->done_, call->on_message);
    if (!st.ok()) {
      call->finish(st);  // the stream is reset once the status went out (onFrameSent)
    }
  }

  void onEndStream(std::int32_t stream_id) override {
    auto it = calls_.find(stream_id);
    if (it == calls_.end() || it->second->done_ || it->second->half_closed_) {
      return;
    }
    std::shared_ptr<ServerCall> call = it->second;
    call->half_closed_ = true;
    if (!call->reader_.idle()) {
      call->finish({StatusCode::kInternal, "the stream ended inside a message"});
      return;
    }
    if (call->on_half_close) {
      call->on_half_close();
    }
  }

  void onStreamClose(std::int32_t stream_id, std::uint32_t error_code) override {
    auto it = calls_.find(stream_id);
    out_.erase(stream_id);
    status_.erase(stream_id);
    trailers_.erase(stream_id);
    if (it == calls_.end()) {
      return;
    }
    std::shared_ptr<ServerCall> call = std::move(it->second);
    calls_.erase(it);
    call->detach();
    if (!call->done_) {
      call->cancel({StatusCode::kCancelled, error_code == NGHTTP2_NO_ERROR
                                                ? "the client closed the stream"
                                                : "the client reset the stream"});
    }
  }

  void onClosed(const std::string& reason) override {
    auto calls = std::move(calls_);
    calls_.clear();
    for (auto& [id, call] : calls) {
      call->detach();
      if (!call->done_) {
        call->cancel({StatusCode::kUnavailable, "connection closed: " + reason});
      }
    }
    out_.clear();
    server_.closed(this);
  }

 private:
  Server& server_;
  ConnectionLimits limits_;
  std::map<std::int32_t, std::shared_ptr<ServerCall>> calls_;
  std::map<std::int32_t, Outgoing> out_;
  std::map<std::int32_t, Status> status_;
  std::set<std::int32_t> trailers_;
};

ServerCall::ServerCall(ServerConnection* connection, std::int32_t stream_id, event_base* base)
    : connection_(connection), stream_id_(stream_id) {
  deadline_timer_ = evtimer_new(base, onDeadline, this);
}

ServerCall::~ServerCall() { event_free(deadline_timer_); }

void ServerCall::send(std::string_view message) {
  if (done_ || connection_ == nullptr) {
    return;
  }
  connection_->send(*this, message);
}

void ServerCall::finish(const Status& status) {
  if (done_) {
    return;
  }
  done_ = true;
  evtimer_del(deadline_timer_);
  on_message = nullptr;
  on_half_close = nullptr;
  if (connection_ != nullptr) {
    connection_->finish(*this, status);
  }
}

void ServerCall::cancel(const Status& why) {
  done_ = true;
  evtimer_del(deadline_timer_);
  auto cb = std::move(on_cancel);
  on_cancel = nullptr;
  on_message = nullptr;
  on_half_close = nullptr;
  if (cb) {
    cb(why);
  }
}

void ServerCall::onDeadline(evutil_socket_t, short, void* arg) {
  auto* call = static_cast<ServerCall*>(arg);
  if (call->done_) {
    return;
  }
  Status why{StatusCode::kDeadlineExceeded, "deadline exceeded"};
  call->finish(why);    // the status, then RST_STREAM once it went out (onFrameSent)
  call->done_ = false;  // let cancel() run the handler's callback once
  call->cancel(why);
}

void reply(ServerCall& call, std::string_view response) {
  call.send(response);
  call.finish(Status::Ok());
}

Server::Server(event_base* base, ServerOptions options)
    : base_(base), options_(std::move(options)) {
  reap_ = event_new(base_, -1, 0, onReap, this);
}

Server::~Server() {
  if (listener_ != nullptr) {
    evconnlistener_free(listener_);
  }
  // Closing (not deleting) tells calls still held by handlers: on_cancel, and detached.
  std::set<ServerConnection*> open = connections_;
  for (ServerConnection* c : open) {
    c->close("server destroyed");
  }
  for (ServerConnection* c : dead_) {
    delete c;
  }
  event_free(reap_);
}

void Server::handleStream(const std::string& path, StreamHandler handler) {
  handlers_[path] = std::move(handler);
}

void Server::handleUnary(const std::string& path, UnaryHandler handler) {
  handlers_[path] = [handler = std::move(handler)](const std::shared_ptr<ServerCall>& call) {
    auto request = std::make_shared<std::optional<std::string>>();
    std::weak_ptr<ServerCall> weak = call;
    call->on_message = [request, weak](std::string message) {
      auto c = weak.lock();
      if (!c) {
        return;
      }
      if (request->has_value()) {
        c->finish({StatusCode::kUnimplemented, "more than one request message for a unary method"});
        return;
      }
      *request = std::move(message);
    };
    call->on_half_close = [request, weak, handler]() {
      auto c = weak.lock();
      if (!c) {
        return;
      }
      if (!request->has_value()) {
        c->finish({StatusCode::kUnimplemented, "no request message for a unary method"});
        return;
      }
      handler(c, **request);
    };
  };
}

palisade::Status Server::start() {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (options_.address.find(':') != std::string::npos) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(options_.port);
    if (inet_pton(AF_INET6, options_.address.c_str(), &in6->sin6_addr) != 1) {
      return invalidArgument("grpc server: bad address " + options_.address);
    }
    len = sizeof *in6;
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(options_.port);
    if (inet_pton(AF_INET, options_.address.c_str(), &in->sin_addr) != 1) {
      return invalidArgument("grpc server: bad address " + options_.address);
    }
    len = sizeof *in;
  }
  listener_ =
      evconnlistener_new_bind(base_, onAccept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
                              reinterpret_cast<sockaddr*>(&ss), static_cast<int>(len));
  if (listener_ == nullptr) {
    return Error{ErrorCode::kIo, "grpc server: cannot listen on " + options_.address + ":" +
                                     std::to_string(options_.port) + ": " + std::strerror(errno)};
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(evconnlistener_get_fd(listener_), reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return Ok{};
}

void Server::shutdown() {
  if (listener_ != nullptr) {
    evconnlistener_free(listener_);
    listener_ = nullptr;
  }
  for (ServerConnection* c : connections_) {
    c->goAway();
  }
}

void Server::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* arg) {
  auto* s = static_cast<Server*>(arg);
  if (s->connections_.size() >= s->options_.max_connections) {
    PALISADE_LOG(kWarning, "grpc", "connection limit reached; refusing " + addressText(addr));
    evutil_closesocket(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bufferevent* bev = nullptr;
  SSL* ssl = nullptr;
  if (s->options_.tls) {
    std::shared_ptr<const TlsContext> ctx = s->options_.tls();
    if (ctx == nullptr) {
      evutil_closesocket(fd);
      return;
    }
    ssl = ctx->newSsl().release();
    bev = bufferevent_openssl_socket_new(s->base_, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev = bufferevent_socket_new(s->base_, fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  auto* c = new ServerConnection(*s, s->options_.limits);
  s->connections_.insert(c);
  c->begin(bev, ssl, addressText(addr));
}

void Server::dispatch(const std::shared_ptr<ServerCall>& call) {
  auto it = handlers_.find(call->method());
  if (it == handlers_.end()) {
    call->finish({StatusCode::kUnimplemented, "unknown method " + call->method()});
    return;
  }
  it->second(call);
}

void Server::closed(ServerConnection* c) {
  connections_.erase(c);
  dead_.push_back(c);
  event_active(reap_, EV_TIMEOUT, 0);
}

void Server::onReap(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Server*>(arg);
  for (ServerConnection* c : s->dead_) {
    delete c;
  }
  s->dead_.clear();
}

}  // namespace palisade::common::grpc
