#include "proxy/upstream_pool.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "proxy/dispatcher.h"
#include "proxy/socket_util.h"

namespace palisade::proxy {

using common::HandshakeFailure;

namespace {

constexpr std::chrono::milliseconds kMaxEjectionTime{300'000};  // Envoy's max_ejection_time
constexpr std::chrono::milliseconds kQueueCheck{100};
constexpr std::size_t kRetryBudgetPercent = 20;  // Envoy's retry_budget defaults
constexpr std::size_t kMinRetryConcurrency = 3;

const char* loadBalancerName(LoadBalancer lb) {
  switch (lb) {
    case LoadBalancer::kRoundRobin:
      return "ROUND_ROBIN";
    case LoadBalancer::kRandom:
      return "RANDOM";
    case LoadBalancer::kLeastRequest:
      break;
  }
  return "LEAST_REQUEST";
}

// "outbound|8000||httpbin.foo" -> "httpbin.foo:8000", for messages.
std::string hostPort(const ServiceRoute& route) {
  return route.host + ":" + std::to_string(route.port);
}

}  // namespace

// A request waiting for a slot: it keeps what the session sends until an endpoint takes it,
// then replays it onto the stream and hands the exchange that stream (ex.upstream).
class UpstreamPool::Pending final : public http::UpstreamRequest {
 public:
  Pending(UpstreamPool& pool, Cluster& cluster, std::shared_ptr<const Snapshot> snapshot,
          const ServiceRoute& route, http::Exchange& ex, http::UpstreamCallbacks& callbacks,
          Clock::time_point deadline)
      : pool_(pool),
        cluster_(cluster),
        snapshot_(std::move(snapshot)),
        route_(route),
        ex_(ex),
        cb_(callbacks),
        deadline_(deadline),
        retry_(ex.attempts > 1),
        body_(evbuffer_new()) {}
  ~Pending() { evbuffer_free(body_); }

  void sendHead(http::Exchange&, bool end_stream) override {
    head_ = true;
    ended_ = end_stream;
  }
  bool sendData(const std::uint8_t* data, std::size_t len) override {
    evbuffer_add(body_, data, len);
    if (evbuffer_get_length(body_) > pool_.options_.limits.buffer_limit) {
      blocked_ = true;
      return false;
    }
    return true;
  }
  void sendEnd() override { ended_ = true; }
  void pauseResponse(bool paused) override { paused_ = paused; }
  void cancel() override { pool_.cancelPending(this); }

  // Sends what was kept to `up` and makes it the exchange's upstream.
  void replay(http::UpstreamRequest* up) {
    ex_.upstream = up;
    if (head_) {
      up->sendHead(ex_, ended_ && evbuffer_get_length(body_) == 0);
    }
    std::size_t n = evbuffer_get_length(body_);
    if (n != 0) {
      const auto* data = evbuffer_pullup(body_, static_cast<ev_ssize_t>(n));
      up->sendData(data, n);
      if (ended_) {
        up->sendEnd();
      }
    }
    if (paused_) {
      up->pauseResponse(true);
    }
    if (blocked_) {
      // The session held request bytes back: it may send again (the stream applies its own
      // limit from here).
      http::CallbackScope scope(cb_);
      cb_.onUpstreamWritable(ex_);
    }
  }

