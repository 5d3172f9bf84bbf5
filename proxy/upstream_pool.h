#pragma once

// UpstreamPool: one worker's HTTP/2-over-mTLS connections to the endpoints (their inbound
// sidecars) of outbound services, shared by every outbound HTTP session on the worker, and
// what the worker knows about each service ("cluster", as Envoy says) and endpoint: requests
// in flight, queue, retries, outlier ejections.
//
// Per request: the route's TrafficSettings choose an endpoint (least request with the power
// of two choices, round robin or random), skipping ejected endpoints and those at their
// request limit; the request becomes a stream on a pooled connection to it, so an app's
// keep-alive or HTTP/2 connection is balanced per request and handshakes are paid once per
// pooled connection, not once per app connection.
//
// Limits (each worker holds its share of the sidecar's counts, see TrafficSettings):
//   max_requests per endpoint; when every endpoint is at it, the request waits in the
//   service's queue, at most max_pending of them and at most connect_timeout each, else it
//   is answered 503 "upstream overflow: ..." naming the limit;
//   max_connections per endpoint; max_requests_per_connection;
//   retries in flight per service: at most max_retries and at most the retry budget, 20 % of
//   the requests in flight (at least 3), as Envoy's retry_budget; a retry refused by it is
//   answered 503 "... retry budget exhausted ...".
// Outlier detection: consecutive gateway errors (connect failure, reset, 502/503/504) or
// consecutive 5xx eject an endpoint for base_ejection_time x times ejected (at most 300 s),
// while no more than max_ejection_percent of the service's endpoints (at least one) are
// ejected. Back from ejection, an endpoint's share of requests grows linearly over `warmup`.
// When every endpoint is ejected, all are used (Envoy's panic mode).
//
// Secure naming holds per pooled connection: it is made with
// `identity->client->newSsl(endpoint.allowed_ids)`, SNI = the route's SNI and ALPN "h2", and
// endpoint state is keyed by Endpoint::key (route SNI, address and allowed IDs), so a stream
// only rides a connection whose server proved one of the identities its route allows. A
// connection made with an older SVID takes no new streams and closes once idle; so does one
// to an endpoint that left the services config (its state is freed once nothing uses it).
//
// Thread: the worker's only. Owned by the Worker; outlives every session using it.

#include <event2/event.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
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

// What /clusters shows of one worker's pool; ClusterView::merge adds another worker's.
struct EndpointView {
  std::string address;
  std::uint64_t rq_active = 0, rq_total = 0, rq_error = 0;
  std::uint64_t cx_active = 0, cx_total = 0, cx_connect_fail = 0;
  std::uint64_t ejections = 0;
  bool ejected = false;
  bool warming = false;
};
struct ClusterView {
  std::string name;
  std::string load_balancer;
  std::uint64_t max_connections = 0, max_pending = 0, max_requests = 0, max_retries = 0;
  std::uint64_t rq_active = 0, rq_pending_active = 0;
  std::uint64_t rq_retry = 0, rq_retry_overflow = 0, rq_pending_overflow = 0, rq_timeout = 0;
  std::vector<EndpointView> endpoints;
  void merge(const ClusterView& other);
};
// Envoy's /clusters text: "outbound|8000||host::10.0.0.1:8000::rq_active::3" lines.
std::string renderClusters(const std::vector<ClusterView>& clusters);

