#pragma once

// The seams inside an HttpSession: a downstream ServerCodec (HTTP/1.1 or HTTP/2) that decodes
// requests and encodes responses, and UpstreamRequests (one HTTP/1.1 connection, or one
// stream of an HTTP/2 connection) that carry a request to the app. Both report to the
// session through the callback interfaces below. Thread: the session's.
//
// Re-entrancy: every libevent callback of a codec or upstream runs inside a CallbackScope.
// Objects are never freed inside a scope; the session frees what closed, flushes HTTP/2
// output and deletes itself when the outermost scope ends.

#include <cstddef>
#include <cstdint>

#include "proxy/http/exchange.h"
#include "proxy/http/http_session.h"

namespace palisade::proxy::http {

class ScopeOwner {
 public:
  virtual void enter() = 0;
  virtual void leave() = 0;

 protected:
  ~ScopeOwner() = default;
};

class CallbackScope {
 public:
  explicit CallbackScope(ScopeOwner& owner) : owner_(owner) { owner_.enter(); }
  ~CallbackScope() { owner_.leave(); }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

 private:
  ScopeOwner& owner_;
};

// What a downstream codec tells the session.
class ServerCodecCallbacks : public ScopeOwner {
 public:
  // A request starts; the codec refers to the returned exchange until onExchangeDone.
  virtual Exchange* newExchange(std::int32_t stream_id) = 0;
  // The head is in ex.request (or ex.reject_status is set). `end_stream`: no body follows.
  virtual void onRequestHead(Exchange& ex, bool end_stream) = 0;
  // Request body bytes. False: the upstream is full; the codec holds further request bytes
  // (HTTP/2: does not consume them) until ServerCodec::resumeRequest.
  virtual bool onRequestData(Exchange& ex, const std::uint8_t* data, std::size_t len) = 0;
  // The request ended (after a body or trailers, which are in ex.request.trailers).
  virtual void onRequestEnd(Exchange& ex) = 0;
  // The response bytes the codec holds for `ex` fell below the low watermark.
  virtual void onResponseDrained(Exchange& ex) = 0;
  // The codec no longer refers to `ex` (stream closed, exchange finished or connection gone).
  virtual void onExchangeDone(Exchange& ex) = 0;
  // The downstream connection is finished (closed by either side, flushed or broken).
  virtual void onDownstreamClosed() = 0;

 protected:
  ~ServerCodecCallbacks() = default;
};

class ServerCodec {
 public:
  virtual ~ServerCodec() = default;
  // Decodes what the bufferevent already holds and starts reading.
  virtual void start() = 0;
  virtual void sendHead(Exchange& ex, const ResponseHead& head, bool end_stream) = 0;
  virtual void sendData(Exchange& ex, const std::uint8_t* data, std::size_t len) = 0;
  // Ends the response with ex.response.trailers (possibly empty).
  virtual void sendEnd(Exchange& ex) = 0;
  // `100 Continue` for a request that carried `Expect: 100-continue`.
  virtual void sendContinue(Exchange& ex) = 0;
  // The response cannot complete: HTTP/2 RST_STREAM, HTTP/1.1 closes the connection.
  virtual void resetStream(Exchange& ex) = 0;
  // The upstream has room again for request bytes of `ex`.
  virtual void resumeRequest(Exchange& ex) = 0;
  // Response bytes held for `ex` (its share of what waits to be written).
  virtual std::size_t bufferedResponseBytes(const Exchange& ex) const = 0;
  // Bytes held in the connection's buffers (input and output) and the response bodies it
  // holds for exchanges. Constant time: the session samples it after every event.
  virtual std::size_t bufferedBytes() const = 0;
  virtual void drain() = 0;
  // Stops reading and writing; the session is tearing down.
  virtual void close() = 0;
  // HTTP/2: output was submitted inside a callback; flush() writes it.
  virtual bool wantsFlush() const { return false; }
  virtual void flush() {}
};

enum class UpstreamFailure {
  kRefused,   // never reached the app: not connected, or refused (REFUSED_STREAM, past GOAWAY)
  kConnect,   // closed/reset before a response head (the app may have seen the request)
  kReset,     // reset or closed after the response head
  kOverflow,  // never sent: a pool limit (the reason is in the exchange's failure_reason)
};

// How one stream of an upstream connection ended, for its owner's bookkeeping (a pool's
// requests in flight and outlier detection).
struct StreamOutcome {
  int status = 0;                // the final response status; 0: none arrived
  bool failed = false;           // reset or refused before the response ended, or connection lost
  bool refused = false;          // failed, and never reached the app
  bool never_connected = false;  // failed because the connection never came up
  bool cancelled = false;        // the exchange went away first (not the upstream's fault)
  bool retry = false;            // the stream was a retry (Exchange::attempts > 1 when opened)
};

class UpstreamConnection;

// What an upstream connection tells whoever owns it: the session for its own connections to
// the app, or a worker's UpstreamPool for pooled connections that carry streams of many
// sessions. Every libevent callback of the connection runs inside the owner's scope.
class UpstreamConnectionOwner : public ScopeOwner {
 public:
  // The connection closed; the owner may free it once the scope ends.
  virtual void onUpstreamClosed(UpstreamConnection* connection) = 0;
  // A stream of `connection` finished (once per stream, whatever the reason).
  virtual void onStreamDone(UpstreamConnection* /*connection*/, const StreamOutcome& /*outcome*/) {}

