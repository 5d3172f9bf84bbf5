#pragma once

// Http2Upstream: one HTTP/2 prior-knowledge (h2c) connection to the app, nghttp2 client side,
// carrying the session's requests as multiplexed streams. Request bodies wait per stream for
// the data provider; response bytes are consumed from the flow-control window only once the
// downstream has taken them. Trailers pass both ways (gRPC). Thread: the session's. Owned by
// its UpstreamConnectionOwner (the session, or a worker's UpstreamPool); its streams are owned
// by it. Each stream reports to the UpstreamCallbacks it was opened with, inside their scope,
// so one pooled connection can carry streams of many sessions; a cancelled stream resets only
// itself.

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <functional>
#include <memory>
#include <vector>

#include "proxy/http/codec.h"

namespace palisade::proxy::http {

class Http2Upstream final : public UpstreamConnection {
 public:
  // `options` (limits, app_address) must outlive the connection.
  Http2Upstream(event_base* base, UpstreamConnectionOwner& owner, const SessionOptions& options);
  ~Http2Upstream() override;

  // Plaintext (h2c, prior knowledge) to options.app_address.
  void connect();
  // Over `bev` (taken over; possibly an OpenSSL bufferevent, connecting) to `address`. Its
  // CONNECTED event (after the TLS handshake) starts HTTP/2; failing to start fails the
  // connection from the event loop, never from here.
  void connect(bufferevent* bev, const sockaddr* address, socklen_t address_len);
  // Called with every event of the connection's bufferevent before it is handled; false
  // fails the connection (a pool checks the negotiated ALPN and logs TLS failures here).
  void setEventHook(std::function<bool(bufferevent*, short)> hook) {
    event_hook_ = std::move(hook);
  }
  // Pooled: the connection carries streams of many sessions. Output is flushed by an event of
  // its own (no session flushes it), so what many sessions submit in one loop iteration
  // leaves in one write; and the connection-level receive window is consumed as bytes
  // arrive, only the stream windows wait for each session's downstream, so one slow app
  // holds back its own streams, never the other sessions' (memory stays bounded by the
  // stream window times the concurrent streams).
  void enablePooledMode();
  // Takes new streams: not closed, no GOAWAY received.
  bool usable() const { return !closed_ && !goaway_; }
  // A new stream for `ex`, reporting to `callbacks`; valid until it reports the end or a
  // failure, or is cancelled.
  UpstreamRequest* newStream(Exchange& ex, UpstreamCallbacks& callbacks);
  // Streams that have not finished, and every stream it was given.
  std::size_t openStreams() const { return open_streams_; }
  std::size_t totalStreams() const { return total_streams_; }
  // The owner's own note about the connection (a pool's endpoint).
  void setTag(void* tag) { tag_ = tag; }
  void* tag() const { return tag_; }
  // Streams the peer lets us open at once (its SETTINGS_MAX_CONCURRENT_STREAMS, capped by
  // `local_max`).
  std::size_t maxStreams(std::size_t local_max) const;
  bool connected() const { return connected_; }

  // UpstreamConnection:
  std::size_t bufferedBytes() const override;
  bool wantsFlush() const override { return dirty_ && !closed_; }
  void flush() override;
  void close() override;

 private:
  class Stream;

  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  static void onTimer(evutil_socket_t fd, short what, void* arg);
  static void onFlush(evutil_socket_t fd, short what, void* arg);
  static int onBeginHeaders(nghttp2_session* s, const nghttp2_frame* frame, void* arg);
  static int onHeader(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                      std::uint8_t flags, void* arg);
  static int onFrameRecv(nghttp2_session* s, const nghttp2_frame* frame, void* arg);
  static int onDataChunkRecv(nghttp2_session* s, std::uint8_t flags, std::int32_t stream_id,
                             const std::uint8_t* data, std::size_t len, void* arg);
  static int onStreamClose(nghttp2_session* s, std::int32_t stream_id, std::uint32_t error_code,
                           void* arg);
  static ssize_t readRequestBody(nghttp2_session* s, std::int32_t stream_id, std::uint8_t* buf,
                                 std::size_t length, std::uint32_t* data_flags,
                                 nghttp2_data_source* source, void* arg);

  Stream* stream(std::int32_t stream_id) const;
  // The connection is gone: every open stream fails.
  void fail();
  void markDirty();
  void streamClosed(Stream& s);
  // Gives `n` received bytes of `stream_id` back to the peer's flow control.
  void consume(std::int32_t stream_id, std::size_t n);

  event_base* base_;
  UpstreamConnectionOwner& owner_;
  const SessionOptions& options_;
  bufferevent* bev_ = nullptr;
  event* timer_ = nullptr;
  event* flush_event_ = nullptr;  // pooled mode only
  std::function<bool(bufferevent*, short)> event_hook_;
  std::size_t open_streams_ = 0;
  std::size_t total_streams_ = 0;
  void* tag_ = nullptr;
  nghttp2_session* session_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  bool goaway_ = false;
  bool dirty_ = false;
  bool in_nghttp2_ = false;
  std::size_t body_bytes_ = 0;  // request bodies waiting in every stream
  std::size_t finished_ = 0;    // streams closed since the last flush freed them
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::int32_t> writable_;  // streams whose request buffer drained
  std::vector<std::int32_t> writable_scratch_;
  std::vector<nghttp2_nv> nva_;
};

}  // namespace palisade::proxy::http