class UpstreamPool final : public http::UpstreamConnectionOwner {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    http::SessionLimits limits;  // buffer_limit, idle_timeout, max_concurrent_streams
    unsigned workers = 1;        // the sidecar's worker threads: each enforces its share
  };

  // `random` draws the candidates of least request and random (injected: tests make it
  // predictable).
  UpstreamPool(event_base* base, WorkerStats& stats, Options options,
               std::function<std::uint32_t()> random);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Picks an endpoint of `route` (which `snapshot` holds) and opens a stream to it for `ex`,
  // reporting to `callbacks`, or queues the request. Null when it cannot be taken (no
  // endpoint, queue full, retry budget): ex.failure_reason then says why when it is a limit.
  // A retry is a request with ex.attempts > 1.
  http::UpstreamRequest* newStream(const std::shared_ptr<const Snapshot>& snapshot,
                                   const ServiceRoute& route, http::Exchange& ex,
                                   http::UpstreamCallbacks& callbacks);

  // Opaque TCP, balanced per connection by the same rules: the index of the endpoint of
  // `route` the next connection should go to. tcpStart counts a connection to `endpoint` as
  // in flight until tcpDone; tcpConnected reports it up (a success for outlier detection);
  // tcpDone with `connect_failed` counts a gateway error.
  std::size_t tcpPick(const Snapshot& snapshot, const ServiceRoute& route);
  void tcpStart(const Snapshot& snapshot, const ServiceRoute& route, const Endpoint& endpoint);
  void tcpConnected(const Endpoint& endpoint);
  void tcpDone(const Endpoint& endpoint, bool connected, bool connect_failed);

  // A request of `route` timed out (counted per service).
  void onRequestTimeout(const ServiceRoute& route);

  // Once a second: outlier returns, idle connections closed (limits.idle_timeout, or made with
  // an identity other than `current`'s), endpoints and services no longer in `current` drained
  // and freed.
  void onTick(const Snapshot& current);
  // Closes every connection without reporting to streams (worker shutdown, after every
  // session was aborted).
  void closeAll();

  // For /clusters, and tests.
  std::vector<ClusterView> views() const;
  std::size_t connections() const;
  // Which endpoint of `route` the next request would go to (tests), or route.endpoints.size()
  // when every one is at its request limit.
  std::size_t pick(const Snapshot& snapshot, const ServiceRoute& route);

  // UpstreamConnectionOwner:
  void enter() override { ++depth_; }
  void leave() override;
  void onUpstreamClosed(http::UpstreamConnection* connection) override;
  void onStreamDone(http::UpstreamConnection* connection,
                    const http::StreamOutcome& outcome) override;

 private:
  struct Cluster;
  class Pending;
  struct Conn {
    std::unique_ptr<http::Http2Upstream> h2;
    std::shared_ptr<const Identity> identity;  // the SVID it was made with
    std::time_t idle_since = 0;                // 0: streams open
  };
  struct EndpointState {
    std::uint64_t key = 0;
    std::string address;
    Cluster* cluster = nullptr;
    std::vector<Conn> conns;
    std::size_t active = 0;      // HTTP streams and TCP connections in flight
    std::size_t tcp_active = 0;  // of which TCP connections
    std::uint64_t rq_total = 0, rq_error = 0, cx_total = 0, cx_connect_fail = 0;
    std::uint64_t ejections = 0;
    std::uint32_t consecutive_5xx = 0, consecutive_gateway = 0;
    std::uint32_t times_ejected = 0;
    bool errors_this_interval = false;
    bool ejected = false;
    Clock::time_point ejected_until{};
    Clock::time_point warm_from{};  // back from ejection at; {} when not warming
    bool in_config = true;          // listed by the newest snapshot's route
  };
  struct Cluster {
    std::uint64_t key = 0;
    std::string name;
    std::uint64_t version = 0;  // services version `members` and `settings` came from
    TrafficSettings settings;
    std::vector<EndpointState*> members;
    std::size_t active = 0;          // streams in flight and queued requests
    std::size_t active_retries = 0;  // retries among them
    std::deque<Pending*> queue;
    std::uint64_t rq_retry = 0, rq_retry_overflow = 0, rq_pending_overflow = 0, rq_timeout = 0;
    std::size_t round_robin = 0;
    std::size_t ejected_count = 0;   // members ejected now
    std::size_t endpoint_count = 0;  // EndpointStates pointing here
    Clock::time_point next_interval{};
    bool in_config = true;
  };

  Cluster& cluster(const Snapshot& snapshot, const ServiceRoute& route);
  EndpointState& endpointState(Cluster& c, const Endpoint& endpoint);
  std::size_t share(std::size_t count) const;  // this worker's share of a sidecar-wide count
  // Index into route.endpoints, or route.endpoints.size() when every one is at its limit.
  // A retry (`retry_of` set) avoids the endpoints that request went to, unless no other
  // endpoint is available.
  std::size_t choose(Cluster& c, const ServiceRoute& route, bool for_tcp,
                     const http::Exchange* retry_of = nullptr);
  bool available(const Cluster& c, const EndpointState& e, bool panic, bool for_tcp) const;
  bool loses(const EndpointState& e, Clock::time_point now);  // warming: loses this draw
  http::UpstreamRequest* open(const std::shared_ptr<const Snapshot>& snapshot,
                              const ServiceRoute& route, std::size_t index, http::Exchange& ex,
                              http::UpstreamCallbacks& callbacks);
  http::Http2Upstream* connectionFor(const Snapshot& snapshot, const ServiceRoute& route,
                                     const Endpoint& endpoint, EndpointState& s);
  http::Http2Upstream* connect(const Snapshot& snapshot, const ServiceRoute& route,
                               const Endpoint& endpoint, EndpointState& s);
  void recordOutcome(EndpointState& e, bool gateway_error, bool error_5xx);
  void maybeEject(EndpointState& e);
  void scheduleDispatch();
  static void onDispatch(evutil_socket_t, short, void* arg);
  void dispatchQueues();
  void expireQueues(Clock::time_point now);
  void failPending(Pending* p, const std::string& reason, bool timed_out);
  void cancelPending(Pending* p);

  event_base* base_;
  WorkerStats& stats_;
  Options options_;
  // What Http2Upstream reads: limits. connect_timeout is set per service right before each
  // connect (the only time a connection reads it).
  http::SessionOptions session_options_;
  std::function<std::uint32_t()> random_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Cluster>> clusters_;
  std::unordered_map<std::uint64_t, std::unique_ptr<EndpointState>> endpoints_;
  std::vector<std::unique_ptr<http::UpstreamConnection>> dead_;
  event* dispatch_event_ = nullptr;  // runs the queues outside the callback that freed a slot
  std::size_t queued_ = 0;           // in every cluster's queue
  std::time_t now_ = 0;              // wall clock as of the last onTick
  int depth_ = 0;
  bool closing_ = false;
};

}  // namespace palisade::proxy