  UpstreamPool& pool_;
  Cluster& cluster_;
  std::shared_ptr<const Snapshot> snapshot_;  // keeps route_ alive
  const ServiceRoute& route_;
  http::Exchange& ex_;
  http::UpstreamCallbacks& cb_;
  Clock::time_point deadline_;
  Clock::time_point queued_at_ = Clock::now();
  bool retry_;
  evbuffer* body_;
  bool head_ = false;
  bool ended_ = false;
  bool paused_ = false;
  bool blocked_ = false;
};

void ClusterView::merge(const ClusterView& o) {
  rq_active += o.rq_active;
  rq_pending_active += o.rq_pending_active;
  rq_retry += o.rq_retry;
  rq_retry_overflow += o.rq_retry_overflow;
  rq_pending_overflow += o.rq_pending_overflow;
  rq_timeout += o.rq_timeout;
  for (const EndpointView& e : o.endpoints) {
    auto it = std::find_if(endpoints.begin(), endpoints.end(),
                           [&](const EndpointView& m) { return m.address == e.address; });
    if (it == endpoints.end()) {
      endpoints.push_back(e);
      continue;
    }
    it->rq_active += e.rq_active;
    it->rq_total += e.rq_total;
    it->rq_error += e.rq_error;
    it->cx_active += e.cx_active;
    it->cx_total += e.cx_total;
    it->cx_connect_fail += e.cx_connect_fail;
    it->ejections += e.ejections;
    it->ejected = it->ejected || e.ejected;
    it->warming = it->warming || e.warming;
  }
}

std::string renderClusters(const std::vector<ClusterView>& clusters) {
  std::string out;
  auto line = [&out](const std::string& prefix, const char* name, const std::string& value) {
    out.append(prefix).append("::").append(name).append("::").append(value).push_back('\n');
  };
  auto num = [&line](const std::string& prefix, const char* name, std::uint64_t v) {
    line(prefix, name, std::to_string(v));
  };
  for (const ClusterView& c : clusters) {
    const std::string p = c.name;
    num(p + "::default_priority", "max_connections", c.max_connections);
    num(p + "::default_priority", "max_pending_requests", c.max_pending);
    num(p + "::default_priority", "max_requests", c.max_requests);
    num(p + "::default_priority", "max_retries", c.max_retries);
    line(p, "lb_policy", c.load_balancer);
    num(p, "rq_active", c.rq_active);
    num(p, "rq_pending_active", c.rq_pending_active);
    num(p, "upstream_rq_retry", c.rq_retry);
    num(p, "upstream_rq_retry_overflow", c.rq_retry_overflow);
    num(p, "upstream_rq_pending_overflow", c.rq_pending_overflow);
    num(p, "upstream_rq_timeout", c.rq_timeout);
    for (const EndpointView& e : c.endpoints) {
      const std::string ep = p + "::" + e.address;
      num(ep, "cx_active", e.cx_active);
      num(ep, "cx_total", e.cx_total);
      num(ep, "cx_connect_fail", e.cx_connect_fail);
      num(ep, "rq_active", e.rq_active);
      num(ep, "rq_total", e.rq_total);
      num(ep, "rq_error", e.rq_error);
      num(ep, "ejections_total", e.ejections);
      line(ep, "health_flags",
           e.ejected   ? "/failed_outlier_check"
           : e.warming ? "/pending_warmup"
                       : "healthy");
    }
  }
  return out;
}

UpstreamPool::UpstreamPool(event_base* base, WorkerStats& stats, Options options,
                           std::function<std::uint32_t()> random)
    : base_(base), stats_(stats), options_(std::move(options)), random_(std::move(random)) {
  session_options_.limits = options_.limits;
  dispatch_event_ = event_new(base_, -1, 0, onDispatch, this);
}

UpstreamPool::~UpstreamPool() {
  closeAll();
  event_free(dispatch_event_);
}

void UpstreamPool::closeAll() {
  closing_ = true;
  for (auto& [key, c] : clusters_) {
    for (Pending* p : c->queue) {
      delete p;
    }
    c->queue.clear();
  }
  queued_ = 0;
  for (auto& [key, e] : endpoints_) {
    for (Conn& c : e->conns) {
      c.h2->close();
    }
  }
  endpoints_.clear();
  clusters_.clear();
  dead_.clear();
  closing_ = false;
}

void UpstreamPool::leave() {
  if (--depth_ == 0) {
    dead_.clear();
  }
}

std::size_t UpstreamPool::share(std::size_t count) const {
  const std::size_t w = std::max(1u, options_.workers);
  return std::max<std::size_t>(1, (count + w - 1) / w);
}

void UpstreamPool::onUpstreamClosed(http::UpstreamConnection* connection) {
  auto* h2 = static_cast<http::Http2Upstream*>(connection);
  auto* e = static_cast<EndpointState*>(h2->tag());
  if (e == nullptr) {
    return;
  }
  auto it = std::find_if(e->conns.begin(), e->conns.end(),
                         [&](const Conn& c) { return c.h2.get() == h2; });
  if (it != e->conns.end()) {
    dead_.push_back(std::move(it->h2));
    e->conns.erase(it);
  }
}

UpstreamPool::Cluster& UpstreamPool::cluster(const Snapshot& snapshot, const ServiceRoute& route) {
  auto it = clusters_.find(route.key);
  if (it == clusters_.end()) {
    auto c = std::make_unique<Cluster>();
    c->key = route.key;
    c->name = route.cluster;
    it = clusters_.emplace(route.key, std::move(c)).first;
  }
  Cluster& c = *it->second;
  const std::uint64_t version = snapshot.services->version;
  if (c.version < version || c.members.empty()) {
    // The newest config seen: its settings and endpoints rule from now on.
    c.version = std::max(c.version, version);
    c.settings = route.traffic;
    c.members.clear();
    for (const Endpoint& e : route.endpoints) {
      c.members.push_back(&endpointState(c, e));
    }
  }
  return c;
}

UpstreamPool::EndpointState& UpstreamPool::endpointState(Cluster& c, const Endpoint& endpoint) {
  auto it = endpoints_.find(endpoint.key);
  if (it == endpoints_.end()) {
    auto e = std::make_unique<EndpointState>();
    e->key = endpoint.key;
    e->address = endpoint.text;
    e->cluster = &c;
    ++c.endpoint_count;
    it = endpoints_.emplace(endpoint.key, std::move(e)).first;
  }
  return *it->second;
}

bool UpstreamPool::available(const Cluster& c, const EndpointState& e, bool panic,
                             bool for_tcp) const {
  if (e.ejected && !panic) {
    return false;
  }
  return for_tcp || e.active - e.tcp_active < share(c.settings.max_requests);
}

bool UpstreamPool::loses(const EndpointState& e, Clock::time_point now) {
  if (e.warm_from == Clock::time_point{}) {
    return false;
  }
  const auto warmup = e.cluster->settings.warmup;
  const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - e.warm_from);
  if (warmup.count() <= 0 || since >= warmup) {
    return false;
  }
  // Chosen with a probability that grows linearly from 0 to 1 over the warm-up.
  return static_cast<std::int64_t>(random_() % 1000) * warmup.count() >= since.count() * 1000;
}

std::size_t UpstreamPool::choose(Cluster& c, const ServiceRoute& route, bool for_tcp,
                                 const http::Exchange* retry_of) {
  const std::size_t n = route.endpoints.size();
  if (n == 0) {
    return 0;
  }
  if (retry_of != nullptr && retry_of->tried_count != 0) {
    // Istio's default retry policy (previous_hosts): try elsewhere first.
    bool any_other = false;
    for (std::size_t i = 0; i < n && !any_other; ++i) {
      any_other = std::find(retry_of->tried, retry_of->tried + retry_of->tried_count,
                            route.endpoints[i].key) == retry_of->tried + retry_of->tried_count;
    }
    if (any_other) {
      const std::size_t saved = c.round_robin;
      for (int draws = 0; draws < 8; ++draws) {
        std::size_t i = choose(c, route, for_tcp, nullptr);
        if (i >= n) {
          return i;
        }
        if (std::find(retry_of->tried, retry_of->tried + retry_of->tried_count,
                      route.endpoints[i].key) == retry_of->tried + retry_of->tried_count) {
          return i;
        }
      }
      c.round_robin = saved;
      for (std::size_t k = 0; k < n; ++k) {  // unlucky draws: the first untried that can take it
        const std::size_t i = (saved + k) % n;
        const bool tried =
            std::find(retry_of->tried, retry_of->tried + retry_of->tried_count,
                      route.endpoints[i].key) != retry_of->tried + retry_of->tried_count;
        if (!tried && available(c, endpointState(c, route.endpoints[i]),
                                c.ejected_count >= c.members.size(), for_tcp)) {
          return i;
        }
      }
    }
  }
  const bool panic = c.ejected_count >= c.members.size();
  auto state = [&](std::size_t i) -> EndpointState& {
    return i < c.members.size() && c.members[i]->key == route.endpoints[i].key
               ? *c.members[i]
               : endpointState(c, route.endpoints[i]);
  };
  auto usable = [&](std::size_t i) { return available(c, state(i), panic, for_tcp); };
  Clock::time_point now{};
  auto warming_loses = [&](EndpointState& e) {
    if (e.warm_from == Clock::time_point{}) {
      return false;
    }
    if (now == Clock::time_point{}) {
      now = Clock::now();
    }
    if (!loses(e, now)) {
      if (now - e.warm_from >= e.cluster->settings.warmup) {
        e.warm_from = {};  // warmed up
      }
      return false;
    }
    return true;
  };
  auto scan = [&](std::size_t from) {
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = (from + k) % n;
      if (usable(i)) {
        return i;
      }
    }
    return n;
  };
  switch (c.settings.load_balancer) {
    case LoadBalancer::kRoundRobin: {
      for (std::size_t tries = 0; tries < n; ++tries) {
        std::size_t i = c.round_robin++ % n;
        if (usable(i) && !warming_loses(state(i))) {
          return i;
        }
      }
      return scan(c.round_robin++ % n);
    }
    case LoadBalancer::kRandom: {
      std::size_t i = random_() % n;
      if (usable(i) && !warming_loses(state(i))) {
        return i;
      }
      return scan(i);
    }
    case LoadBalancer::kLeastRequest:
      break;
  }
  if (n == 1) {
    return usable(0) ? 0 : n;
  }
  // Least request, power of two choices (Mitzenmacher; Envoy's LEAST_REQUEST): two distinct
  // endpoints at random, the one with fewer requests in flight wins, the first on a tie.
  std::size_t a = random_() % n;
  std::size_t b = random_() % (n - 1);
  if (b >= a) {
    ++b;
  }
  const bool ua = usable(a);
  const bool ub = usable(b);
  if (ua && ub) {
    EndpointState& sa = state(a);
    EndpointState& sb = state(b);
    if (warming_loses(sa)) {
      return b;
    }
    if (warming_loses(sb)) {
      return a;
    }
    return sb.active < sa.active ? b : a;
  }
  if (ua) {
    return a;
  }
  if (ub) {
    return b;
  }
  return scan(a);
}

