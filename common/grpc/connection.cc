#include "common/grpc/connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>

#include "common/nghttp2_output.h"
#include "common/tls_context.h"

namespace palisade::common::grpc {

namespace {

timeval toTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000),
          static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

}  // namespace

nghttp2_nv headerField(std::string_view name, std::string_view value) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}

Status deliverMessages(MessageReader& reader, const std::uint8_t* data, std::size_t len,
                       const bool& done, const std::function<void(std::string)>& on_message) {
  Status st = reader.feed(data, len);
  if (!st.ok()) {
    return st;
  }
  while (!done) {
    auto message = reader.next();
    if (!message) {
      break;
    }
    if (on_message) {
      on_message(std::move(*message));
    }
  }
  return st;
}

Connection::Connection(event_base* base, Role role, const ConnectionLimits& limits)
    : base_(base), role_(role), limits_(limits) {
  flush_event_ = event_new(base_, -1, 0, onFlushEvent, this);
  timer_ = evtimer_new(base_, onTimer, this);
}

Connection::~Connection() {
  if (bev_ != nullptr) {
    bufferevent_free(bev_);
  }
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
  }
  event_free(flush_event_);
  event_free(timer_);
}

void Connection::attach(bufferevent* bev, SSL* ssl, std::string peer_address, bool connected) {
  bev_ = bev;
  ssl_ = ssl;
  peer_address_ = std::move(peer_address);
  bufferevent_setcb(bev_, onRead, onWrite, onEvent, this);
  bufferevent_setwatermark(bev_, EV_WRITE, limits_.write_buffer_limit / 2, 0);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  timeval tv = toTimeval(limits_.handshake_timeout);
  evtimer_add(timer_, &tv);
  if (connected) {
    start();
  }
}

void Connection::start() {
  if (ssl_ != nullptr) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    if (std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) != "h2") {
      close("the peer did not negotiate ALPN h2");
      return;
    }
  }
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeadersCb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, onHeaderCb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecvCb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunkCb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamCloseCb);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, onFrameSendCb);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_max_send_header_block_length(opt, limits_.max_header_bytes + 1024);
  if (role_ == Role::kServer) {
    nghttp2_session_server_new2(&session_, cbs, this, opt);
  } else {
    nghttp2_session_client_new2(&session_, cbs, this, opt);
  }
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(limits_.max_header_bytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection's window: room for every stream's.
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(limits_.window) * 4);
  ready_ = true;
  last_read_ = std::chrono::steady_clock::now();
  armKeepalive();
  onReady();
  if (!closed_) {
    scheduleFlush();
  }
}

void Connection::armKeepalive() {
  evtimer_del(timer_);
  if (ping_outstanding_) {
    timeval tv = toTimeval(limits_.keepalive_timeout);
    evtimer_add(timer_, &tv);
  } else if (limits_.keepalive_time.count() > 0) {
    timeval tv = toTimeval(limits_.keepalive_time);
    evtimer_add(timer_, &tv);
  }
}

void Connection::onTimer(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (!c->ready_) {
    c->close("handshake timed out");
    return;
  }
  if (c->ping_outstanding_) {
    c->close("keepalive: no PING acknowledgement within " +
             std::to_string(c->limits_.keepalive_timeout.count()) + "ms");
    return;
  }
  auto idle = std::chrono::steady_clock::now() - c->last_read_;
  if (idle >= c->limits_.keepalive_time && (c->role_ == Role::kServer || c->hasCalls())) {
    nghttp2_submit_ping(c->session_, NGHTTP2_FLAG_NONE, nullptr);
    c->ping_outstanding_ = true;
    c->scheduleFlush();
  }
  c->armKeepalive();
}

void Connection::close(const std::string& reason) {
  if (closed_) {
    return;
  }
  if (in_nghttp2_) {
    // Inside nghttp2's callbacks the session must live on: closed when nghttp2 returns.
    if (close_reason_.empty()) {
      close_reason_ = reason;
    }
    return;
  }
  closed_ = true;
  ready_ = false;
  evtimer_del(timer_);
  event_del(flush_event_);
  if (bev_ != nullptr) {
    bufferevent_disable(bev_, EV_READ | EV_WRITE);
    bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
    if (ssl_ != nullptr) {
      SSL_set_shutdown(ssl_, SSL_RECEIVED_SHUTDOWN);
    }
    bufferevent_free(bev_);
    bev_ = nullptr;
    ssl_ = nullptr;
  }
  if (session_ != nullptr) {
    // Streams still open learn the connection is gone (nghttp2 won't call back any more).
    nghttp2_session* s = session_;
    session_ = nullptr;
    nghttp2_session_del(s);
  }
  onClosed(reason);
}

void Connection::goAway() {
  if (session_ == nullptr || closed_) {
    return;
  }
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  scheduleFlush();
}

void Connection::scheduleFlush() {
  if (!closed_ && !event_pending(flush_event_, EV_TIMEOUT, nullptr)) {
    event_active(flush_event_, EV_TIMEOUT, 0);
  }
}

void Connection::onFlushEvent(evutil_socket_t, short, void* arg) {
  static_cast<Connection*>(arg)->flush();
}

void Connection::flush() {
  if (closed_ || session_ == nullptr || in_nghttp2_) {
    return;
  }
  if (!flushNghttp2(session_, bufferevent_get_output(bev_), limits_.write_buffer_limit,
                    in_nghttp2_)) {
    close("HTTP/2 session error");
    return;
  }
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) &&
      evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    close("connection finished");
  }
}

