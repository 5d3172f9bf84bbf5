#include "proxy/http/http2_upstream.h"
#include "proxy/dispatcher.h"
#include "common/nghttp2_output.h"
#include "proxy/socket_util.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <string>

namespace palisade::proxy::http {

namespace {

nghttp2_nv makeNv(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(name.data())),
                    const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

// A request field HTTP/2 must not carry; `te` survives only as `te: trailers` (RFC 9113
// section 8.2.2), which gRPC servers require.
bool droppedForH2(const HeaderList& headers, const Header& h) {
  if (h.name == "te") {
    return !equalsLower(h.value, "trailers");
  }
  return isConnectionSpecific(headers, h.name);
}

}  // namespace

class Http2Upstream::Stream final : public UpstreamRequest {
 public:
  Stream(Http2Upstream& conn, Exchange& ex, UpstreamCallbacks& cb)
      : conn_(conn), ex_(&ex), cb_(&cb), body_(evbuffer_new()) {
    outcome_.retry = ex.attempts > 1;
  }
  ~Stream() {
    conn_.body_bytes_ -= evbuffer_get_length(body_);
    evbuffer_free(body_);
  }

  // UpstreamRequest:
  void sendHead(Exchange& ex, bool end_stream) override;
  bool sendData(const std::uint8_t* data, std::size_t len) override;
  void sendEnd() override;
  void pauseResponse(bool paused) override;
  void cancel() override;

  Http2Upstream& conn_;
  Exchange* ex_;
  UpstreamCallbacks* cb_;  // null once cancelled
  evbuffer* body_;         // request body waiting for the data provider
  std::int32_t id_ = -1;
  std::size_t unconsumed_ = 0;
  bool ended_ = false;     // the request ended (trailers in ex_->request.trailers)
  bool deferred_ = false;  // the data provider said DEFERRED
  bool blocked_ = false;   // sendData said full
  bool paused_ = false;
  bool got_final_ = false;  // a final response head arrived
  bool done_ = false;       // the end or a failure was reported, or cancelled
  bool closed_ = false;     // nghttp2 closed the stream
  StreamOutcome outcome_;   // reported to the owner when the stream closes
};

void Http2Upstream::Stream::sendHead(Exchange& ex, bool end_stream) {
  const RequestHead& r = ex.request;
  std::vector<nghttp2_nv>& nva = conn_.nva_;
  nva.clear();
  nva.push_back(makeNv(":method", r.method));
  nva.push_back(makeNv(":scheme", r.scheme.empty() ? std::string_view("http") : r.scheme));
  if (!r.authority.empty()) {
    // HTTP/1.0 without Host has none; an empty :authority is malformed (RFC 9113 8.3.1).
    nva.push_back(makeNv(":authority", r.authority));
  }
  nva.push_back(makeNv(":path", r.path.empty() ? std::string_view("/") : r.path));
  for (const Header& h : r.headers) {
    if (!droppedForH2(r.headers, h)) {
      nva.push_back(makeNv(h.name, h.value));
    }
  }
  ended_ = end_stream;
  nghttp2_data_provider provider;
  provider.source.ptr = this;
  provider.read_callback = readRequestBody;
  id_ = nghttp2_submit_request(conn_.session_, nullptr, nva.data(), nva.size(),
                               end_stream ? nullptr : &provider, this);
  conn_.markDirty();
  if (id_ < 0) {
    done_ = true;
    outcome_.failed = true;
    conn_.streamClosed(*this);
    Exchange* e = ex_;
    UpstreamCallbacks* cb = cb_;
    ex_ = nullptr;
    cb_ = nullptr;
    CallbackScope scope(*cb);
    cb->onUpstreamFailed(*e, UpstreamFailure::kConnect);
  }
}

bool Http2Upstream::Stream::sendData(const std::uint8_t* data, std::size_t len) {
  if (done_ || closed_) {
    return true;
  }
  evbuffer_add(body_, data, len);
  conn_.body_bytes_ += len;
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_.session_, id_);
  }
  conn_.markDirty();
  if (evbuffer_get_length(body_) > conn_.options_.limits.buffer_limit) {
    blocked_ = true;
    return false;
  }
  return true;
}

void Http2Upstream::Stream::sendEnd() {
  if (done_ || closed_) {
    return;
  }
  ended_ = true;
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_.session_, id_);
  }
  conn_.markDirty();
}

void Http2Upstream::Stream::pauseResponse(bool paused) {
  paused_ = paused;
  if (!paused && unconsumed_ != 0 && !closed_) {
    conn_.consume(id_, unconsumed_);
    unconsumed_ = 0;
    conn_.markDirty();
  }
}

