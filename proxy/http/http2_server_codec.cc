#include "proxy/http/http2_server_codec.h"
#include "common/nghttp2_output.h"

#include <event2/buffer.h>

#include <algorithm>
#include <string>

namespace palisade::proxy::http {

namespace {

nghttp2_nv makeNv(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(name.data())),
                    const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

// Response fields HTTP/2 must not carry (RFC 9113 section 8.2.2).
bool droppedForH2(const HeaderList& headers, const std::string& name) {
  return isConnectionSpecific(headers, name);
}

}  // namespace

Http2ServerCodec::Http2ServerCodec(bufferevent* bev, ServerCodecCallbacks& callbacks,
                                   const SessionLimits& limits)
    : bev_(bev), callbacks_(callbacks), limits_(limits) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunkRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Request bytes are consumed only once the upstream took them (back-pressure).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, 256 * 1024);
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nva_.reserve(32);
}

Http2ServerCodec::~Http2ServerCodec() {
  close();
  nghttp2_session_del(session_);
}

void Http2ServerCodec::start() {
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
       static_cast<std::uint32_t>(streamWindow(limits_.buffer_limit))},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(limits_.max_header_bytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        connectionWindow(limits_.buffer_limit));
  bufferevent_setcb(bev_, onRead, onWrite, onEvent, this);
  bufferevent_setwatermark(bev_, EV_WRITE, limits_.buffer_limit / 2, 0);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  markDirty();
  if (evbuffer_get_length(bufferevent_get_input(bev_)) != 0) {
    onRead(bev_, this);
  }
}

void Http2ServerCodec::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  closing_ = true;
  bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
}

Exchange* Http2ServerCodec::exchange(std::int32_t stream_id) const {
  return static_cast<Exchange*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

void Http2ServerCodec::markDirty() { dirty_ = true; }

void Http2ServerCodec::onRead(bufferevent* bev, void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  CallbackScope scope(c->callbacks_);
  if (c->closing_) {
    return;
  }
  evbuffer* input = bufferevent_get_input(bev);
  while (evbuffer_get_length(input) != 0 && !c->closing_) {
    evbuffer_iovec vec;
    evbuffer_peek(input, -1, nullptr, &vec, 1);
    c->in_nghttp2_ = true;
    ssize_t n = nghttp2_session_mem_recv(
        c->session_, static_cast<const std::uint8_t*>(vec.iov_base), vec.iov_len);
    c->in_nghttp2_ = false;
    if (n < 0) {
      // nghttp2 queued a GOAWAY where the error calls for one; send it and close.
      evbuffer_drain(input, evbuffer_get_length(input));
      c->markDirty();
      c->flush();
      c->closeAfterFlush();
      return;
    }
    evbuffer_drain(input, static_cast<std::size_t>(n));
  }
  c->markDirty();
}

void Http2ServerCodec::onWrite(bufferevent* bev, void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  CallbackScope scope(c->callbacks_);
  if (c->closing_) {
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
      c->closed();
    }
    return;
  }
  c->markDirty();
}

void Http2ServerCodec::onEvent(bufferevent*, short, void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  CallbackScope scope(c->callbacks_);
  c->closed();
}

void Http2ServerCodec::closed() {
  if (closed_) {
    return;
  }
  close();
  callbacks_.onDownstreamClosed();
}

void Http2ServerCodec::closeAfterFlush() {
  if (closing_) {
    return;
  }
  closing_ = true;
  bufferevent_disable(bev_, EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    closed();
  } else {
    bufferevent_setwatermark(bev_, EV_WRITE, 0, 0);
  }
}

void Http2ServerCodec::flush() {
  if (in_nghttp2_ || closing_) {
    return;
  }
  dirty_ = false;
  if (!common::flushNghttp2(session_, bufferevent_get_output(bev_), limits_.buffer_limit, in_nghttp2_)) {
    closeAfterFlush();
    return;
  }
  // Streams whose response buffer drained may restart their upstream, which may submit
  // more data; the session flushes again when the scope ends.
  std::vector<std::int32_t> drained;
  drained.swap(drained_);
  for (std::int32_t id : drained) {
    if (Exchange* ex = exchange(id)) {
      callbacks_.onResponseDrained(*ex);
    }
  }
  drained.clear();
  if (drained_.empty()) {
    drained_.swap(drained);  // keep the capacity
  }
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
    closeAfterFlush();
  }
}

