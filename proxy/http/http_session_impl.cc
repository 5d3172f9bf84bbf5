#include "proxy/http/http_session_impl.h"
#include "proxy/dispatcher.h"

#include <event2/buffer.h>

#include <algorithm>
#include <string>

#include "proxy/http/http1_server_codec.h"
#include "proxy/http/http2_server_codec.h"

namespace palisade::proxy::http {

namespace {

constexpr std::string_view kDeniedBody = "RBAC: access denied";
constexpr std::string_view kUpstreamConnectError = "upstream connect error";
constexpr std::string_view kUpstreamTimeout = "upstream request timeout";  // Envoy's words
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcPermissionDenied = 7;
constexpr int kGrpcUnavailable = 14;
constexpr int kGrpcInternal = 13;

// "grpc-message ... Percent-Encoded": bytes outside 0x20-0x7E, and '%', become %XX
// (gRPC over HTTP2, "Responses").
void percentEncode(std::string_view in, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.clear();
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

std::string_view statusText(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 405:
      return "method not allowed";
    case 431:
      return "request header fields too large";
    default:
      return "";
  }
}

}  // namespace

HttpSession* HttpSession::start(event_base* base, bufferevent* downstream, SessionOptions options) {
  auto* session = new HttpSessionImpl(base, downstream, std::move(options));
  session->begin();
  return session;
}

HttpSessionImpl::HttpSessionImpl(event_base* base, bufferevent* downstream, SessionOptions options)
    : base_(base), downstream_(downstream), options_(std::move(options)) {
  idle_timer_ = evtimer_new(base_, onIdle, this);
}

HttpSessionImpl::~HttpSessionImpl() {
  codec_.reset();
  h1_.clear();
  h2_.clear();
  dead_upstreams_.clear();
  if (downstream_ != nullptr) {
    bufferevent_free(downstream_);
  }
  event_free(idle_timer_);
}

void HttpSessionImpl::begin() {
  CallbackScope scope(static_cast<ServerCodecCallbacks&>(*this));
  if (options_.downstream == Codec::kHttp2) {
    codec_ = std::make_unique<Http2ServerCodec>(downstream_, *this, options_.limits);
  } else {
    codec_ = std::make_unique<Http1ServerCodec>(downstream_, *this, options_.limits);
  }
  codec_->start();
}

void HttpSessionImpl::drain() {
  CallbackScope scope(static_cast<ServerCodecCallbacks&>(*this));
  if (!closing_) {
    codec_->drain();
  }
}

void HttpSessionImpl::abort() {
  CallbackScope scope(static_cast<ServerCodecCallbacks&>(*this));
  closeAll();
}

void HttpSessionImpl::closeAll() {
  if (closing_) {
    return;
  }
  closing_ = true;
  // Pooled streams belong to connections other sessions share: reset only ours.
  for (auto& ex : exchanges_) {
    if (options_.upstream_provider != nullptr && ex->upstream != nullptr) {
      UpstreamRequest* up = ex->upstream;
      ex->upstream = nullptr;
      up->cancel();
    }
  }
  codec_->close();
  for (auto& u : h1_) {
    u->close();
  }
  for (auto& u : h2_) {
    u->close();
  }
}

void HttpSessionImpl::leave() {
  if (depth_ == 1 && !closing_) {
    // HTTP/2 output submitted inside callbacks goes out now; a flush can restart a paused
    // side, which can submit more, so repeat a few times.
    for (int round = 0; round < 64 && !closing_; ++round) {
      bool any = false;
      if (codec_->wantsFlush()) {
        codec_->flush();
        any = true;
      }
      flush_list_.clear();
      for (auto& u : h2_) {
        flush_list_.push_back(u.get());
      }
      for (Http2Upstream* u : flush_list_) {
        if (u->wantsFlush()) {
          u->flush();
          any = true;
        }
      }
      if (!any) {
        break;
      }
    }
    sampleBuffers();
  }
  if (--depth_ != 0) {
    return;
  }
  dead_upstreams_.clear();
  for (auto& ex : done_) {
    ex->reset();
    free_.push_back(std::move(ex));
  }
  done_.clear();
  if (closing_) {
    // on_closed runs exactly once, right before the session is freed.
    std::function<void()> on_closed = std::move(options_.on_closed);
    ++depth_;  // whatever on_closed calls on us is a no-op now
    if (on_closed) {
      on_closed();
    }
    delete this;
    return;
  }
  bool idle = exchanges_.empty();
  if (idle) {
    timeval tv = toTimeval(options_.limits.idle_timeout);
    evtimer_add(idle_timer_, &tv);  // re-armed by any activity
    idle_armed_ = true;
  } else if (idle_armed_) {
    evtimer_del(idle_timer_);
    idle_armed_ = false;
  }
}

void HttpSessionImpl::onIdle(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<HttpSessionImpl*>(arg);
  CallbackScope scope(static_cast<ServerCodecCallbacks&>(*s));
  s->idle_armed_ = false;
  if (!s->closing_ && s->exchanges_.empty()) {
    s->codec_->drain();  // HTTP/2: GOAWAY then close; HTTP/1.1: close
  }
}

std::size_t HttpSessionImpl::bufferedBytes() const {
  std::size_t n = codec_->bufferedBytes();
  for (const auto& u : h1_) {
    n += u->bufferedBytes();
  }
  for (const auto& u : h2_) {
    n += u->bufferedBytes();
  }
  return n;
}

void HttpSessionImpl::sampleBuffers() {
  // Summing every upstream connection after every event costs O(connections) per event: with
  // many connections to the app, sample one event in 16 (the peak is then approximate).
  if (h1_.size() + h2_.size() > 4 && (samples_++ & 15) != 0) {
    return;
  }
  stats_.buffered_bytes = bufferedBytes();
  stats_.peak_buffered_bytes = std::max(stats_.peak_buffered_bytes, stats_.buffered_bytes);
}

Exchange* HttpSessionImpl::newExchange(std::int32_t stream_id) {
  std::unique_ptr<Exchange> ex;
  if (!free_.empty()) {
    ex = std::move(free_.back());
    free_.pop_back();
  } else {
    ex = std::make_unique<Exchange>();
  }
  ex->stream_id = stream_id;
  ex->slot = exchanges_.size();
  exchanges_.push_back(std::move(ex));
  stats_.active_streams = exchanges_.size();
  return exchanges_.back().get();
}

void HttpSessionImpl::onExchangeDone(Exchange& ex) {
  disarmTimeout(ex);
  if (ex.upstream != nullptr) {
    UpstreamRequest* up = ex.upstream;
    ex.upstream = nullptr;
    if (!closing_) {
      up->cancel();
    }
  }
  // Swap with the last one: constant time whatever the streams in flight.
  const std::size_t slot = ex.slot;
  if (slot < exchanges_.size() && exchanges_[slot].get() == &ex) {
    done_.push_back(std::move(exchanges_[slot]));
    if (slot + 1 != exchanges_.size()) {
      exchanges_[slot] = std::move(exchanges_.back());
      exchanges_[slot]->slot = slot;
    }
    exchanges_.pop_back();
  }
  stats_.active_streams = exchanges_.size();
}

void HttpSessionImpl::onDownstreamClosed() { closeAll(); }

policy::RequestView HttpSessionImpl::buildView(Exchange& ex) {
  const RequestHead& r = ex.request;
  policy::RequestView view = options_.connection;
  view.protocol = policy::Protocol::kHttp;
  view.host = r.authority;
  view.method = r.method;
  view.path = r.path;
  // "A recipient MAY combine multiple field lines within a field section that have the
  // same field name into one field line ... by appending each subsequent field line value
  // to the initial field line value in order, separated by a comma" (RFC 9110 section 5.3).
  // `joined` is reserved up front so the views into it stay valid.
  ex.views.clear();
  ex.joined.clear();
  std::size_t total = 0;
  for (const Header& h : r.headers) {
    total += h.value.size() + 1;
  }
  ex.joined.reserve(total);
  const std::size_t n = r.headers.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Header& h = r.headers[i];
    bool seen = false;
    for (std::size_t k = 0; k < i && !seen; ++k) {
      seen = r.headers[k].name == h.name;
    }
    if (seen) {
      continue;
    }
    std::size_t start = ex.joined.size();
    bool repeated = false;
    for (std::size_t j = i + 1; j < n; ++j) {
      if (r.headers[j].name != h.name) {
        continue;
      }
      if (!repeated) {
        ex.joined.append(h.value);
        repeated = true;
      }
      ex.joined.push_back(',');
      ex.joined.append(r.headers[j].value);
    }
    if (repeated) {
      ex.views.push_back(
          {h.name, std::string_view(ex.joined.data() + start, ex.joined.size() - start)});
    } else {
      ex.views.push_back({h.name, h.value});
    }
  }
  view.headers = ex.views;
  return view;
}