void Http2Upstream::Stream::cancel() {
  if (!done_) {
    outcome_.cancelled = true;
  }
  ex_ = nullptr;
  cb_ = nullptr;
  done_ = true;
  if (!closed_ && id_ > 0) {
    nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    conn_.markDirty();
  }
}

Http2Upstream::Http2Upstream(event_base* base, UpstreamConnectionOwner& owner,
                             const SessionOptions& options)
    : base_(base), owner_(owner), options_(options) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunkRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nva_.reserve(32);
}

Http2Upstream::~Http2Upstream() {
  close();
  if (flush_event_ != nullptr) {
    event_free(flush_event_);
  }
  nghttp2_session_del(session_);
}

void Http2Upstream::enablePooledMode() { flush_event_ = event_new(base_, -1, 0, onFlush, this); }

void Http2Upstream::markDirty() {
  if (flush_event_ != nullptr && !dirty_ && !closed_) {
    event_active(flush_event_, EV_TIMEOUT, 0);
  }
  dirty_ = true;
}

void Http2Upstream::onFlush(evutil_socket_t, short, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  CallbackScope scope(u->owner_);
  if (u->wantsFlush()) {
    u->flush();
  }
}

void Http2Upstream::consume(std::int32_t stream_id, std::size_t n) {
  if (flush_event_ != nullptr) {
    nghttp2_session_consume_stream(session_, stream_id, n);  // the connection's went already
  } else {
    nghttp2_session_consume(session_, stream_id, n);
  }
}

void Http2Upstream::streamClosed(Stream& s) {
  if (!s.closed_) {
    s.closed_ = true;
    --open_streams_;
    owner_.onStreamDone(this, s.outcome_);
  }
  ++finished_;
}

std::size_t Http2Upstream::maxStreams(std::size_t local_max) const {
  std::size_t remote =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return std::min(remote, local_max);
}

void Http2Upstream::close() {
  closed_ = true;
  for (auto& s : streams_) {
    s->ex_ = nullptr;
    s->cb_ = nullptr;
    s->done_ = true;
    streamClosed(*s);
  }
  if (flush_event_ != nullptr) {
    event_del(flush_event_);
  }
  if (timer_ != nullptr) {
    event_free(timer_);
    timer_ = nullptr;
  }
  if (bev_ != nullptr) {
    bufferevent_free(bev_);
    bev_ = nullptr;
  }
}

void Http2Upstream::connect() {
  connect(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE),
          reinterpret_cast<const sockaddr*>(&options_.app_address), options_.app_address_len);
}

void Http2Upstream::connect(bufferevent* bev, const sockaddr* address, socklen_t address_len) {
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
       static_cast<std::uint32_t>(streamWindow(options_.limits.buffer_limit))},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        connectionWindow(options_.limits.buffer_limit));
  markDirty();
  timer_ = evtimer_new(base_, onTimer, this);
  bev_ = bev;
  bufferevent_setcb(bev_, onRead, onWrite, onEvent, this);
  bufferevent_setwatermark(bev_, EV_WRITE, options_.limits.buffer_limit / 2, 0);
  if (bufferevent_socket_connect(bev_, address, static_cast<int>(address_len)) != 0) {
    timeval zero{0, 0};
    evtimer_add(timer_, &zero);
    return;
  }
  timeval tv = toTimeval(options_.limits.connect_timeout);
  evtimer_add(timer_, &tv);
}

UpstreamRequest* Http2Upstream::newStream(Exchange& ex, UpstreamCallbacks& callbacks) {
  streams_.push_back(std::make_unique<Stream>(*this, ex, callbacks));
  ++open_streams_;
  ++total_streams_;
  return streams_.back().get();
}

Http2Upstream::Stream* Http2Upstream::stream(std::int32_t stream_id) const {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

void Http2Upstream::onTimer(evutil_socket_t, short, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  CallbackScope scope(u->owner_);
  if (u->event_hook_ && u->bev_ != nullptr && !u->closed_) {
    u->event_hook_(u->bev_, BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT);  // connect timed out
  }
  u->fail();
}

void Http2Upstream::fail() {
  if (closed_) {
    return;
  }
  struct Failed {
    Exchange* ex;
    UpstreamCallbacks* cb;
    bool got_final;
  };
  std::vector<Failed> failed;
  const bool never_connected = !connected_;
  for (auto& s : streams_) {
    if (!s->done_ && !s->closed_) {
      s->outcome_.failed = true;
      s->outcome_.refused = s->outcome_.never_connected = never_connected;
    }
    if (s->ex_ != nullptr && s->cb_ != nullptr && !s->done_) {
      failed.push_back({s->ex_, s->cb_, s->got_final_});
    }
  }
  close();
  // Every session in the list stays in a scope until all were told: a session that closes
  // on its first failure (HTTP/1.1 after a reset) is freed only at its outermost scope's
  // end, so its later entries (exchange and callbacks) stay valid here.
  for (const Failed& f : failed) {
    f.cb->enter();
  }
  for (const Failed& f : failed) {
    f.cb->onUpstreamFailed(*f.ex, never_connected ? UpstreamFailure::kRefused
                                  : f.got_final   ? UpstreamFailure::kReset
                                                  : UpstreamFailure::kConnect);
  }
  for (const Failed& f : failed) {
    f.cb->leave();
  }
  owner_.onUpstreamClosed(this);
}

void Http2Upstream::onEvent(bufferevent* bev, short what, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  CallbackScope scope(u->owner_);
  if (u->event_hook_ && !u->event_hook_(bev, what)) {
    u->fail();
    return;
  }
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    u->connected_ = true;
    evtimer_del(u->timer_);
    setNoDelay(bufferevent_getfd(bev));
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    u->markDirty();
    return;
  }
  u->fail();
}

