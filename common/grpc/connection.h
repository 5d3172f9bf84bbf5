#pragma once

// One HTTP/2 connection carrying gRPC streams, the part the server and the client share: the
// nghttp2 session over a bufferevent (TLS or plaintext), output gathered per loop pass,
// per-stream send queues with back-pressure (DATA goes out as the peer's flow-control
// windows open), keepalive PINGs that close a connection whose peer stopped answering, and
// bounds on headers. Subclasses give the streams their meaning (server.cc, channel.cc).
// Thread: the event loop that owns it.

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/grpc/wire.h"

namespace palisade::common::grpc {

struct ConnectionLimits {
  std::size_t max_message = kDefaultMaxMessage;
  std::size_t max_header_bytes = 16 * 1024;  // per header block, names + values
  std::uint32_t max_concurrent_streams = 100;
  std::uint32_t window = 1 << 20;                       // per-stream receive window
  std::size_t write_buffer_limit = 1 << 20;             // bytes queued in the socket's output
  std::chrono::milliseconds keepalive_time{30'000};     // PING after this long idle; 0: never
  std::chrono::milliseconds keepalive_timeout{10'000};  // no PING ACK by then: closed
  std::chrono::milliseconds handshake_timeout{10'000};
};

// An nghttp2 header field viewing `name` and `value` (they must outlive the submit call).
nghttp2_nv headerField(std::string_view name, std::string_view value);

// Feeds a stream's DATA bytes to its reader and hands each complete message to `on_message`
// while the call is not `done` (a callback may finish it). Returns the reader's error.
Status deliverMessages(MessageReader& reader, const std::uint8_t* data, std::size_t len,
                       const bool& done, const std::function<void(std::string)>& on_message);

class Connection {
 public:
  enum class Role { kServer, kClient };

  Connection(event_base* base, Role role, const ConnectionLimits& limits);
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool closed() const { return closed_; }
  bool ready() const { return ready_; }  // handshake done, HTTP/2 running
  SSL* ssl() const { return ssl_; }
  const std::string& peerAddress() const { return peer_address_; }

  // Closes at once (inside nghttp2's callbacks: when nghttp2 returns) and calls
  // onClosed(reason), where the subclass ends its open streams. The owner deletes the
  // connection later, from the event loop, never inside its callbacks.
  void close(const std::string& reason);
  // GOAWAY: no new streams; the connection closes when the open ones are done.
  void goAway();

 protected:
  // Per stream: what is to be sent, owned by the subclass's stream object.
  struct Outgoing {
    std::string buf;
    std::size_t pos = 0;
    bool end = false;       // no more messages after buf
    bool deferred = false;  // nghttp2 waits for resume
  };

  // Takes the bufferevent (connecting, accepting or connected; `ssl` may be null).
  void attach(bufferevent* bev, SSL* ssl, std::string peer_address, bool connected);
  nghttp2_session* session() const { return session_; }
  // Output goes out at the end of this loop pass.
  void scheduleFlush();
  // Queues `more` on a stream's Outgoing and wakes its data provider.
  void queue(std::int32_t stream_id, Outgoing& out, std::string_view more, bool end);
  nghttp2_data_provider dataProvider();

  virtual Outgoing* outgoing(std::int32_t stream_id) = 0;
  // Whether any call is open. A client PINGs only then (gRPC servers, grpcio's among them,
  // answer a client's PINGs on an idle connection with GOAWAY too_many_pings); a server
  // PINGs idle clients too, so a vanished one is closed.
  virtual bool hasCalls() const = 0;
  // A DATA source reached its end: a server submits its trailers here.
  virtual void onOutgoingEnd(std::int32_t stream_id) { (void)stream_id; }
  virtual void onReady() {}
  virtual void onBeginHeaders(std::int32_t stream_id) = 0;
  // Header blocks arrive as one call per field; false resets the stream.
  virtual bool onHeader(std::int32_t stream_id, std::string_view name, std::string_view value) = 0;
  virtual void onHeadersDone(std::int32_t stream_id, bool end_stream) = 0;
  virtual void onData(std::int32_t stream_id, const std::uint8_t* data, std::size_t len) = 0;
  virtual void onEndStream(std::int32_t stream_id) = 0;
  virtual void onStreamClose(std::int32_t stream_id, std::uint32_t error_code) = 0;
  virtual void onClosed(const std::string& reason) = 0;
  // A frame went out; `end_stream` when it ended our side of the stream.
  virtual void onFrameSent(std::int32_t stream_id, bool end_stream) {
    (void)stream_id;
    (void)end_stream;
  }

  event_base* base_;

 private:
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  static void onFlushEvent(evutil_socket_t, short, void* arg);
  static void onTimer(evutil_socket_t, short, void* arg);
  static ssize_t readData(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                          std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                          void* arg);
  static int onBeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* arg);
  static int onHeaderCb(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                        std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                        std::uint8_t flags, void* arg);
  static int onFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* arg);
  static int onDataChunkCb(nghttp2_session*, std::uint8_t flags, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t len, void* arg);
  static int onFrameSendCb(nghttp2_session*, const nghttp2_frame* frame, void* arg);
  static int onStreamCloseCb(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code,
                             void* arg);

  void start();
  void flush();
  void armKeepalive();

  Role role_;
  ConnectionLimits limits_;
  bufferevent* bev_ = nullptr;
  SSL* ssl_ = nullptr;
  nghttp2_session* session_ = nullptr;
  event* flush_event_ = nullptr;
  event* timer_ = nullptr;
  std::string peer_address_;
  std::string close_reason_;  // a close asked for inside nghttp2
  std::size_t header_bytes_ = 0;
  bool in_nghttp2_ = false;
  bool ready_ = false;
  bool closed_ = false;
  bool ping_outstanding_ = false;
  std::chrono::steady_clock::time_point last_read_{};
};

}  // namespace palisade::common::grpc
