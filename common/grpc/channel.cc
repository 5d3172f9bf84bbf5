#include "common/grpc/channel.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <map>

namespace palisade::common::grpc {

namespace {

bool isIpLiteral(const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

}  // namespace

class ClientConnection final : public Connection {
 public:
  ClientConnection(Channel& channel, const ConnectionLimits& limits)
      : Connection(channel.base_, Role::kClient, limits), channel_(channel), limits_(limits) {}

  void begin(bufferevent* bev, SSL* ssl, std::string peer) {
    attach(bev, ssl, std::move(peer), false);
  }

  void add(const std::shared_ptr<ClientCall>& call) {
    call->connection_ = this;
    call->reader_ = MessageReader(limits_.max_message);
    if (ready()) {
      submit(call);
    } else {
      waiting_.push_back(call);
    }
  }

  void send(ClientCall& call, std::string_view framed, bool end) {
    if (call.stream_id_ < 0) {
      call.pending_.append(framed);
      return;
    }
    queue(call.stream_id_, out_[call.stream_id_], framed, end);
  }

  // Returns the queue's reference to `call`: the caller keeps it until it is done with the call.
  std::shared_ptr<ClientCall> cancel(ClientCall& call) {
    if (call.stream_id_ >= 0 && session() != nullptr) {
      nghttp2_submit_rst_stream(session(), NGHTTP2_FLAG_NONE, call.stream_id_, NGHTTP2_CANCEL);
      scheduleFlush();
    }
    std::shared_ptr<ClientCall> keep;
    std::erase_if(waiting_, [&](const std::shared_ptr<ClientCall>& c) {
      if (c.get() == &call) {
        keep = c;
        return true;
      }
      return false;
    });
    return keep;
  }

 protected:
  void onReady() override {
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& call : waiting) {
      if (!call->done_) {
        submit(call);
      }
    }
  }

  bool hasCalls() const override { return !calls_.empty() || !waiting_.empty(); }

  Outgoing* outgoing(std::int32_t stream_id) override {
    auto it = out_.find(stream_id);
    return it == out_.end() ? nullptr : &it->second;
  }

  void onBeginHeaders(std::int32_t) override {}

  bool onHeader(std::int32_t stream_id, std::string_view name, std::string_view value) override {
    ClientCall* call = find(stream_id);
    if (call == nullptr) {
      return true;
    }
    if (name == ":status") {
      int status = 0;
      for (char c : value) {
        status = status * 10 + (c - '0');
      }
      call->http_status_ = status;
      return true;
    }
    if (name == "grpc-status") {
      int code = 0;
      for (char c : value) {
        if (c < '0' || c > '9') {
          code = static_cast<int>(StatusCode::kUnknown);
          break;
        }
        code = code * 10 + (c - '0');
      }
      call->grpc_status_ = code;
    } else if (name == "grpc-message") {
      call->grpc_message_ = percentDecode(value);
    }
    call->metadata_.emplace_back(name, value);
    return true;
  }

  void onHeadersDone(std::int32_t, bool) override {}

