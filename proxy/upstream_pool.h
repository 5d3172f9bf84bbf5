#pragma once

// UpstreamPool: one worker's HTTP/2-over-mTLS connections to the endpoints (their inbound
// sidecars) of outbound services, shared by every outbound HTTP session on the worker. Each
// request picks an endpoint of its service (least request with the power of two choices, or
// round robin) and becomes a stream on a pooled connection to it, so an app's keep-alive or
// HTTP/2 connection is balanced per request and handshakes are paid once per pooled
// connection, not once per app connection.
//
// Secure naming holds per pooled connection: it is made with
// `identity->client->newSsl(endpoint.allowed_ids)`, SNI = the route's SNI and ALPN "h2", and
// is keyed by (SNI, endpoint address, allowed IDs), so a stream only rides a connection whose
// server proved one of the identities its route allows. A connection made with an older SVID
// takes no new streams and closes once idle.
//
// A connection takes streams up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS (capped by
// limits.max_concurrent_streams and max_streams_per_connection); then another is opened, up to
// max_connections_per_endpoint,
// beyond which streams queue in nghttp2 on the least loaded one. An endpoint whose connection
// failed before it was up loses every choice against one that did not, until a connection to
// it succeeds or kFailingFor passes.
//
// Thread: the worker's only. Owned by the Worker; outlives every session using it.

#include <event2/event.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/bootstrap.h"
#include "proxy/http/codec.h"
#include "proxy/http/http2_upstream.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"

namespace palisade::proxy {

class UpstreamPool final : public http::UpstreamConnectionOwner {
 public:
  struct Options {
    http::SessionLimits limits;
    std::size_t max_connections_per_endpoint = 8;
    // Streams we put on one connection before opening another (also capped by the peer's
    // SETTINGS and limits.max_concurrent_streams). Measured in bench-peers h2 (128 streams in
    // flight): 100 per connection 26k req/s, 32: 32k, 16: 38-39k, unpooled 46k. The cost per
    // stream grows with the streams on one connection (O(streams) work per event in the
    // session and codecs on both sides); until that is fixed, spread them.
    std::size_t max_streams_per_connection = 16;
  };

  // `random` draws the two candidates of least request (injected: tests make it predictable).
  UpstreamPool(event_base* base, WorkerStats& stats, Options options,
               std::function<std::uint32_t()> random);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Picks an endpoint of `route` by `lb` and opens a stream to it for `ex`, reporting to
  // `callbacks`. Null when the route has no endpoint. A connect or handshake failure is
  // reported on the stream (onUpstreamFailed kConnect: the session answers 503).
  http::UpstreamRequest* newStream(const Snapshot& snapshot, const ServiceRoute& route,
                                   LoadBalancer lb, http::Exchange& ex,
                                   http::UpstreamCallbacks& callbacks);

  // Which endpoint of `route` the next request would go to (exposed for tests).
  std::size_t pick(const ServiceRoute& route, LoadBalancer lb);

  // Once a second: closes connections idle for limits.idle_timeout, and idle ones made with
  // an identity other than `current`.
  void onTick(std::time_t now, const std::shared_ptr<const Identity>& current);
  // Closes every connection without reporting to streams (worker shutdown, after every
  // session was aborted).
  void closeAll();

  // Streams in flight to `endpoint` of `route`, and pooled connections in all.
  std::size_t activeRequests(const ServiceRoute& route, const Endpoint& endpoint);
  std::size_t connections() const;

  // UpstreamConnectionOwner:
  void enter() override { ++depth_; }
  void leave() override;
  void onUpstreamClosed(http::UpstreamConnection* connection) override;

 private:
  struct Conn {
    std::unique_ptr<http::Http2Upstream> h2;
    std::shared_ptr<const Identity> identity;  // the SVID it was made with
    std::time_t idle_since = 0;          // 0: streams open
  };
  struct EndpointState {
    std::vector<Conn> conns;
    // A connection to it failed before it was up, and none has succeeded since: it loses
    // every choice against an endpoint that is not failing, for kFailingFor (a stand-in for
    // outlier ejection, which remains to be built).
    bool failing = false;
    std::time_t failed_at = 0;
  };
  static constexpr std::time_t kFailingFor = 10;  // seconds

  EndpointState& state(const ServiceRoute& route, const Endpoint& endpoint);
  std::size_t active(const EndpointState& s) const;
  http::Http2Upstream* connectionFor(const Snapshot& snapshot, const ServiceRoute& route,
                                     const Endpoint& endpoint, EndpointState& s);
  http::Http2Upstream* connect(const Snapshot& snapshot, const ServiceRoute& route,
                               const Endpoint& endpoint, EndpointState& s);

  event_base* base_;
  WorkerStats& stats_;
  Options options_;
  http::SessionOptions session_options_;  // what Http2Upstream reads: limits
  std::function<std::uint32_t()> random_;
  std::unordered_map<std::string, std::unique_ptr<EndpointState>> endpoints_;
  std::vector<std::unique_ptr<http::UpstreamConnection>> dead_;
  std::string key_;  // scratch, reused per request
  std::size_t round_robin_ = 0;
  std::time_t now_ = 0;  // as of the last onTick
  int depth_ = 0;
};

}  // namespace palisade::proxy
