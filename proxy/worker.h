#pragma once

// Worker: one thread, one Dispatcher, its own SO_REUSEPORT listening sockets, and every
// connection accepted on them (STYLE.md "Threads and the event loop"). The main thread
// reaches a worker only through post(): new snapshots, drain, stop. Nothing on the per-byte
// path is shared with other workers.
// Thread: the public methods marked "any thread" post to the worker; the rest run on it.

#include <event2/listener.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <list>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/dispatcher.h"
#include "proxy/snapshot.h"
#include "proxy/socket_util.h"
#include "proxy/stats.h"
#include "proxy/upstream_pool.h"

namespace palisade::proxy {

class Worker;

// Anything a worker keeps open. The worker ticks every second: timeouts, certificate expiry.
class Connection {
 public:
  explicit Connection(Worker& worker);
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Policies changed: close (TCP) or GOAWAY (HTTP/2) when the new ones deny this peer.
  virtual void onPoliciesChanged(const Policies& policies) = 0;
  // Once a second, with the wall clock.
  virtual void onTick(std::time_t now) = 0;
  // Stop taking new requests; close once idle.
  virtual void drain() = 0;
  // Close now.
  virtual void abort() = 0;

  Worker& worker() { return worker_; }

 protected:
  // Unlinks from the worker and frees this object once the current callback returns.
  void destroy();

 private:
  friend class Worker;
  Worker& worker_;
  std::list<Connection*>::iterator self_;
  bool destroyed_ = false;
};

// The bootstrap's limits as an HTTP session applies them.
http::SessionLimits sessionLimits(const ProxyLimits& limits);

enum class ListenerKind { kInbound, kOutboundTransparent, kOutboundExplicit };

struct ListenerSpec {
  ListenerKind kind;
  Sockaddr address;
  const OutboundListener* outbound = nullptr;  // kOutboundExplicit; points into the bootstrap
};

class Worker {
 public:
  // `open_connections` counts downstream connections of every worker (maxConnections).
  // `workers`: how many there are (each enforces its share of the pools' limits).
  Worker(unsigned index, unsigned workers, std::atomic<unsigned>& open_connections);
  ~Worker();

  // Opens this worker's listening sockets. Main thread, before start().
  Status listen(const std::vector<ListenerSpec>& listeners);
  // Starts the thread with `snapshot`. Main thread.
  void start(std::shared_ptr<const Snapshot> snapshot);
  // Any thread.
  void publish(std::shared_ptr<const Snapshot> snapshot);
  // Any thread: stop accepting, drain every connection; `done` runs on the worker when none
  // is left.
  void drain(std::function<void()> done);
  // Any thread: `done` gets the pool's clusters, on the worker thread.
  void collectClusters(std::function<void(std::vector<ClusterView>)> done);
  // Any thread: close every connection, leave the loop; join() then returns.
  void stop();
  void join();

  // Worker thread only.
  Dispatcher& dispatcher() { return dispatcher_; }
  event_base* base() { return dispatcher_.base(); }
  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
  WorkerStats& stats() { return stats_; }
  const WorkerStats& stats() const { return stats_; }
  std::size_t roundRobin() { return round_robin_++; }
  // Pooled HTTP/2-over-mTLS connections to outbound endpoints; made by start().
  UpstreamPool& upstreamPool() { return *upstream_pool_; }
  std::atomic<unsigned>& openConnections() { return open_connections_; }
  bool draining() const { return draining_; }
  unsigned index() const { return index_; }

 private:
  friend class Connection;
  struct Listener {
    ListenerSpec spec;
    Worker* worker;
    evconnlistener* listener = nullptr;
  };
  static void onAccept(evconnlistener* l, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void onTimer(evutil_socket_t, short, void* arg);
  static void onReap(evutil_socket_t, short, void* arg);
  void setSnapshot(std::shared_ptr<const Snapshot> snapshot);
  void closeListeners();
  void checkDrained();

  unsigned index_;
  unsigned workers_;
  std::atomic<unsigned>& open_connections_;
  Dispatcher dispatcher_;
  std::thread thread_;
  std::vector<Listener> listeners_;
  std::vector<int> pending_fds_;  // opened by listen(), wrapped by start()
  std::shared_ptr<const Snapshot> snapshot_;
  std::list<Connection*> connections_;
  std::vector<Connection*> graveyard_;
  EventPtr timer_;
  EventPtr reaper_;
  WorkerStats stats_;
  std::unique_ptr<UpstreamPool> upstream_pool_;  // before dispatcher_ goes
  std::size_t round_robin_ = 0;
  bool draining_ = false;
  std::function<void()> drained_;
};

}  // namespace palisade::proxy