int Http2ServerCodec::onBeginHeaders(nghttp2_session* s, const nghttp2_frame* frame, void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  Exchange* ex = c->callbacks_.newExchange(frame->hd.stream_id);
  nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, ex);
  return 0;
}

int Http2ServerCodec::onHeader(nghttp2_session*, const nghttp2_frame* frame,
                               const std::uint8_t* name, std::size_t namelen,
                               const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                               void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  Exchange* ex = c->exchange(frame->hd.stream_id);
  if (ex == nullptr || ex->reject_status != 0) {
    return 0;
  }
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  // RFC 9113 section 6.5.2: an entry's size is its name and value lengths plus 32.
  ex->header_bytes += namelen + valuelen + 32;
  if (ex->header_bytes > c->limits_.max_header_bytes) {
    ex->reject_status = 431;
    return 0;
  }
  RequestHead& r = ex->request;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    if (r.trailers.size() >= c->limits_.max_headers) {
      ex->reject_status = 431;
      return 0;
    }
    r.trailers.add(n, v);
    return 0;
  }
  if (!n.empty() && n[0] == ':') {
    if (n == ":method") {
      r.method.assign(v);
    } else if (n == ":path") {
      r.path.assign(v);
    } else if (n == ":authority") {
      r.authority.assign(v);
    } else if (n == ":scheme") {
      r.scheme.assign(v);
    } else {
      ex->reject_status = 400;  // :protocol (extended CONNECT) is not supported
    }
    return 0;
  }
  if (r.headers.size() >= c->limits_.max_headers) {
    ex->reject_status = 431;
    return 0;
  }
  r.headers.add(n, v);
  return 0;
}

int Http2ServerCodec::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  Exchange* ex = c->exchange(frame->hd.stream_id);
  if (ex == nullptr) {
    return 0;
  }
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    RequestHead& r = ex->request;
    if (const std::string* host = r.headers.find("host")) {
      if (r.authority.empty()) {
        r.authority = *host;
      }
      r.headers.remove("host");
    }
    if (const std::string* expect = r.headers.find("expect")) {
      r.expect_continue = equalsLower(*expect, "100-continue");
      r.headers.remove("expect");
    }
    if (const std::string* ct = r.headers.find("content-type")) {
      r.grpc = ct->compare(0, 16, "application/grpc") == 0;
    }
    if (r.method == "CONNECT") {
      ex->reject_status = 405;
    }
    ex->request_complete = end_stream;
    c->callbacks_.onRequestHead(*ex, end_stream);
    return 0;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end_stream &&
      !ex->request_complete) {
    ex->request_complete = true;
    c->callbacks_.onRequestEnd(*ex);
  }
  return 0;
}

int Http2ServerCodec::onDataChunkRecv(nghttp2_session* s, std::uint8_t, std::int32_t stream_id,
                                      const std::uint8_t* data, std::size_t len, void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  Exchange* ex = c->exchange(stream_id);
  if (ex == nullptr) {
    nghttp2_session_consume(s, stream_id, len);
    return 0;
  }
  ex->unconsumed += len;
  if (c->callbacks_.onRequestData(*ex, data, len)) {
    c->consume(*ex);
  }
  return 0;
}

void Http2ServerCodec::consume(Exchange& ex) {
  if (ex.unconsumed == 0) {
    return;
  }
  nghttp2_session_consume(session_, ex.stream_id, ex.unconsumed);
  ex.unconsumed = 0;
  markDirty();
}

int Http2ServerCodec::onStreamClose(nghttp2_session* s, std::int32_t stream_id, std::uint32_t,
                                    void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  Exchange* ex = c->exchange(stream_id);
  if (ex == nullptr) {
    return 0;
  }
  if (ex->unconsumed != 0) {
    // The stream is gone, the connection window still counts its bytes.
    nghttp2_session_consume_connection(s, ex->unconsumed);
    ex->unconsumed = 0;
  }
  nghttp2_session_set_stream_user_data(s, stream_id, nullptr);
  c->response_bytes_ -= evbuffer_get_length(ex->response_body);  // never sent
  c->callbacks_.onExchangeDone(*ex);
  return 0;
}