 protected:
  ~UpstreamConnectionOwner() = default;
};

// What an upstream tells the session about an exchange. After onUpstreamEnd or
// onUpstreamFailed, and after an onUpstreamHead with end_stream, the upstream no longer
// refers to the exchange. A pooled connection calls these inside the session's own scope
// (CallbackScope on the UpstreamCallbacks), so the session flushes and frees as usual.
class UpstreamCallbacks : public UpstreamConnectionOwner {
 public:
  virtual void onUpstreamHead(Exchange& ex, bool end_stream) = 0;  // head in ex.response
  virtual void onUpstreamData(Exchange& ex, const std::uint8_t* data, std::size_t len) = 0;
  virtual void onUpstreamEnd(Exchange& ex) = 0;  // trailers in ex.response.trailers
  virtual void onUpstreamFailed(Exchange& ex, UpstreamFailure failure) = 0;
  // The upstream's buffered request bytes fell below the low watermark.
  virtual void onUpstreamWritable(Exchange& ex) = 0;

 protected:
  ~UpstreamCallbacks() = default;
};

class UpstreamRequest {
 public:
  // Sends ex.request's head (already authorized, stripped and extended).
  virtual void sendHead(Exchange& ex, bool end_stream) = 0;
  // False: more than buffer_limit request bytes are waiting; onUpstreamWritable follows.
  virtual bool sendData(const std::uint8_t* data, std::size_t len) = 0;
  virtual void sendEnd() = 0;  // trailers in the exchange's request.trailers
  // Stops or restarts reading the response (back-pressure from the downstream).
  virtual void pauseResponse(bool paused) = 0;
  // The exchange is gone before the upstream finished: stop referring to it and to its
  // callbacks (a pooled stream resets only itself; the connection stays).
  virtual void cancel() = 0;

 protected:
  ~UpstreamRequest() = default;
};

// A connection to the app, owned by the session.
class UpstreamConnection {
 public:
  virtual ~UpstreamConnection() = default;
  virtual std::size_t bufferedBytes() const = 0;
  virtual bool wantsFlush() const { return false; }
  virtual void flush() {}
  virtual void close() = 0;  // without reporting to exchanges (the session is tearing down)
};

// Hands out upstream streams from outside the session (the outbound sidecar's per-worker
// pool of HTTP/2-over-mTLS connections). The returned request reports to `callbacks` and is
// valid until it reports the end or a failure, or is cancelled; null means no upstream can
// take the request now (answered 503 by the session, with ex.failure_reason when set). A
// request the provider queued may later be replaced by the stream that carries it: the
// provider then sets ex.upstream itself. Thread: the session's.
class UpstreamProvider {
 public:
  virtual UpstreamRequest* newStream(Exchange& ex, UpstreamCallbacks& callbacks) = 0;

 protected:
  ~UpstreamProvider() = default;
};

// Window sizes we advertise on HTTP/2 (both sides): half the buffer limit per stream, so a
// stream never holds more than about 1.5 x buffer_limit, and a few streams per connection.
inline std::int32_t streamWindow(std::size_t buffer_limit) {
  std::size_t w = buffer_limit / 2;
  if (w < 65535) {
    w = 65535;
  }
  if (w > (1u << 24)) {
    w = 1u << 24;
  }
  return static_cast<std::int32_t>(w);
}
inline std::int32_t connectionWindow(std::size_t buffer_limit) {
  return streamWindow(buffer_limit) * 4;
}

}  // namespace palisade::proxy::http
