#pragma once

// HttpSessionImpl: the HttpSession behind HttpSession::start. It owns the downstream
// bufferevent and codec, the upstream connections to the app and the exchanges in flight,
// authorizes each request and answers denied, malformed and unroutable ones locally.
// Thread: the session's event_base thread only.

#include <memory>
#include <string_view>
#include <vector>

#include "proxy/http/codec.h"
#include "proxy/http/http1_upstream.h"
#include "proxy/http/http2_upstream.h"
#include "proxy/http/http_session.h"

namespace palisade::proxy::http {

class HttpSessionImpl final : public HttpSession,
                              public ServerCodecCallbacks,
                              public UpstreamCallbacks {
 public:
  HttpSessionImpl(event_base* base, bufferevent* downstream, SessionOptions options);
  ~HttpSessionImpl() override;
  HttpSessionImpl(const HttpSessionImpl&) = delete;
  HttpSessionImpl& operator=(const HttpSessionImpl&) = delete;

  void begin();

  // HttpSession:
  void drain() override;
  void abort() override;
  const SessionStats& stats() const override { return stats_; }

  // ScopeOwner:
  void enter() override { ++depth_; }
  void leave() override;

  // ServerCodecCallbacks:
  Exchange* newExchange(std::int32_t stream_id) override;
  void onRequestHead(Exchange& ex, bool end_stream) override;
  bool onRequestData(Exchange& ex, const std::uint8_t* data, std::size_t len) override;
  void onRequestEnd(Exchange& ex) override;
  void onResponseDrained(Exchange& ex) override;
  void onExchangeDone(Exchange& ex) override;
  void onDownstreamClosed() override;

  // UpstreamCallbacks:
  void onUpstreamHead(Exchange& ex, bool end_stream) override;
  void onUpstreamData(Exchange& ex, const std::uint8_t* data, std::size_t len) override;
  void onUpstreamEnd(Exchange& ex) override;
  void onUpstreamFailed(Exchange& ex, UpstreamFailure failure) override;
  void onUpstreamWritable(Exchange& ex) override;
  void onUpstreamClosed(UpstreamConnection* connection) override;

 private:
  static void onIdle(evutil_socket_t fd, short what, void* arg);
  static void onRequestTimeout(evutil_socket_t fd, short what, void* arg);
  void armTimeout(Exchange& ex);
  void disarmTimeout(Exchange& ex);

  // The RequestView of ex.request, its headers in ex.views / ex.joined.
  policy::RequestView buildView(Exchange& ex);
  UpstreamRequest* upstreamFor(Exchange& ex);
  void noteIdle(Exchange& ex);
  void denyReply(Exchange& ex, const std::string& reason);
  // A local answer: text/plain `body`, or for gRPC a trailers-only `grpc_status`.
  void localReply(Exchange& ex, int status, std::string_view body, int grpc_status,
                  const std::string* denied_reason);
  void closeAll();
  void flushAll();
  void sampleBuffers();
  std::size_t bufferedBytes() const;

  event_base* base_;
  bufferevent* downstream_;
  SessionOptions options_;
  std::unique_ptr<ServerCodec> codec_;
  std::string normalized_path_;  // scratch, reused per request
  std::vector<std::unique_ptr<Http1Upstream>> h1_;
  // Connections of h1_ that finished an exchange, newest last (checked with idle() when
  // taken): a request finds an idle connection without scanning every one.
  std::vector<Http1Upstream*> idle_h1_;
  unsigned samples_ = 0;                            // leave() calls, for sampling bufferedBytes()
  std::vector<std::unique_ptr<Http2Upstream>> h2_;  // the last one takes new streams
  std::vector<std::unique_ptr<UpstreamConnection>> dead_upstreams_;
  std::vector<std::unique_ptr<Exchange>> exchanges_;  // in flight
  std::vector<std::unique_ptr<Exchange>> done_;       // freed at the end of the scope
  std::vector<std::unique_ptr<Exchange>> free_;       // recycled
  std::vector<Http2Upstream*> flush_list_;
  event* idle_timer_ = nullptr;
  bool idle_armed_ = false;
  int depth_ = 0;
  bool closing_ = false;
  SessionStats stats_;
};

}  // namespace palisade::proxy::http