std::size_t UpstreamPool::pick(const Snapshot& snapshot, const ServiceRoute& route) {
  return choose(cluster(snapshot, route), route, false);
}

http::UpstreamRequest* UpstreamPool::newStream(const std::shared_ptr<const Snapshot>& snapshot,
                                               const ServiceRoute& route, http::Exchange& ex,
                                               http::UpstreamCallbacks& callbacks) {
  if (route.endpoints.empty()) {
    return nullptr;
  }
  Cluster& c = cluster(*snapshot, route);
  const TrafficSettings& t = c.settings;
  if (ex.attempts > 1) {
    // Envoy's retry budget: retries in flight at most 20 % of the requests in flight (at
    // least 3), and at most maxRetries.
    const std::size_t budget = std::min(
        share(t.max_retries), std::max(kMinRetryConcurrency, c.active * kRetryBudgetPercent / 100));
    if (c.active_retries >= budget) {
      ++c.rq_retry_overflow;
      inc(stats_.upstream_retry_overflow);
      ex.failure_reason = "upstream connect error: retry budget exhausted (" +
                          std::to_string(c.active_retries) + " retries in flight to " +
                          hostPort(route) + ", at most " + std::to_string(budget) + ": " +
                          std::to_string(kRetryBudgetPercent) + "% of " + std::to_string(c.active) +
                          " requests, at least " + std::to_string(kMinRetryConcurrency) +
                          ", connectionPool.http.maxRetries " + std::to_string(t.max_retries) + ")";
      return nullptr;
    }
    ++c.rq_retry;
    inc(stats_.upstream_retries);
  }
  std::size_t index = c.queue.empty() ? choose(c, route, false, ex.attempts > 1 ? &ex : nullptr)
                                      : route.endpoints.size();
  if (index < route.endpoints.size()) {
    return open(snapshot, route, index, ex, callbacks);
  }
  // Every endpoint is at http2MaxRequests (or others wait already): queue, bounded.
  if (c.queue.size() >= share(t.max_pending)) {
    ++c.rq_pending_overflow;
    inc(stats_.upstream_queue_full);
    ex.failure_reason = "upstream overflow: every endpoint of " + hostPort(route) + " has " +
                        std::to_string(share(t.max_requests)) +
                        " requests in flight (connectionPool.http.http2MaxRequests " +
                        std::to_string(t.max_requests) + ") and " + std::to_string(c.queue.size()) +
                        " wait (connectionPool.http.http1MaxPendingRequests " +
                        std::to_string(t.max_pending) + ")";
    return nullptr;
  }
  auto* p = new Pending(*this, c, snapshot, route, ex, callbacks, Clock::now() + t.connect_timeout);
  c.queue.push_back(p);
  ++c.active;
  if (p->retry_) {
    ++c.active_retries;
  }
  ++queued_;
  if (!evtimer_pending(dispatch_event_, nullptr)) {
    timeval tv = toTimeval(kQueueCheck);
    evtimer_add(dispatch_event_, &tv);
  }
  return p;
}