void Http2Upstream::onRead(bufferevent* bev, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  CallbackScope scope(u->owner_);
  evbuffer* input = bufferevent_get_input(bev);
  while (!u->closed_ && evbuffer_get_length(input) != 0) {
    evbuffer_iovec vec;
    evbuffer_peek(input, -1, nullptr, &vec, 1);
    u->in_nghttp2_ = true;
    ssize_t n = nghttp2_session_mem_recv(
        u->session_, static_cast<const std::uint8_t*>(vec.iov_base), vec.iov_len);
    u->in_nghttp2_ = false;
    if (n < 0) {
      u->fail();
      return;
    }
    evbuffer_drain(input, static_cast<std::size_t>(n));
  }
  u->markDirty();
}

void Http2Upstream::onWrite(bufferevent*, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  CallbackScope scope(u->owner_);
  u->markDirty();
}

void Http2Upstream::flush() {
  if (in_nghttp2_ || closed_) {
    return;
  }
  dirty_ = false;
  if (!connected_) {
    return;  // CONNECTED marks the connection dirty again
  }
  if (!common::flushNghttp2(session_, bufferevent_get_output(bev_), options_.limits.buffer_limit,
                    in_nghttp2_)) {
    fail();
    return;
  }
  writable_scratch_.clear();
  writable_scratch_.swap(writable_);
  for (std::int32_t id : writable_scratch_) {
    Stream* s = stream(id);
    if (s != nullptr && s->ex_ != nullptr && s->cb_ != nullptr && !s->done_) {
      CallbackScope scope(*s->cb_);
      s->cb_->onUpstreamWritable(*s->ex_);
    }
  }
  // Finished streams are freed here, outside nghttp2's callbacks (the scan only when one
  // finished since the last flush).
  if (finished_ != 0) {
    finished_ = 0;
    std::erase_if(streams_,
                  [](const std::unique_ptr<Stream>& s) { return s->closed_ && s->done_; });
  }
  if (goaway_ && openStreams() == 0) {
    close();
    owner_.onUpstreamClosed(this);
  }
}

int Http2Upstream::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  Stream* s = u->stream(frame->hd.stream_id);
  if (s != nullptr && s->ex_ != nullptr && !s->got_final_) {
    s->ex_->response.clear();
  }
  return 0;
}

int Http2Upstream::onHeader(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                            std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                            std::uint8_t, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  Stream* s = u->stream(frame->hd.stream_id);
  if (s == nullptr || s->ex_ == nullptr) {
    return 0;
  }
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  ResponseHead& r = s->ex_->response;
  if (s->got_final_) {
    if (r.trailers.size() < u->options_.limits.max_headers) {
      r.trailers.add(n, v);
    }
    return 0;
  }
  if (n == ":status") {
    int status = 0;
    for (char c : v) {
      status = status * 10 + (c - '0');
    }
    r.status = status;
    return 0;
  }
  if (!n.empty() && n[0] == ':') {
    return 0;
  }
  if (r.headers.size() < u->options_.limits.max_headers) {
    r.headers.add(n, v);
  }
  return 0;
}

