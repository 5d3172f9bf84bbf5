#pragma once

// The sidecar's own counters, one set per worker (STYLE.md "The per-byte path"): only the
// owning worker writes its set, with relaxed atomics so a scrape on the main thread reads
// them without a lock; the scrape folds the sets together into the Prometheus text format
// (prometheus-cpp's serializer). Istio's standard metrics come with the observability issue.
// Thread: a worker increments its own WorkerStats; render() runs on any thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/tls_context.h"

namespace palisade::proxy {

using Counter = std::atomic<std::uint64_t>;

// Written by one thread only: a load and a store, no locked instruction.
inline void inc(Counter& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void dec(Counter& c) {
  c.store(c.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

enum class InboundResult {
  kAccepted,          // handshake done (or plaintext allowed) and authorized as far as L4 goes
  kDenied,            // L4 authorization denied the connection
  kHandshakeFailed,   // TLS handshake failed (see the reasons)
  kPlaintextRefused,  // plaintext under STRICT
  kOverLimit,         // maxConnections reached
  kCount,
};
const char* inboundResultName(InboundResult r);

constexpr std::size_t kHandshakeReasons =
    static_cast<std::size_t>(common::HandshakeFailure::kOther) + 1;

struct WorkerStats {
  std::array<Counter, static_cast<std::size_t>(InboundResult::kCount)> inbound{};
  std::array<Counter, kHandshakeReasons> inbound_handshake_failures{};
  std::array<Counter, kHandshakeReasons> outbound_handshake_failures{};
  Counter outbound_connections{};
  Counter outbound_connect_failures{};
  Counter outbound_passthrough{};
  Counter http_allowed{};
  Counter http_denied{};
  Counter closed_by_policy{};
  Counter closed_cert_expired{};
  Counter active_connections{};  // a gauge
  Counter tcp_received_bytes{};
  Counter tcp_sent_bytes{};
  // Outbound traffic management (UpstreamPool).
  Counter upstream_retries{};
  Counter upstream_retry_overflow{};
  Counter upstream_queue_full{};
  Counter upstream_queue_timeout{};
  Counter upstream_request_timeouts{};
  Counter outlier_ejections{};
};

// Process-wide values the main thread keeps.
struct ProcessStats {
  Counter policy_reloads_ok{};
  Counter policy_reloads_rejected{};
  Counter identity_reloads_ok{};
  Counter identity_reloads_rejected{};
  std::atomic<double> cert_expiry_seconds{0};
  std::atomic<std::uint64_t> policy_version{0};
};

std::string renderPrometheus(const std::vector<const WorkerStats*>& workers,
                             const ProcessStats& process);

}  // namespace palisade::proxy