http::UpstreamRequest* UpstreamPool::open(const std::shared_ptr<const Snapshot>& snapshot,
                                          const ServiceRoute& route, std::size_t index,
                                          http::Exchange& ex, http::UpstreamCallbacks& callbacks) {
  const Endpoint& endpoint = route.endpoints[index];
  Cluster& c = cluster(*snapshot, route);
  EndpointState& e = endpointState(c, endpoint);
  http::Http2Upstream* conn = connectionFor(*snapshot, route, endpoint, e);
  for (Conn& k : e.conns) {
    if (k.h2.get() == conn) {
      k.idle_since = 0;
    }
  }
  ++e.active;
  ++e.rq_total;
  ++c.active;
  if (ex.attempts > 1) {
    ++c.active_retries;
  }
  if (ex.tried_count < std::size(ex.tried)) {
    ex.tried[ex.tried_count++] = endpoint.key;
  }
  return conn->newStream(ex, callbacks);
}

http::Http2Upstream* UpstreamPool::connectionFor(const Snapshot& snapshot,
                                                 const ServiceRoute& route,
                                                 const Endpoint& endpoint, EndpointState& s) {
  const TrafficSettings& t = s.cluster->settings;
  const std::size_t local_max = options_.limits.max_concurrent_streams;
  http::Http2Upstream* least = nullptr;
  std::size_t usable = 0;
  for (Conn& c : s.conns) {
    if (!c.h2->usable() || c.identity != snapshot.identity) {
      continue;  // closing, GOAWAY, or made with an older SVID
    }
    if (t.max_requests_per_connection != 0 &&
        c.h2->totalStreams() >= t.max_requests_per_connection) {
      continue;
    }
    ++usable;
    if (c.h2->openStreams() < c.h2->maxStreams(local_max)) {
      return c.h2.get();
    }
    if (least == nullptr || c.h2->openStreams() < least->openStreams()) {
      least = c.h2.get();
    }
  }
  if (least != nullptr && usable >= share(t.max_connections)) {
    return least;  // at the limit: nghttp2 queues the stream until one finishes
  }
  return connect(snapshot, route, endpoint, s);
}