void HttpSessionImpl::onRequestHead(Exchange& ex, bool end_stream) {
  if (closing_) {
    return;
  }
  ++stats_.requests;
  if (ex.reject_status != 0) {
    localReply(ex, ex.reject_status, statusText(ex.reject_status), kGrpcInternal, nullptr);
    return;
  }
  RequestHead& r = ex.request;
  // The path policies see is the path the app gets (Istio's normalization).
  if (options_.path_normalization != policy::PathNormalization::kNone) {
    if (!policy::normalizePath(r.path, options_.path_normalization, normalized_path_)) {
      localReply(ex, 400, statusText(400), kGrpcInternal, nullptr);
      return;
    }
    r.path.swap(normalized_path_);
  }
  // Headers the peer may not set (its own XFCC) go before authorization looks, so a policy
  // never matches a forged value.
  for (const std::string& name : options_.strip_headers) {
    r.headers.remove(name);
  }
  AuthzOutcome outcome;
  if (options_.authorize) {
    outcome = options_.authorize(buildView(ex));
  }
  if (closing_) {
    return;
  }
  if (!outcome.allowed) {
    ++stats_.denied;
    denyReply(ex, outcome.denied_reason);
    return;
  }
  for (const auto& [name, value] : options_.add_headers) {
    r.headers.add(name, value);
  }
  if (r.expect_continue && !end_stream) {
    // Like Envoy, the proxy answers `Expect: 100-continue` itself once the request is
    // allowed; the app sees the body without the expectation.
    codec_->sendContinue(ex);
  }
  UpstreamRequest* up = upstreamFor(ex);
  if (up == nullptr) {
    localReply(ex, 503, ex.failure_reason.empty() ? kUpstreamConnectError : ex.failure_reason,
               kGrpcUnavailable, nullptr);
    return;
  }
  ex.upstream = up;
  ex.attempts = 1;
  ex.bodyless = end_stream;
  armTimeout(ex);
  up->sendHead(ex, end_stream);
}

