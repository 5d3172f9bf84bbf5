#pragma once

// Http1Upstream: one HTTP/1.1 connection to the app carrying one request at a time and
// kept alive for the next one. Requests from either downstream protocol are serialized as
// HTTP/1.1 (Host from :authority, a body with content-length when known, else chunked,
// trailers in the last chunk); responses are parsed with http-parser (no body for HEAD, 1xx,
// 204, 304; close-delimited bodies end at EOF) and interim 1xx responses are dropped.
// Thread: the session's. Owned by the session.

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>

#include "proxy/http/codec.h"

namespace palisade::proxy::http {

class Http1Upstream final : public UpstreamConnection, public UpstreamRequest {
 public:
  Http1Upstream(event_base* base, UpstreamCallbacks& callbacks, const SessionOptions& options);
  ~Http1Upstream() override;

  // Starts a nonblocking connect; a failure is reported to the exchange later.
  void connect();
  // Connected (or connecting) and not carrying a request.
  bool idle() const { return ex_ == nullptr && state_ != State::kClosed; }
  bool busy() const { return ex_ != nullptr; }
  bool isClosed() const { return state_ == State::kClosed; }
  // Takes `ex` as the request to carry; the connection must be idle.
  void attach(Exchange& ex);

  // UpstreamRequest:
  void sendHead(Exchange& ex, bool end_stream) override;
  bool sendData(const std::uint8_t* data, std::size_t len) override;
  void sendEnd() override;
  void pauseResponse(bool paused) override;
  void cancel() override;

  // UpstreamConnection:
  std::size_t bufferedBytes() const override;
  void close() override;

 private:
  enum class State { kConnecting, kIdle, kBusy, kClosed };

  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  static void onTimer(evutil_socket_t fd, short what, void* arg);
  static int onMessageBegin(http_parser* p);
  static int onHeaderField(http_parser* p, const char* at, std::size_t len);
  static int onHeaderValue(http_parser* p, const char* at, std::size_t len);
  static int onHeadersComplete(http_parser* p);
  static int onBody(http_parser* p, const char* at, std::size_t len);
  static int onChunkHeader(http_parser* p);
  static int onMessageComplete(http_parser* p);

  void process();
  // The connection failed or broke: tells the exchange (if any) and closes.
  void fail();
  void finishResponse();
  void maybeIdle();

  event_base* base_;
  UpstreamCallbacks& callbacks_;
  const SessionOptions& options_;
  bufferevent* bev_ = nullptr;
  event* timer_ = nullptr;  // connect timeout, or an immediate connect failure
  http_parser parser_{};
  http_parser_settings settings_{};
  State state_ = State::kConnecting;
  bool connected_ = false;
  Exchange* ex_ = nullptr;
  bool chunked_request_ = false;
  bool request_complete_ = false;
  bool response_complete_ = false;
  bool head_received_ = false;
  bool interim_ = false;
  bool in_value_ = false;
  bool in_trailers_ = false;
  bool keep_alive_ = true;
  bool paused_ = false;
  bool in_process_ = false;
  bool blocked_ = false;  // sendData said the buffer is full
  std::size_t header_bytes_ = 0;
};

}  // namespace palisade::proxy::http