http::Http2Upstream* UpstreamPool::connect(const Snapshot& snapshot, const ServiceRoute& route,
                                           const Endpoint& endpoint, EndpointState& s) {
  common::SslPtr ssl = snapshot.identity->client->newSsl(endpoint.allowed_ids);
  SSL_set_options(ssl.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_set_tlsext_host_name(ssl.get(), route.sni.c_str());
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kH2, sizeof kH2);
  SSL* raw = ssl.get();
  bufferevent* bev = bufferevent_openssl_socket_new(
      base_, -1, ssl.release(), BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
  // Connect timeout per service (connectionPool.tcp.connectTimeout).
  auto& options = session_options_;
  options.limits.connect_timeout = s.cluster->settings.connect_timeout;
  auto h2 = std::make_unique<http::Http2Upstream>(base_, *this, options);
  http::Http2Upstream* conn = h2.get();
  conn->enablePooledMode();
  conn->setTag(&s);
  ++s.cx_total;
  EndpointState* st = &s;  // stable: freed only once it has no connection
  conn->setEventHook([this, raw, conn, st, target = route.host, where = endpoint.text](
                         bufferevent* b, short what) {
    if ((what & BEV_EVENT_CONNECTED) != 0) {
      const unsigned char* alpn = nullptr;
      unsigned alpn_len = 0;
      SSL_get0_alpn_selected(raw, &alpn, &alpn_len);
      if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
        inc(stats_.outbound_connect_failures);
        ++st->cx_connect_fail;
        PALISADE_LOG(kWarning, "outbound",
                     "endpoint " + where + " of " + target + " did not agree to ALPN h2");
        return false;
      }
      setNoDelay(bufferevent_getfd(b));
      inc(stats_.outbound_connections);
      return true;
    }
    if (conn->connected()) {
      return true;  // an established connection ended: its streams fail
    }
    inc(stats_.outbound_connect_failures);
    ++st->cx_connect_fail;
    const common::PeerIdentity* p = common::peerIdentity(raw);
    if (p != nullptr && p->failure != HandshakeFailure::kNone) {
      inc(stats_.outbound_handshake_failures[static_cast<std::size_t>(p->failure)]);
      PALISADE_LOG(kWarning, "tls",
                   "outbound to " + target + " endpoint " + where +
                       " failed: " + common::handshakeFailureName(p->failure) + ": " + p->reason);
      return true;
    }
    std::string openssl;
    while (unsigned long e = bufferevent_get_openssl_error(b)) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      openssl += (openssl.empty() ? "" : "; ") + std::string(buf);
    }
    std::string why = (what & BEV_EVENT_TIMEOUT) != 0 ? std::string("timed out connecting")
                      : openssl.empty()               ? std::string("connection refused or closed")
                                                      : openssl;
    PALISADE_LOG(kInfo, "outbound", "endpoint " + where + " of " + target + " failed: " + why);
    return true;
  });
  s.conns.push_back(Conn{std::move(h2), snapshot.identity, 0});
  conn->connect(bev, reinterpret_cast<const sockaddr*>(&endpoint.address), endpoint.address_len);
  return conn;
}