ssize_t Http2ServerCodec::readResponseBody(nghttp2_session* s, std::int32_t stream_id,
                                           std::uint8_t* buf, std::size_t length,
                                           std::uint32_t* data_flags, nghttp2_data_source* source,
                                           void* arg) {
  auto* c = static_cast<Http2ServerCodec*>(arg);
  auto* ex = static_cast<Exchange*>(source->ptr);
  std::size_t have = evbuffer_get_length(ex->response_body);
  std::size_t n = std::min(have, length);
  if (n != 0) {
    evbuffer_remove(ex->response_body, buf, n);
    c->response_bytes_ -= n;
    std::size_t low = c->limits_.buffer_limit / 2;
    if (ex->response_paused && have - n <= low) {
      c->drained_.push_back(stream_id);
    }
  }
  if (have == n && ex->response_ended) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!ex->response.trailers.empty()) {
      std::vector<nghttp2_nv>& nva = c->nva_;
      nva.clear();
      for (const Header& h : ex->response.trailers) {
        if (!droppedForH2(ex->response.trailers, h.name)) {
          nva.push_back(makeNv(h.name, h.value));
        }
      }
      if (nghttp2_submit_trailer(s, stream_id, nva.data(), nva.size()) == 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    ex->response_complete = true;
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    ex->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

void Http2ServerCodec::sendHead(Exchange& ex, const ResponseHead& head, bool end_stream) {
  if (closing_) {
    return;
  }
  std::string status = std::to_string(head.status);
  nva_.clear();
  nva_.push_back(makeNv(":status", status));
  for (const Header& h : head.headers) {
    if (!droppedForH2(head.headers, h.name)) {
      nva_.push_back(makeNv(h.name, h.value));
    }
  }
  ex.response_started = true;
  if (end_stream) {
    ex.response_complete = true;
    nghttp2_submit_response(session_, ex.stream_id, nva_.data(), nva_.size(), nullptr);
  } else {
    nghttp2_data_provider provider;
    provider.source.ptr = &ex;
    provider.read_callback = readResponseBody;
    nghttp2_submit_response(session_, ex.stream_id, nva_.data(), nva_.size(), &provider);
  }
  markDirty();
}

void Http2ServerCodec::sendData(Exchange& ex, const std::uint8_t* data, std::size_t len) {
  if (closing_ || len == 0) {
    return;
  }
  evbuffer_add(ex.response_body, data, len);
  response_bytes_ += len;
  if (ex.deferred) {
    ex.deferred = false;
    nghttp2_session_resume_data(session_, ex.stream_id);
  }
  markDirty();
}

void Http2ServerCodec::sendEnd(Exchange& ex) {
  if (closing_) {
    return;
  }
  ex.response_ended = true;
  if (ex.deferred) {
    ex.deferred = false;
    nghttp2_session_resume_data(session_, ex.stream_id);
  }
  markDirty();
}

void Http2ServerCodec::sendContinue(Exchange& ex) {
  if (closing_ || ex.response_started) {
    return;
  }
  nghttp2_nv nv = makeNv(":status", "100");
  nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, ex.stream_id, nullptr, &nv, 1, nullptr);
  markDirty();
}

void Http2ServerCodec::resetStream(Exchange& ex) {
  if (closing_) {
    return;
  }
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, ex.stream_id, NGHTTP2_INTERNAL_ERROR);
  markDirty();
}

void Http2ServerCodec::resumeRequest(Exchange& ex) {
  if (!closing_) {
    consume(ex);
  }
}

std::size_t Http2ServerCodec::bufferedResponseBytes(const Exchange& ex) const {
  return evbuffer_get_length(ex.response_body);
}

std::size_t Http2ServerCodec::bufferedBytes() const {
  return evbuffer_get_length(bufferevent_get_output(bev_)) +
         evbuffer_get_length(bufferevent_get_input(bev_)) + response_bytes_;
}

void Http2ServerCodec::drain() {
  if (draining_ || closing_) {
    return;
  }
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  markDirty();
}

}  // namespace palisade::proxy::http