int Http2Upstream::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    u->goaway_ = true;
    return 0;
  }
  Stream* s = u->stream(frame->hd.stream_id);
  if (s == nullptr || s->ex_ == nullptr || s->cb_ == nullptr || s->done_) {
    return 0;
  }
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  Exchange& ex = *s->ex_;
  UpstreamCallbacks* cb = s->cb_;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (!s->got_final_) {
      if (ex.response.status >= 100 && ex.response.status < 200) {
        ex.response.clear();  // interim: not relayed
        return 0;
      }
      s->got_final_ = true;
      s->outcome_.status = ex.response.status;
      if (end_stream) {
        s->done_ = true;
        s->ex_ = nullptr;
        s->cb_ = nullptr;
      }
      CallbackScope scope(*cb);
      cb->onUpstreamHead(ex, end_stream);
      return 0;
    }
    if (end_stream) {  // trailers
      s->done_ = true;
      s->ex_ = nullptr;
      s->cb_ = nullptr;
      CallbackScope scope(*cb);
      cb->onUpstreamEnd(ex);
    }
    return 0;
  }
  if (frame->hd.type == NGHTTP2_DATA && end_stream) {
    s->done_ = true;
    s->ex_ = nullptr;
    s->cb_ = nullptr;
    CallbackScope scope(*cb);
    cb->onUpstreamEnd(ex);
  }
  return 0;
}

int Http2Upstream::onDataChunkRecv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                                   const std::uint8_t* data, std::size_t len, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  Stream* s = u->stream(stream_id);
  if (u->flush_event_ != nullptr) {
    nghttp2_session_consume_connection(session, len);  // pooled: see enablePooledMode
  }
  if (s == nullptr || s->ex_ == nullptr || s->cb_ == nullptr || s->done_) {
    u->consume(stream_id, len);
    return 0;
  }
  s->unconsumed_ += len;
  {
    CallbackScope scope(*s->cb_);
    s->cb_->onUpstreamData(*s->ex_, data, len);
  }
  if (s->closed_) {
    return 0;
  }
  if (!s->paused_ || s->done_) {
    u->consume(stream_id, s->unconsumed_);
    s->unconsumed_ = 0;
  }
  return 0;
}

int Http2Upstream::onStreamClose(nghttp2_session* session, std::int32_t stream_id,
                                 std::uint32_t error_code, void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  Stream* s = u->stream(stream_id);
  if (s == nullptr) {
    return 0;
  }
  if (!s->done_) {
    s->outcome_.failed = true;
    s->outcome_.refused = !s->got_final_ && error_code == NGHTTP2_REFUSED_STREAM;
  }
  u->streamClosed(*s);
  if (s->unconsumed_ != 0) {
    if (u->flush_event_ == nullptr) {
      nghttp2_session_consume_connection(session, s->unconsumed_);
    }
    s->unconsumed_ = 0;
  }
  if (s->ex_ != nullptr && s->cb_ != nullptr && !s->done_) {
    // Reset (or refused after GOAWAY) before the response ended.
    Exchange& ex = *s->ex_;
    UpstreamCallbacks* cb = s->cb_;
    s->done_ = true;
    s->ex_ = nullptr;
    s->cb_ = nullptr;
    CallbackScope scope(*cb);
    // "REFUSED_STREAM ... indicates that no application processing has occurred" (RFC 9113
    // section 8.7); nghttp2 closes streams past a GOAWAY's last stream id with it too.
    cb->onUpstreamFailed(ex, s->got_final_                          ? UpstreamFailure::kReset
                             : error_code == NGHTTP2_REFUSED_STREAM ? UpstreamFailure::kRefused
                                                                    : UpstreamFailure::kConnect);
  }
  return 0;
}

ssize_t Http2Upstream::readRequestBody(nghttp2_session* session, std::int32_t stream_id,
                                       std::uint8_t* buf, std::size_t length,
                                       std::uint32_t* data_flags, nghttp2_data_source* source,
                                       void* arg) {
  auto* u = static_cast<Http2Upstream*>(arg);
  auto* s = static_cast<Stream*>(source->ptr);
  std::size_t have = evbuffer_get_length(s->body_);
  std::size_t n = std::min(have, length);
  if (n != 0) {
    evbuffer_remove(s->body_, buf, n);
    u->body_bytes_ -= n;
    if (s->blocked_ && have - n <= u->options_.limits.buffer_limit / 2) {
      s->blocked_ = false;
      u->writable_.push_back(stream_id);
    }
  }
  if (have == n && s->ended_) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->ex_ != nullptr && !s->ex_->request.trailers.empty()) {
      std::vector<nghttp2_nv>& nva = u->nva_;
      nva.clear();
      for (const Header& h : s->ex_->request.trailers) {
        if (!droppedForH2(s->ex_->request.trailers, h)) {
          nva.push_back(makeNv(h.name, h.value));
        }
      }
      if (nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size()) == 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    s->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

std::size_t Http2Upstream::bufferedBytes() const {
  std::size_t n = 0;
  if (bev_ != nullptr) {
    n += evbuffer_get_length(bufferevent_get_output(bev_)) +
         evbuffer_get_length(bufferevent_get_input(bev_));
  }
  return n + body_bytes_;
}

}  // namespace palisade::proxy::http