void Connection::queue(std::int32_t stream_id, Outgoing& out, std::string_view more, bool end) {
  out.buf.append(more);
  out.end = out.end || end;
  if (out.deferred && session_ != nullptr) {
    out.deferred = false;
    nghttp2_session_resume_data(session_, stream_id);
  }
  scheduleFlush();
}

nghttp2_data_provider Connection::dataProvider() {
  nghttp2_data_provider p{};
  p.source.ptr = nullptr;
  p.read_callback = readData;
  return p;
}

ssize_t Connection::readData(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                             std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                             void* arg) {
  auto* c = static_cast<Connection*>(arg);
  Outgoing* out = c->outgoing(stream_id);
  if (out == nullptr) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  std::size_t n = std::min(length, out->buf.size() - out->pos);
  std::memcpy(buf, out->buf.data() + out->pos, n);
  out->pos += n;
  if (out->pos == out->buf.size()) {
    out->buf.clear();
    out->pos = 0;
    if (out->end) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (c->role_ == Role::kServer) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        c->onOutgoingEnd(stream_id);  // submits the trailers
      }
    } else if (n == 0) {
      out->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  } else if (out->pos > 64 * 1024) {
    out->buf.erase(0, out->pos);
    out->pos = 0;
  }
  return static_cast<ssize_t>(n);
}

void Connection::onRead(bufferevent* bev, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (c->session_ == nullptr) {
    return;
  }
  c->last_read_ = std::chrono::steady_clock::now();
  evbuffer* in = bufferevent_get_input(bev);
  while (evbuffer_get_length(in) > 0 && !c->closed_) {
    evbuffer_iovec vec{};
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) {
      break;
    }
    c->in_nghttp2_ = true;
    ssize_t n = nghttp2_session_mem_recv(
        c->session_, static_cast<const std::uint8_t*>(vec.iov_base), vec.iov_len);
    c->in_nghttp2_ = false;
    if (!c->close_reason_.empty()) {
      c->close(c->close_reason_);
      return;
    }
    if (n < 0) {
      c->close(std::string("HTTP/2 protocol error: ") + nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    evbuffer_drain(in, static_cast<std::size_t>(n));
  }
  c->flush();
}

void Connection::onWrite(bufferevent*, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->flush();
}

void Connection::onEvent(bufferevent* bev, short what, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    if (!c->ready_ && !c->closed_) {
      c->start();
    }
    return;
  }
  std::string reason;
  if ((what & BEV_EVENT_EOF) != 0) {
    reason = "the peer closed the connection";
  } else if ((what & BEV_EVENT_TIMEOUT) != 0) {
    reason = "timed out";
  } else {
    reason = EVUTIL_SOCKET_ERROR() != 0 ? evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())
                                        : "connection error";
    if (c->ssl_ != nullptr) {
      std::string tls;
      while (unsigned long e = bufferevent_get_openssl_error(bev)) {
        if (ERR_GET_LIB(e) == 0) {
          continue;  // libevent's record of SSL_ERROR_SYSCALL: the socket error says more
        }
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        tls += tls.empty() ? "" : "; ";
        tls += buf;
      }
      if (!tls.empty()) {
        reason = "tls: " + tls;
      }
      const PeerIdentity* peer = peerIdentity(c->ssl_);
      if (peer != nullptr && peer->failure != HandshakeFailure::kNone) {
        reason = std::string("tls: peer certificate refused (") +
                 handshakeFailureName(peer->failure) + "): " + peer->reason;
      }
    }
  }
  if (!c->ready_ && c->role_ == Role::kClient) {
    reason = "cannot connect to " + c->peer_address_ + ": " + reason;
  }
  c->close(reason);
}

int Connection::onBeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->header_bytes_ = 0;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    c->onBeginHeaders(frame->hd.stream_id);
  }
  return 0;
}

int Connection::onHeaderCb(nghttp2_session* session, const nghttp2_frame* frame,
                           const std::uint8_t* name, std::size_t namelen, const std::uint8_t* value,
                           std::size_t valuelen, std::uint8_t, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->header_bytes_ += namelen + valuelen + 32;
  if (c->header_bytes_ > c->limits_.max_header_bytes ||
      !c->onHeader(frame->hd.stream_id, {reinterpret_cast<const char*>(name), namelen},
                   {reinterpret_cast<const char*>(value), valuelen})) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return 0;
}

int Connection::onFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      c->onHeadersDone(frame->hd.stream_id, end);
      if (end) {
        c->onEndStream(frame->hd.stream_id);
      }
      break;
    case NGHTTP2_DATA:
      if (end) {
        c->onEndStream(frame->hd.stream_id);
      }
      break;
    case NGHTTP2_PING:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0 && c->ping_outstanding_) {
        c->ping_outstanding_ = false;
        c->armKeepalive();
      }
      break;
    default:
      break;
  }
  return 0;
}

int Connection::onDataChunkCb(nghttp2_session*, std::uint8_t, std::int32_t stream_id,
                              const std::uint8_t* data, std::size_t len, void* arg) {
  static_cast<Connection*>(arg)->onData(stream_id, data, len);
  return 0;
}

int Connection::onFrameSendCb(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) {
    static_cast<Connection*>(arg)->onFrameSent(frame->hd.stream_id,
                                               (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
  }
  return 0;
}

int Connection::onStreamCloseCb(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code,
                                void* arg) {
  static_cast<Connection*>(arg)->onStreamClose(stream_id, error_code);
  return 0;
}

}  // namespace palisade::common::grpc