void HttpSessionImpl::armTimeout(Exchange& ex) {
  if (options_.request_timeout.count() <= 0 || options_.upstream_provider == nullptr) {
    return;
  }
  if (ex.timer == nullptr) {
    ex.timer = evtimer_new(base_, onRequestTimeout, &ex);
  }
  ex.session = this;
  timeval tv = toTimeval(options_.request_timeout);
  evtimer_add(ex.timer, &tv);
}

void HttpSessionImpl::disarmTimeout(Exchange& ex) {
  if (ex.timer != nullptr) {
    evtimer_del(ex.timer);
  }
}

void HttpSessionImpl::onRequestTimeout(evutil_socket_t, short, void* arg) {
  auto& ex = *static_cast<Exchange*>(arg);
  auto* s = static_cast<HttpSessionImpl*>(ex.session);
  CallbackScope scope(static_cast<ServerCodecCallbacks&>(*s));
  if (s->closing_ || ex.upstream == nullptr) {
    return;  // the response is complete, or the exchange is gone
  }
  UpstreamRequest* up = ex.upstream;
  ex.upstream = nullptr;
  up->cancel();
  if (s->options_.on_request_timeout) {
    s->options_.on_request_timeout();
  }
  if (!ex.response_started) {
    s->localReply(ex, 504, kUpstreamTimeout, kGrpcDeadlineExceeded, nullptr);
  } else {
    s->codec_->resetStream(ex);
  }
}

UpstreamRequest* HttpSessionImpl::upstreamFor(Exchange& ex) {
  if (options_.upstream_provider != nullptr) {
    return options_.upstream_provider->newStream(ex, *this);
  }
  if (options_.upstream == Codec::kHttp2) {
    if (h2_.empty() || !h2_.back()->usable()) {
      h2_.push_back(std::make_unique<Http2Upstream>(base_, *this, options_));
      h2_.back()->connect();
    }
    return h2_.back()->newStream(ex, *this);
  }
  while (!idle_h1_.empty()) {
    Http1Upstream* u = idle_h1_.back();
    idle_h1_.pop_back();
    if (u->idle()) {
      u->attach(ex);
      return u;
    }
  }
  h1_.push_back(std::make_unique<Http1Upstream>(base_, *this, options_));
  Http1Upstream* u = h1_.back().get();
  u->attach(ex);
  u->connect();
  return u;
}

void HttpSessionImpl::denyReply(Exchange& ex, const std::string& reason) {
  localReply(ex, 403, kDeniedBody, kGrpcPermissionDenied, reason.empty() ? nullptr : &reason);
}

