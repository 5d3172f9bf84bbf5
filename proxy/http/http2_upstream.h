#pragma once

// Http2Upstream: one HTTP/2 prior-knowledge (h2c) connection to the app, nghttp2 client side,
// carrying the session's requests as multiplexed streams. Request bodies wait per stream for
// the data provider; response bytes are consumed from the flow-control window only once the
// downstream has taken them. Trailers pass both ways (gRPC). Thread: the session's. Owned by
// the session; its streams are owned by it.

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <memory>
#include <vector>

#include "proxy/http/codec.h"

namespace palisade::proxy::http {

class Http2Upstream final : public UpstreamConnection {
 public:
  Http2Upstream(event_base* base, UpstreamCallbacks& callbacks, const SessionOptions& options);
  ~Http2Upstream() override;

  void connect();
  // Takes new streams: not closed, no GOAWAY received.
  bool usable() const { return !closed_ && !goaway_; }
  // A new stream for `ex`; valid until it reports the end or a failure, or is cancelled.
  UpstreamRequest* newStream(Exchange& ex);
  // Streams that have not finished.
  std::size_t openStreams() const;

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
  void markDirty() { dirty_ = true; }

  event_base* base_;
  UpstreamCallbacks& callbacks_;
  const SessionOptions& options_;
  bufferevent* bev_ = nullptr;
  event* timer_ = nullptr;
  nghttp2_session* session_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  bool goaway_ = false;
  bool dirty_ = false;
  bool in_nghttp2_ = false;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::int32_t> writable_;  // streams whose request buffer drained
  std::vector<nghttp2_nv> nva_;
};

}  // namespace palisade::proxy::http