  void onData(std::int32_t stream_id, const std::uint8_t* data, std::size_t len) override {
    auto it = calls_.find(stream_id);
    if (it == calls_.end() || it->second->done_) {
      return;
    }
    std::shared_ptr<ClientCall> call = it->second;
    Status st = deliverMessages(call->reader_, data, len, call->done_, call->on_message);
    if (!st.ok()) {
      nghttp2_submit_rst_stream(session(), NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
      call->complete(st);
    }
  }

  // The server's END_STREAM ends the call, whether or not our side is still open.
  void onEndStream(std::int32_t stream_id) override {
    auto it = calls_.find(stream_id);
    if (it == calls_.end() || it->second->done_) {
      return;
    }
    std::shared_ptr<ClientCall> call = it->second;
    call->complete(statusOf(*call, NGHTTP2_NO_ERROR));
    if (nghttp2_session_get_stream_local_close(session(), stream_id) == 0) {
      nghttp2_submit_rst_stream(session(), NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
    }
  }

  static Status statusOf(const ClientCall& call, std::uint32_t error_code) {
    if (call.grpc_status_) {
      return {static_cast<StatusCode>(*call.grpc_status_), call.grpc_message_};
    }
    if (call.http_status_ != 0 && call.http_status_ != 200) {
      return {statusFromHttp(call.http_status_),
              "HTTP status " + std::to_string(call.http_status_) + " without grpc-status"};
    }
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      return {StatusCode::kUnavailable, "the server refused the stream"};
    }
    if (error_code == NGHTTP2_CANCEL) {
      return {StatusCode::kCancelled, "the server cancelled the stream"};
    }
    if (error_code != NGHTTP2_NO_ERROR) {
      return {StatusCode::kInternal,
              std::string("stream reset: ") + nghttp2_http2_strerror(error_code)};
    }
    return {StatusCode::kInternal, "the server ended the stream without a grpc-status"};
  }

  void onStreamClose(std::int32_t stream_id, std::uint32_t error_code) override {
    out_.erase(stream_id);
    auto it = calls_.find(stream_id);
    if (it == calls_.end()) {
      return;
    }
    std::shared_ptr<ClientCall> call = std::move(it->second);
    calls_.erase(it);
    call->connection_ = nullptr;
    if (call->done_) {
      return;
    }
    Status st;
    if (call->grpc_status_) {
      st = {static_cast<StatusCode>(*call->grpc_status_), call->grpc_message_};
    } else if (call->http_status_ != 0 && call->http_status_ != 200) {
      st = {statusFromHttp(call->http_status_),
            "HTTP status " + std::to_string(call->http_status_) + " without grpc-status"};
    } else if (error_code == NGHTTP2_REFUSED_STREAM) {
      st = {StatusCode::kUnavailable, "the server refused the stream"};
    } else if (error_code == NGHTTP2_CANCEL) {
      st = {StatusCode::kCancelled, "the server cancelled the stream"};
    } else if (error_code != NGHTTP2_NO_ERROR) {
      st = {StatusCode::kInternal,
            std::string("stream reset: ") + nghttp2_http2_strerror(error_code)};
    } else {
      st = {StatusCode::kInternal, "the server ended the stream without a grpc-status"};
    }
    call->complete(st);
  }

  void onClosed(const std::string& reason) override {
    std::vector<std::shared_ptr<ClientCall>> all = std::move(waiting_);
    waiting_.clear();
    for (auto& [id, call] : calls_) {
      all.push_back(call);
    }
    calls_.clear();
    out_.clear();
    for (auto& call : all) {
      call->connection_ = nullptr;
      if (!call->done_) {
        call->complete({StatusCode::kUnavailable, reason});
      }
    }
    channel_.closed(this, reason);
  }

 private:
  ClientCall* find(std::int32_t stream_id) {
    auto it = calls_.find(stream_id);
    return it == calls_.end() ? nullptr : it->second.get();
  }

  void submit(const std::shared_ptr<ClientCall>& call) {
    const ChannelOptions& o = channel_.options_;
    std::string authority =
        o.authority.empty() ? o.host + ":" + std::to_string(o.port) : o.authority;
    std::string timeout = call->timeout_ ? formatTimeout(*call->timeout_) : std::string();
    std::vector<nghttp2_nv> nva = {
        headerField(":method", "POST"),
        headerField(":scheme", o.tls ? "https" : "http"),
        headerField(":path", call->path_),
        headerField(":authority", authority),
        headerField("te", "trailers"),
        headerField("content-type", "application/grpc"),
        headerField("user-agent", "palisade-grpc"),
    };
    if (!timeout.empty()) {
      nva.push_back(headerField("grpc-timeout", timeout));
    }
    for (auto& [k, v] : call->request_metadata_) {
      nva.push_back(headerField(k, v));
    }
    nghttp2_data_provider p = dataProvider();
    std::int32_t id =
        nghttp2_submit_request(session(), nullptr, nva.data(), nva.size(), &p, nullptr);
    if (id < 0) {
      call->connection_ = nullptr;
      call->complete({StatusCode::kUnavailable,
                      std::string("cannot start a stream: ") + nghttp2_strerror(id)});
      return;
    }
    call->stream_id_ = id;
    calls_[id] = call;
    Outgoing& out = out_[id];
    out.buf = std::move(call->pending_);
    call->pending_.clear();
    out.end = call->send_closed_;
    scheduleFlush();
  }

  Channel& channel_;
  ConnectionLimits limits_;
  std::vector<std::shared_ptr<ClientCall>> waiting_;
  std::map<std::int32_t, std::shared_ptr<ClientCall>> calls_;
  std::map<std::int32_t, Outgoing> out_;
};

ClientCall::ClientCall(event_base* base, std::string path) : path_(std::move(path)) {
  deadline_timer_ = evtimer_new(base, onDeadline, this);
}

ClientCall::~ClientCall() { event_free(deadline_timer_); }

void ClientCall::send(std::string_view message) {
  if (done_ || send_closed_) {
    return;
  }
  std::string framed;
  framed.reserve(message.size() + 5);
  appendMessage(framed, message);
  if (connection_ != nullptr) {
    connection_->send(*this, framed, false);
  } else {
    pending_.append(framed);
  }
}

void ClientCall::closeSend() {
  if (done_ || send_closed_) {
    return;
  }
  send_closed_ = true;
  if (connection_ != nullptr && stream_id_ >= 0) {
    connection_->send(*this, {}, true);
  }
}

void ClientCall::cancel() {
  if (done_) {
    return;
  }
  if (connection_ != nullptr) {
    connection_->cancel(*this);
  }
  complete({StatusCode::kCancelled, "cancelled by the client"});
}

void ClientCall::complete(const Status& status) {
  if (done_) {
    return;
  }
  done_ = true;
  evtimer_del(deadline_timer_);
  on_message = nullptr;
  auto cb = std::move(on_finish);
  on_finish = nullptr;
  if (cb) {
    cb(status);
  }
}

void ClientCall::onDeadline(evutil_socket_t, short, void* arg) {
  auto* call = static_cast<ClientCall*>(arg);
  if (call->done_) {
    return;
  }
  std::shared_ptr<ClientCall> keep;  // may be the last reference to the call
  if (call->connection_ != nullptr) {
    keep = call->connection_->cancel(*call);
  }
  call->complete({StatusCode::kDeadlineExceeded, "deadline exceeded"});
}

Channel::Channel(event_base* base, ChannelOptions options)
    : base_(base), options_(std::move(options)) {
  reap_ = event_new(base_, -1, 0, onReap, this);
}

Channel::~Channel() {
  if (connection_ != nullptr) {
    ClientConnection* c = connection_;
    c->close("channel destroyed");
  }
  for (ClientConnection* c : dead_) {
    delete c;
  }
  event_free(reap_);
}

bool Channel::connected() const { return connection_ != nullptr && connection_->ready(); }

const PeerIdentity* Channel::serverIdentity() const {
  if (connection_ == nullptr || connection_->ssl() == nullptr || !connection_->ready()) {
    return nullptr;
  }
  return peerIdentity(connection_->ssl());
}

void Channel::close() {
  if (connection_ != nullptr) {
    connection_->close("closed by the client");
  }
}

void Channel::connect() {
  auto* c = new ClientConnection(*this, options_.limits);
  connection_ = c;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(options_.port);
  int rc = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    c->close("cannot resolve " + options_.host + ": " + gai_strerror(rc));
    return;
  }
  bufferevent* bev = nullptr;
  SSL* ssl = nullptr;
  if (options_.tls) {
    std::shared_ptr<const TlsContext> ctx = options_.tls();
    if (ctx == nullptr) {
      freeaddrinfo(res);
      c->close("no TLS context");
      return;
    }
    ssl = ctx->newSsl(options_.server_ids).release();
    std::string sni = options_.authority.empty() ? options_.host : options_.authority;
    if (auto colon = sni.rfind(':'); colon != std::string::npos &&
                                     sni.find(']') == std::string::npos && sni.find(':') == colon) {
      sni.resize(colon);
    }
    if (!isIpLiteral(sni)) {
      SSL_set_tlsext_host_name(ssl, sni.c_str());
    }
    bev = bufferevent_openssl_socket_new(base_, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
  }
  std::string peer = options_.host + ":" + port;
  c->begin(bev, ssl, peer);
  if (bufferevent_socket_connect(bev, res->ai_addr, static_cast<int>(res->ai_addrlen)) != 0) {
    freeaddrinfo(res);
    c->close("cannot connect to " + peer);
    return;
  }
  freeaddrinfo(res);
}

std::shared_ptr<ClientCall> Channel::start(
    const std::string& path, std::optional<std::chrono::nanoseconds> timeout,
    std::vector<std::pair<std::string, std::string>> metadata) {
  auto call = std::make_shared<ClientCall>(base_, path);
  call->timeout_ = timeout;
  call->request_metadata_ = std::move(metadata);
  if (timeout) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(*timeout).count();
    timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
    evtimer_add(call->deadline_timer_, &tv);
  }
  if (connection_ == nullptr || connection_->closed()) {
    connect();
  }
  if (connection_ == nullptr) {
    // connect() failed at once: report from the loop, after the caller set its callbacks.
    auto weak = std::weak_ptr<ClientCall>(call);
    std::string reason = last_error_;
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* arg) {
          auto* holder = static_cast<std::pair<std::shared_ptr<ClientCall>, std::string>*>(arg);
          holder->first->complete({StatusCode::kUnavailable, holder->second});
          delete holder;
        },
        new std::pair<std::shared_ptr<ClientCall>, std::string>(call, reason), nullptr);
    return call;
  }
  connection_->add(call);
  return call;
}

std::shared_ptr<ClientCall> Channel::unary(const std::string& path, std::string_view request,
                                           std::optional<std::chrono::nanoseconds> timeout,
                                           UnaryDone done) {
  auto call = start(path, timeout);
  auto response = std::make_shared<std::optional<std::string>>();
  call->on_message = [response](std::string message) {
    if (!response->has_value()) {
      *response = std::move(message);
    }
  };
  call->on_finish = [response, done = std::move(done)](const Status& status) {
    if (status.ok() && !response->has_value()) {
      done({StatusCode::kInternal, "no response message for a unary call"}, {});
      return;
    }
    done(status, response->has_value() ? std::move(**response) : std::string());
  };
  call->send(request);
  call->closeSend();
  return call;
}

void Channel::closed(ClientConnection* c, const std::string& reason) {
  last_error_ = reason;
  if (connection_ == c) {
    connection_ = nullptr;
  }
  dead_.push_back(c);
  event_active(reap_, EV_TIMEOUT, 0);
}

void Channel::onReap(evutil_socket_t, short, void* arg) {
  auto* ch = static_cast<Channel*>(arg);
  for (ClientConnection* c : ch->dead_) {
    delete c;
  }
  ch->dead_.clear();
}

}  // namespace palisade::common::grpc
