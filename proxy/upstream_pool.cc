#include "proxy/upstream_pool.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "proxy/socket_util.h"

namespace palisade::proxy {

using common::HandshakeFailure;

UpstreamPool::UpstreamPool(event_base* base, WorkerStats& stats, Options options,
                           std::function<std::uint32_t()> random)
    : base_(base), stats_(stats), options_(std::move(options)), random_(std::move(random)) {
  session_options_.limits = options_.limits;
}

UpstreamPool::~UpstreamPool() { closeAll(); }

void UpstreamPool::closeAll() {
  for (auto& [key, s] : endpoints_) {
    for (Conn& c : s->conns) {
      c.h2->close();
    }
  }
  endpoints_.clear();
  dead_.clear();
}

void UpstreamPool::leave() {
  if (--depth_ == 0) {
    dead_.clear();
  }
}

void UpstreamPool::onUpstreamClosed(http::UpstreamConnection* connection) {
  for (auto& [key, s] : endpoints_) {
    auto it = std::find_if(s->conns.begin(), s->conns.end(),
                           [&](const Conn& c) { return c.h2.get() == connection; });
    if (it != s->conns.end()) {
      dead_.push_back(std::move(it->h2));
      s->conns.erase(it);
      return;
    }
  }
}

UpstreamPool::EndpointState& UpstreamPool::state(const ServiceRoute& route,
                                                 const Endpoint& endpoint) {
  // Secure naming is part of the key: a connection verified for one set of identities never
  // carries a request whose route allows another set.
  key_.clear();
  key_.append(route.sni).push_back('\n');
  key_.append(endpoint.text);
  for (const std::string& id : endpoint.allowed_ids) {
    key_.push_back('\n');
    key_.append(id);
  }
  auto it = endpoints_.find(key_);
  if (it == endpoints_.end()) {
    it = endpoints_.emplace(key_, std::make_unique<EndpointState>()).first;
  }
  return *it->second;
}

std::size_t UpstreamPool::active(const EndpointState& s) const {
  std::size_t n = 0;
  for (const Conn& c : s.conns) {
    n += c.h2->openStreams();
  }
  return n;
}

std::size_t UpstreamPool::activeRequests(const ServiceRoute& route, const Endpoint& endpoint) {
  return active(state(route, endpoint));
}

std::size_t UpstreamPool::connections() const {
  std::size_t n = 0;
  for (const auto& [key, s] : endpoints_) {
    n += s->conns.size();
  }
  return n;
}

std::size_t UpstreamPool::pick(const ServiceRoute& route, LoadBalancer lb) {
  const std::size_t n = route.endpoints.size();
  if (n <= 1) {
    return 0;
  }
  if (lb == LoadBalancer::kRoundRobin) {
    for (std::size_t tries = 0; tries < n; ++tries) {
      std::size_t i = round_robin_++ % n;
      if (!state(route, route.endpoints[i]).failing) {
        return i;
      }
    }
    return round_robin_++ % n;
  }
  // Least request, power of two choices (Mitzenmacher; Envoy's LEAST_REQUEST): two distinct
  // endpoints at random, the one with fewer requests in flight wins, the first on a tie.
  std::size_t a = random_() % n;
  std::size_t b = random_() % (n - 1);
  if (b >= a) {
    ++b;
  }
  const EndpointState& sa = state(route, route.endpoints[a]);
  const EndpointState& sb = state(route, route.endpoints[b]);
  if (sa.failing != sb.failing) {
    return sa.failing ? b : a;
  }
  return active(sb) < active(sa) ? b : a;
}

http::UpstreamRequest* UpstreamPool::newStream(const Snapshot& snapshot, const ServiceRoute& route,
                                               LoadBalancer lb, http::Exchange& ex,
                                               http::UpstreamCallbacks& callbacks) {
  if (route.endpoints.empty()) {
    return nullptr;
  }
  const Endpoint& endpoint = route.endpoints[pick(route, lb)];
  EndpointState& s = state(route, endpoint);
  http::Http2Upstream* conn = connectionFor(snapshot, route, endpoint, s);
  for (Conn& c : s.conns) {
    if (c.h2.get() == conn) {
      c.idle_since = 0;
    }
  }
  return conn->newStream(ex, callbacks);
}

http::Http2Upstream* UpstreamPool::connectionFor(const Snapshot& snapshot,
                                                 const ServiceRoute& route,
                                                 const Endpoint& endpoint, EndpointState& s) {
  const std::size_t local_max =
      std::min<std::size_t>(options_.limits.max_concurrent_streams,
                            options_.max_streams_per_connection);
  http::Http2Upstream* least = nullptr;
  std::size_t usable = 0;
  for (Conn& c : s.conns) {
    if (!c.h2->usable() || c.identity != snapshot.identity) {
      continue;  // closing, GOAWAY, or made with an older SVID
    }
    ++usable;
    if (c.h2->openStreams() < c.h2->maxStreams(local_max)) {
      return c.h2.get();
    }
    if (least == nullptr || c.h2->openStreams() < least->openStreams()) {
      least = c.h2.get();
    }
  }
  if (least != nullptr && usable >= options_.max_connections_per_endpoint) {
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
  bufferevent* bev = bufferevent_openssl_socket_new(base_, -1, ssl.release(),
                                                    BUFFEREVENT_SSL_CONNECTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
  auto h2 = std::make_unique<http::Http2Upstream>(base_, *this, session_options_);
  http::Http2Upstream* conn = h2.get();
  conn->enablePooledMode();
  EndpointState* st = &s;  // stable: the map holds it by unique_ptr until closeAll
  conn->setEventHook([this, raw, conn, st, target = route.host, where = endpoint.text](
                         bufferevent* b, short what) {
    if ((what & BEV_EVENT_CONNECTED) != 0) {
      const unsigned char* alpn = nullptr;
      unsigned alpn_len = 0;
      SSL_get0_alpn_selected(raw, &alpn, &alpn_len);
      if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
        inc(stats_.outbound_connect_failures);
        PALISADE_LOG(kWarning, "outbound",
                     "endpoint " + where + " of " + target + " did not agree to ALPN h2");
        return false;
      }
      setNoDelay(bufferevent_getfd(b));
      inc(stats_.outbound_connections);
      st->failing = false;
      return true;
    }
    if (conn->connected()) {
      return true;  // an established connection ended: its streams fail
    }
    inc(stats_.outbound_connect_failures);
    st->failing = true;
    st->failed_at = now_;
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
                      : openssl.empty() ? std::string("connection refused or closed")
                                        : openssl;
    PALISADE_LOG(kInfo, "outbound", "endpoint " + where + " of " + target + " failed: " + why);
    return true;
  });
  s.conns.push_back(Conn{std::move(h2), snapshot.identity, 0});
  conn->connect(bev, reinterpret_cast<const sockaddr*>(&endpoint.address), endpoint.address_len);
  return conn;
}

void UpstreamPool::onTick(std::time_t now, const std::shared_ptr<const Identity>& current) {
  const auto idle_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(options_.limits.idle_timeout).count();
  now_ = now;
  http::CallbackScope scope(*this);
  for (auto& [key, s] : endpoints_) {
    if (s->failing && now - s->failed_at >= kFailingFor) {
      s->failing = false;  // try it again
    }
    for (Conn& c : s->conns) {
      if (c.h2->openStreams() != 0) {
        c.idle_since = 0;
        continue;
      }
      if (c.idle_since == 0) {
        c.idle_since = now;
      }
      if (c.identity != current || now - c.idle_since >= idle_seconds) {
        c.h2->close();
        dead_.push_back(std::move(c.h2));
      }
    }
    std::erase_if(s->conns, [](const Conn& c) { return c.h2 == nullptr; });
  }
}

}  // namespace palisade::proxy