void UpstreamPool::onStreamDone(http::UpstreamConnection* connection,
                                const http::StreamOutcome& outcome) {
  if (closing_) {
    return;
  }
  auto* e = static_cast<EndpointState*>(static_cast<http::Http2Upstream*>(connection)->tag());
  if (e == nullptr) {
    return;
  }
  Cluster& c = *e->cluster;
  --e->active;
  --c.active;
  if (outcome.retry) {
    --c.active_retries;
  }
  if (outcome.failed && !outcome.cancelled) {
    ++e->rq_error;
    // REFUSED_STREAM on a live connection (past a GOAWAY) is the peer shedding streams it
    // never started, not a failing endpoint.
    if (!outcome.refused || outcome.never_connected) {
      recordOutcome(*e, true, true);
    }
  } else if (outcome.status >= 500) {
    ++e->rq_error;
    const bool gateway = outcome.status == 502 || outcome.status == 503 || outcome.status == 504;
    recordOutcome(*e, gateway, true);
  } else if (outcome.status != 0) {
    recordOutcome(*e, false, false);
  }
  if (queued_ != 0) {
    scheduleDispatch();
  }
}

void UpstreamPool::recordOutcome(EndpointState& e, bool gateway_error, bool error_5xx) {
  e.consecutive_gateway = gateway_error ? e.consecutive_gateway + 1 : 0;
  e.consecutive_5xx = error_5xx ? e.consecutive_5xx + 1 : 0;
  if (!gateway_error && !error_5xx) {
    return;
  }
  e.errors_this_interval = true;
  const TrafficSettings& t = e.cluster->settings;
  if ((t.consecutive_gateway != 0 && e.consecutive_gateway >= t.consecutive_gateway) ||
      (t.consecutive_5xx != 0 && e.consecutive_5xx >= t.consecutive_5xx)) {
    maybeEject(e);
  }
}

void UpstreamPool::maybeEject(EndpointState& e) {
  Cluster& c = *e.cluster;
  const TrafficSettings& t = c.settings;
  if (e.ejected) {
    return;
  }
  const std::size_t allowed =
      std::max<std::size_t>(1, c.members.size() * t.max_ejection_percent / 100);
  const std::string why = e.consecutive_gateway >= t.consecutive_gateway && t.consecutive_gateway
                              ? std::to_string(e.consecutive_gateway) + " gateway errors"
                              : std::to_string(e.consecutive_5xx) + " 5xx answers";
  e.consecutive_gateway = e.consecutive_5xx = 0;
  if (c.ejected_count >= allowed) {
    PALISADE_LOG(kInfo, "outbound",
                 "endpoint " + e.address + " of " + c.name + " failing (" + why +
                     " in a row) but not ejected: " + std::to_string(c.ejected_count) + " of " +
                     std::to_string(c.members.size()) + " are out already (maxEjectionPercent " +
                     std::to_string(t.max_ejection_percent) + ")");
    return;
  }
  ++e.times_ejected;
  auto duration = t.base_ejection_time * e.times_ejected;
  duration = std::min(duration, std::max(kMaxEjectionTime, t.base_ejection_time));
  e.ejected = true;
  e.ejected_until = Clock::now() + duration;
  e.warm_from = {};
  ++e.ejections;
  ++c.ejected_count;
  inc(stats_.outlier_ejections);
  PALISADE_LOG(kWarning, "outbound",
               "endpoint " + e.address + " of " + c.name + " ejected for " +
                   std::to_string(duration.count()) + " ms after " + why + " in a row");
}

void UpstreamPool::scheduleDispatch() { event_active(dispatch_event_, EV_TIMEOUT, 0); }

void UpstreamPool::onDispatch(evutil_socket_t, short, void* arg) {
  auto* pool = static_cast<UpstreamPool*>(arg);
  http::CallbackScope scope(*pool);
  pool->expireQueues(Clock::now());
  pool->dispatchQueues();
  if (pool->queued_ != 0) {
    timeval tv = toTimeval(kQueueCheck);
    evtimer_add(pool->dispatch_event_, &tv);
  }
}