void HttpSessionImpl::localReply(Exchange& ex, int status, std::string_view body, int grpc_status,
                                 const std::string* denied_reason) {
  ex.local_reply = true;
  ResponseHead& h = ex.response;
  h.clear();
  if (ex.request.grpc) {
    // Trailers-only: one HEADERS frame with the status, as Envoy's local replies to gRPC.
    std::string message;
    percentEncode(body, message);
    h.status = 200;
    h.headers.add("content-type", "application/grpc");
    h.headers.add("grpc-status", std::to_string(grpc_status));
    h.headers.add("grpc-message", message);
    if (denied_reason != nullptr) {
      h.headers.add("x-palisade-denied-reason", *denied_reason);
    }
    codec_->sendHead(ex, h, true);
    return;
  }
  h.status = status;
  h.headers.add("content-type", "text/plain");
  h.headers.add("content-length", std::to_string(body.size()));
  if (denied_reason != nullptr) {
    h.headers.add("x-palisade-denied-reason", *denied_reason);
  }
  if (body.empty()) {
    codec_->sendHead(ex, h, true);
    return;
  }
  codec_->sendHead(ex, h, false);
  codec_->sendData(ex, reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
  codec_->sendEnd(ex);
}

bool HttpSessionImpl::onRequestData(Exchange& ex, const std::uint8_t* data, std::size_t len) {
  if (closing_ || ex.local_reply || ex.upstream == nullptr) {
    return true;  // discarded
  }
  return ex.upstream->sendData(data, len);
}

void HttpSessionImpl::onRequestEnd(Exchange& ex) {
  if (!closing_ && !ex.local_reply && ex.upstream != nullptr) {
    ex.upstream->sendEnd();
  }
}

void HttpSessionImpl::onResponseDrained(Exchange& ex) {
  if (!closing_ && ex.response_paused && ex.upstream != nullptr) {
    ex.response_paused = false;
    ex.upstream->pauseResponse(false);
  }
}

void HttpSessionImpl::onUpstreamHead(Exchange& ex, bool end_stream) {
  if (closing_) {
    return;
  }
  if (end_stream) {
    noteIdle(ex);
    ex.upstream = nullptr;
    disarmTimeout(ex);
  }
  codec_->sendHead(ex, ex.response, end_stream);
}

void HttpSessionImpl::onUpstreamData(Exchange& ex, const std::uint8_t* data, std::size_t len) {
  if (closing_) {
    return;
  }
  codec_->sendData(ex, data, len);
  if (!ex.response_paused && ex.upstream != nullptr &&
      codec_->bufferedResponseBytes(ex) > options_.limits.buffer_limit) {
    ex.response_paused = true;
    ex.upstream->pauseResponse(true);
  }
}

void HttpSessionImpl::onUpstreamEnd(Exchange& ex) {
  noteIdle(ex);
  ex.upstream = nullptr;
  disarmTimeout(ex);
  if (!closing_) {
    codec_->sendEnd(ex);
  }
}

void HttpSessionImpl::onUpstreamFailed(Exchange& ex, UpstreamFailure failure) {
  ex.upstream = nullptr;
  if (closing_) {
    return;
  }
  if (failure == UpstreamFailure::kOverflow) {
    disarmTimeout(ex);
    localReply(ex, 503, ex.failure_reason, kGrpcUnavailable, nullptr);
    return;
  }
  if (failure == UpstreamFailure::kRefused && options_.upstream_provider != nullptr &&
      ex.bodyless && !ex.response_started && ex.attempts < options_.max_attempts) {
    // Never reached the app and nothing to replay but the head: ask for another stream
    // (the provider may pick another endpoint).
    ++ex.attempts;
    if (UpstreamRequest* up = options_.upstream_provider->newStream(ex, *this)) {
      ex.upstream = up;
      up->sendHead(ex, true);
      return;
    }
  }
  disarmTimeout(ex);
  if (!ex.response_started && failure != UpstreamFailure::kReset) {
    localReply(ex, 503, ex.failure_reason.empty() ? kUpstreamConnectError : ex.failure_reason,
               kGrpcUnavailable, nullptr);
  } else {
    codec_->resetStream(ex);
  }
}

void HttpSessionImpl::onUpstreamWritable(Exchange& ex) {
  if (!closing_) {
    codec_->resumeRequest(ex);
  }
}

void HttpSessionImpl::noteIdle(Exchange& ex) {
  // An HTTP/1.1 connection to the app is free for the next request once its response ended
  // (the exchange's upstream is then the connection itself).
  if (options_.upstream_provider == nullptr && options_.upstream == Codec::kHttp1 &&
      ex.upstream != nullptr) {
    idle_h1_.push_back(static_cast<Http1Upstream*>(ex.upstream));
  }
}

void HttpSessionImpl::onUpstreamClosed(UpstreamConnection* connection) {
  std::erase(idle_h1_, connection);
  for (auto it = h1_.begin(); it != h1_.end(); ++it) {
    if (it->get() == connection) {
      dead_upstreams_.push_back(std::move(*it));
      h1_.erase(it);
      return;
    }
  }
  for (auto it = h2_.begin(); it != h2_.end(); ++it) {
    if (it->get() == connection) {
      dead_upstreams_.push_back(std::move(*it));
      h2_.erase(it);
      return;
    }
  }
}

}  // namespace palisade::proxy::http
