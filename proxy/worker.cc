#include "proxy/worker.h"

#include <unistd.h>

#include <cassert>
#include <random>

#include "common/log.h"
#include "proxy/inbound.h"
#include "proxy/outbound.h"

namespace palisade::proxy {

Connection::Connection(Worker& worker) : worker_(worker) {
  worker_.connections_.push_front(this);
  self_ = worker_.connections_.begin();
  inc(worker_.stats_.active_connections);
}

Connection::~Connection() = default;

void Connection::destroy() {
  if (destroyed_) {
    return;
  }
  destroyed_ = true;
  worker_.connections_.erase(self_);
  dec(worker_.stats_.active_connections);
  worker_.open_connections_.fetch_sub(1, std::memory_order_relaxed);
  worker_.graveyard_.push_back(this);
  event_active(worker_.reaper_.get(), EV_TIMEOUT, 0);
  worker_.checkDrained();
}

Worker::Worker(unsigned index, unsigned workers, std::atomic<unsigned>& open_connections)
    : index_(index), workers_(workers), open_connections_(open_connections) {
  timer_.reset(event_new(dispatcher_.base(), -1, EV_PERSIST, &Worker::onTimer, this));
  reaper_.reset(event_new(dispatcher_.base(), -1, 0, &Worker::onReap, this));
  timeval second{1, 0};
  event_add(timer_.get(), &second);
}

Worker::~Worker() {
  for (int fd : pending_fds_) {
    ::close(fd);
  }
  closeListeners();
  for (Connection* c : graveyard_) {
    delete c;
  }
}

Status Worker::listen(const std::vector<ListenerSpec>& listeners) {
  for (const ListenerSpec& spec : listeners) {
    auto fd = listenReusePort(spec.address);
    if (!fd.ok()) {
      return fd.error();
    }
    pending_fds_.push_back(*fd);
    listeners_.push_back(Listener{spec, this, nullptr});
  }
  return Ok{};
}

void Worker::start(std::shared_ptr<const Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    listeners_[i].listener =
        evconnlistener_new(dispatcher_.base(), &Worker::onAccept, &listeners_[i],
                           LEV_OPT_CLOSE_ON_FREE, -1, pending_fds_[i]);
  }
  pending_fds_.clear();
  UpstreamPool::Options pool;
  const ProxyLimits& limits = snapshot_->bootstrap->limits;
  pool.limits = sessionLimits(limits);
  pool.limits.connect_timeout = limits.connect_timeout + limits.handshake_timeout;
  pool.workers = workers_;
  upstream_pool_ = std::make_unique<UpstreamPool>(
      dispatcher_.base(), stats_, pool,
      [rng = std::minstd_rand(std::random_device{}() + index_)]() mutable {
        return static_cast<std::uint32_t>(rng());
      });
  thread_ = std::thread([this] { dispatcher_.run(); });
}

http::SessionLimits sessionLimits(const ProxyLimits& l) {
  http::SessionLimits s;
  s.max_header_bytes = l.max_header_bytes;
  s.max_headers = l.max_headers;
  s.buffer_limit = l.buffer_limit;
  s.max_concurrent_streams = l.max_concurrent_streams;
  s.idle_timeout = l.idle_timeout;
  s.connect_timeout = l.connect_timeout;
  return s;
}

void Worker::collectClusters(std::function<void(std::vector<ClusterView>)> done) {
  dispatcher_.post([this, done = std::move(done)] {
    done(upstream_pool_ ? upstream_pool_->views() : std::vector<ClusterView>{});
  });
}

void Worker::publish(std::shared_ptr<const Snapshot> snapshot) {
  dispatcher_.post([this, s = std::move(snapshot)]() mutable { setSnapshot(std::move(s)); });
}

void Worker::setSnapshot(std::shared_ptr<const Snapshot> snapshot) {
  const bool policies_changed = !snapshot_ || snapshot_->policies != snapshot->policies;
  snapshot_ = std::move(snapshot);
  if (!policies_changed) {
    return;
  }
  // Iterate over a copy: a connection may close itself while being re-checked.
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* c : open) {
    if (!c->destroyed_) {
      c->onPoliciesChanged(*snapshot_->policies);
    }
  }
}

void Worker::drain(std::function<void()> done) {
  dispatcher_.post([this, done = std::move(done)]() mutable {
    draining_ = true;
    drained_ = std::move(done);
    closeListeners();
    std::vector<Connection*> open(connections_.begin(), connections_.end());
    for (Connection* c : open) {
      if (!c->destroyed_) {
        c->drain();
      }
    }
    checkDrained();
  });
}

void Worker::checkDrained() {
  if (draining_ && connections_.empty() && drained_) {
    auto done = std::move(drained_);
    drained_ = nullptr;
    done();
  }
}

void Worker::stop() {
  dispatcher_.post([this] {
    draining_ = true;
    drained_ = nullptr;
    closeListeners();
    std::vector<Connection*> open(connections_.begin(), connections_.end());
    for (Connection* c : open) {
      if (!c->destroyed_) {
        c->abort();
      }
    }
    event_del(timer_.get());
    if (upstream_pool_) {
      upstream_pool_->closeAll();  // every session using it was aborted above
    }
    dispatcher_.exit();
  });
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
  // The loop has ended: run what abort() left for the reaper.
  onReap(-1, 0, this);
}

void Worker::closeListeners() {
  for (Listener& l : listeners_) {
    if (l.listener != nullptr) {
      evconnlistener_free(l.listener);
      l.listener = nullptr;
    }
  }
}

void Worker::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg) {
  auto* listener = static_cast<Listener*>(arg);
  Worker& w = *listener->worker;
  evutil_make_socket_closeonexec(fd);
  setNoDelay(fd);
  if (w.open_connections_.fetch_add(1, std::memory_order_relaxed) >=
      w.snapshot_->bootstrap->limits.max_connections) {
    w.open_connections_.fetch_sub(1, std::memory_order_relaxed);
    inc(w.stats_.inbound[static_cast<std::size_t>(InboundResult::kOverLimit)]);
    PALISADE_LOG(kDebug, "listener", "maxConnections reached: closing a new connection");
    ::close(fd);
    return;
  }
  const Sockaddr peer = fromSockaddr(addr, static_cast<socklen_t>(len));
  if (listener->spec.kind == ListenerKind::kInbound) {
    startInbound(w, fd, peer);
  } else {
    startOutbound(w, fd, peer, listener->spec);
  }
}

void Worker::onTimer(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  const std::time_t now = std::time(nullptr);
  std::vector<Connection*> open(w->connections_.begin(), w->connections_.end());
  for (Connection* c : open) {
    if (!c->destroyed_) {
      c->onTick(now);
    }
  }
  if (w->upstream_pool_) {
    w->upstream_pool_->onTick(*w->snapshot_);
  }
}

void Worker::onReap(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  std::vector<Connection*> dead;
  dead.swap(w->graveyard_);
  for (Connection* c : dead) {
    delete c;
  }
}

}  // namespace palisade::proxy
