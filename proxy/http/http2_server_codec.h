#pragma once

// Http2ServerCodec: the downstream side of an HTTP/2 connection (nghttp2 server session).
// Request bodies are consumed from the flow-control window only once the upstream has taken
// them (automatic WINDOW_UPDATE is off), response bodies wait per stream for nghttp2's data
// provider, which is deferred while a stream has nothing to send. Output is produced with
// nghttp2_session_mem_send only while the connection's output buffer is below the limit.
// Thread: the session's. Does not own the bufferevent.

#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>

#include <vector>

#include "proxy/http/codec.h"

namespace palisade::proxy::http {

class Http2ServerCodec final : public ServerCodec {
 public:
  Http2ServerCodec(bufferevent* bev, ServerCodecCallbacks& callbacks, const SessionLimits& limits);
  ~Http2ServerCodec() override;

  // ServerCodec:
  void start() override;
  void sendHead(Exchange& ex, const ResponseHead& head, bool end_stream) override;
  void sendData(Exchange& ex, const std::uint8_t* data, std::size_t len) override;
  void sendEnd(Exchange& ex) override;
  void sendContinue(Exchange& ex) override;
  void resetStream(Exchange& ex) override;
  void resumeRequest(Exchange& ex) override;
  std::size_t bufferedResponseBytes(const Exchange& ex) const override;
  std::size_t bufferedBytes() const override;
  void drain() override;
  void close() override;
  bool wantsFlush() const override { return dirty_ && !closing_; }
  void flush() override;

 private:
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  static int onBeginHeaders(nghttp2_session* s, const nghttp2_frame* frame, void* arg);
  static int onHeader(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                      std::uint8_t flags, void* arg);
  static int onFrameRecv(nghttp2_session* s, const nghttp2_frame* frame, void* arg);
  static int onDataChunkRecv(nghttp2_session* s, std::uint8_t flags, std::int32_t stream_id,
                             const std::uint8_t* data, std::size_t len, void* arg);
  static int onStreamClose(nghttp2_session* s, std::int32_t stream_id, std::uint32_t error_code,
                           void* arg);
  static ssize_t readResponseBody(nghttp2_session* s, std::int32_t stream_id, std::uint8_t* buf,
                                  std::size_t length, std::uint32_t* data_flags,
                                  nghttp2_data_source* source, void* arg);

  Exchange* exchange(std::int32_t stream_id) const;
  void consume(Exchange& ex);
  void markDirty();
  void closeAfterFlush();
  void closed();

  bufferevent* bev_;
  ServerCodecCallbacks& callbacks_;
  const SessionLimits& limits_;
  nghttp2_session* session_ = nullptr;
  bool in_nghttp2_ = false;  // inside mem_recv / mem_send: no re-entry, no send
  bool dirty_ = false;
  bool draining_ = false;
  bool closing_ = false;
  bool closed_ = false;
  std::size_t response_bytes_ = 0;     // in every exchange's response_body
  std::vector<std::int32_t> drained_;  // streams whose response buffer fell below the mark
  std::vector<nghttp2_nv> nva_;        // reused for every HEADERS we submit
};

}  // namespace palisade::proxy::http