void UpstreamPool::dispatchQueues() {
  for (auto& [key, cp] : clusters_) {
    Cluster& c = *cp;
    while (!c.queue.empty()) {
      Pending* p = c.queue.front();
      std::size_t index = choose(c, p->route_, false);
      if (index >= p->route_.endpoints.size()) {
        break;
      }
      c.queue.pop_front();
      --queued_;
      --c.active;  // open() counts it again
      if (p->retry_) {
        --c.active_retries;
      }
      std::unique_ptr<Pending> owned(p);
      http::CallbackScope session_scope(p->cb_);
      p->replay(open(p->snapshot_, p->route_, index, p->ex_, p->cb_));
    }
  }
}

void UpstreamPool::expireQueues(Clock::time_point now) {
  for (auto& [key, cp] : clusters_) {
    Cluster& c = *cp;
    while (!c.queue.empty() && c.queue.front()->deadline_ <= now) {
      Pending* p = c.queue.front();
      const auto waited =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - p->queued_at_);
      failPending(p,
                  "upstream overflow: waited " + std::to_string(waited.count()) +
                      " ms for one of the " + std::to_string(share(c.settings.max_requests)) +
                      " request slots per endpoint of " + hostPort(p->route_) +
                      " (connectionPool.http.http2MaxRequests " +
                      std::to_string(c.settings.max_requests) +
                      "; a request waits at most connectionPool.tcp.connectTimeout " +
                      std::to_string(c.settings.connect_timeout.count()) + " ms)",
                  true);
    }
  }
}

void UpstreamPool::failPending(Pending* p, const std::string& reason, bool timed_out) {
  Cluster& c = p->cluster_;
  std::erase(c.queue, p);
  --queued_;
  --c.active;
  if (p->retry_) {
    --c.active_retries;
  }
  if (timed_out) {
    ++c.rq_pending_overflow;
    inc(stats_.upstream_queue_timeout);
  }
  std::unique_ptr<Pending> owned(p);
  p->ex_.failure_reason = reason;
  http::CallbackScope scope(p->cb_);
  p->cb_.onUpstreamFailed(p->ex_, http::UpstreamFailure::kOverflow);
}

void UpstreamPool::cancelPending(Pending* p) {
  Cluster& c = p->cluster_;
  std::erase(c.queue, p);
  --queued_;
  --c.active;
  if (p->retry_) {
    --c.active_retries;
  }
  delete p;
}

std::size_t UpstreamPool::tcpPick(const Snapshot& snapshot, const ServiceRoute& route) {
  if (route.endpoints.empty()) {
    return 0;
  }
  std::size_t index = choose(cluster(snapshot, route), route, true);
  return index < route.endpoints.size() ? index : 0;
}

void UpstreamPool::tcpStart(const Snapshot& snapshot, const ServiceRoute& route,
                            const Endpoint& endpoint) {
  Cluster& c = cluster(snapshot, route);
  EndpointState& e = endpointState(c, endpoint);
  ++e.active;
  ++e.tcp_active;
  ++e.cx_total;
  ++e.rq_total;
  ++c.active;
}

void UpstreamPool::tcpConnected(const Endpoint& endpoint) {
  if (auto it = endpoints_.find(endpoint.key); it != endpoints_.end()) {
    recordOutcome(*it->second, false, false);
  }
}

void UpstreamPool::tcpDone(const Endpoint& endpoint, bool, bool connect_failed) {
  auto it = endpoints_.find(endpoint.key);
  if (it == endpoints_.end()) {
    return;  // the pool was closed (worker shutdown)
  }
  EndpointState& e = *it->second;
  --e.active;
  --e.tcp_active;
  --e.cluster->active;
  if (connect_failed) {
    ++e.cx_connect_fail;
    ++e.rq_error;
    recordOutcome(e, true, true);
  }
}

void UpstreamPool::onRequestTimeout(const ServiceRoute& route) {
  inc(stats_.upstream_request_timeouts);
  if (auto it = clusters_.find(route.key); it != clusters_.end()) {
    ++it->second->rq_timeout;
  }
}

void UpstreamPool::onTick(const Snapshot& current) {
  const auto idle_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(options_.limits.idle_timeout).count();
  now_ = std::time(nullptr);
  const Clock::time_point now = Clock::now();
  http::CallbackScope scope(*this);
  // What the newest config still lists.
  for (auto& [key, c] : clusters_) {
    c->in_config = false;
  }
  for (auto& [key, e] : endpoints_) {
    e->in_config = false;
  }
  for (const ServiceRoute& r : current.services->routes) {
    // Every configured service is known (and shown by /clusters) before its first request.
    Cluster& c = cluster(current, r);  // picks up new settings and endpoints
    c.in_config = true;
    for (const Endpoint& ep : r.endpoints) {
      if (auto e = endpoints_.find(ep.key); e != endpoints_.end()) {
        e->second->in_config = true;
      }
    }
  }
  for (auto& [key, c] : clusters_) {
    if (now < c->next_interval) {
      continue;
    }
    c->next_interval = now + c->settings.interval;
    for (EndpointState* e : c->members) {
      // Envoy lowers the ejection multiplier after each interval without errors.
      if (!e->ejected && !e->errors_this_interval && e->times_ejected != 0) {
        --e->times_ejected;
      }
      e->errors_this_interval = false;
    }
  }
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    EndpointState& e = *it->second;
    if (e.warm_from != Clock::time_point{} && now - e.warm_from >= e.cluster->settings.warmup) {
      e.warm_from = {};  // warmed up, whether or not requests came
    }
    if (e.ejected && now >= e.ejected_until) {
      e.ejected = false;
      --e.cluster->ejected_count;
      e.warm_from = now;
      e.consecutive_gateway = e.consecutive_5xx = 0;
      const auto warmup = e.cluster->settings.warmup.count();
      PALISADE_LOG(kInfo, "outbound",
                   "endpoint " + e.address + " of " + e.cluster->name + " returns from ejection" +
                       (warmup > 0 ? ", warming up over " + std::to_string(warmup) + " ms" : ""));
    }
    for (Conn& c : e.conns) {
      if (c.h2->openStreams() != 0) {
        c.idle_since = 0;
        continue;
      }
      if (c.idle_since == 0) {
        c.idle_since = now_;
      }
      // Idle: closed when past the idle timeout, made with an older SVID, or to an endpoint
      // that left the config (its streams finished: that is its drain).
      if (c.identity != current.identity || now_ - c.idle_since >= idle_seconds || !e.in_config) {
        c.h2->close();
        dead_.push_back(std::move(c.h2));
      }
    }
    std::erase_if(e.conns, [](const Conn& c) { return c.h2 == nullptr; });
    if (!e.in_config && e.conns.empty() && e.active == 0) {
      Cluster& c = *e.cluster;
      std::erase(c.members, &e);
      if (e.ejected) {
        --c.ejected_count;
      }
      --c.endpoint_count;
      it = endpoints_.erase(it);
      continue;
    }
    ++it;
  }
  std::erase_if(clusters_, [](const auto& kv) {
    const Cluster& c = *kv.second;
    return !c.in_config && c.endpoint_count == 0 && c.active == 0 && c.queue.empty();
  });
}

std::vector<ClusterView> UpstreamPool::views() const {
  std::vector<ClusterView> out;
  for (const auto& [key, cp] : clusters_) {
    const Cluster& c = *cp;
    ClusterView v;
    v.name = c.name;
    v.load_balancer = loadBalancerName(c.settings.load_balancer);
    v.max_connections = c.settings.max_connections;
    v.max_pending = c.settings.max_pending;
    v.max_requests = c.settings.max_requests;
    v.max_retries = c.settings.max_retries;
    v.rq_active = c.active - c.queue.size();
    v.rq_pending_active = c.queue.size();
    v.rq_retry = c.rq_retry;
    v.rq_retry_overflow = c.rq_retry_overflow;
    v.rq_pending_overflow = c.rq_pending_overflow;
    v.rq_timeout = c.rq_timeout;
    for (const auto& [ekey, ep] : endpoints_) {
      const EndpointState& e = *ep;
      if (e.cluster != &c) {
        continue;
      }
      EndpointView ev;
      ev.address = e.address;
      ev.rq_active = e.active;
      ev.rq_total = e.rq_total;
      ev.rq_error = e.rq_error;
      ev.cx_active = e.conns.size() + e.tcp_active;
      ev.cx_total = e.cx_total;
      ev.cx_connect_fail = e.cx_connect_fail;
      ev.ejections = e.ejections;
      ev.ejected = e.ejected;
      ev.warming = e.warm_from != Clock::time_point{};
      v.endpoints.push_back(std::move(ev));
    }
    std::sort(v.endpoints.begin(), v.endpoints.end(),
              [](const EndpointView& a, const EndpointView& b) { return a.address < b.address; });
    out.push_back(std::move(v));
  }
  return out;
}

std::size_t UpstreamPool::connections() const {
  std::size_t n = 0;
  for (const auto& [key, e] : endpoints_) {
    n += e->conns.size();
  }
  return n;
}

}  // namespace palisade::proxy
