#include "proxy/stats.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace palisade::proxy {

const char* inboundResultName(InboundResult r) {
  switch (r) {
    case InboundResult::kAccepted:
      return "accepted";
    case InboundResult::kDenied:
      return "denied";
    case InboundResult::kHandshakeFailed:
      return "handshake_failed";
    case InboundResult::kPlaintextRefused:
      return "plaintext_refused";
    case InboundResult::kOverLimit:
      return "over_limit";
    case InboundResult::kCount:
      break;
  }
  return "?";
}

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

double sum(const std::vector<const WorkerStats*>& workers, const Counter WorkerStats::*field) {
  std::uint64_t total = 0;
  for (const WorkerStats* w : workers) {
    total += (w->*field).load(std::memory_order_relaxed);
  }
  return static_cast<double>(total);
}

ClientMetric value(double v, std::vector<ClientMetric::Label> labels, MetricType type) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  return m;
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

}  // namespace

std::string renderPrometheus(const std::vector<const WorkerStats*>& workers,
                             const ProcessStats& process) {
  std::vector<MetricFamily> out;
  const auto C = MetricType::Counter;
  const auto G = MetricType::Gauge;

  MetricFamily inbound = family("palisade_inbound_connections_total",
                                "Inbound connections by outcome of the handshake and L4 check.", C);
  for (std::size_t i = 0; i < static_cast<std::size_t>(InboundResult::kCount); ++i) {
    std::uint64_t total = 0;
    for (const WorkerStats* w : workers) {
      total += w->inbound[i].load(std::memory_order_relaxed);
    }
    inbound.metric.push_back(value(static_cast<double>(total),
                                   {{"result", inboundResultName(static_cast<InboundResult>(i))}},
                                   C));
  }
  out.push_back(std::move(inbound));

  MetricFamily hs = family("palisade_tls_handshake_failures_total",
                           "Failed mTLS handshakes by direction and reason.", C);
  for (std::size_t i = 1; i < kHandshakeReasons; ++i) {
    const char* reason = common::handshakeFailureName(static_cast<common::HandshakeFailure>(i));
    std::uint64_t in = 0;
    std::uint64_t outb = 0;
    for (const WorkerStats* w : workers) {
      in += w->inbound_handshake_failures[i].load(std::memory_order_relaxed);
      outb += w->outbound_handshake_failures[i].load(std::memory_order_relaxed);
    }
    hs.metric.push_back(
        value(static_cast<double>(in), {{"direction", "inbound"}, {"reason", reason}}, C));
    hs.metric.push_back(
        value(static_cast<double>(outb), {{"direction", "outbound"}, {"reason", reason}}, C));
  }
  out.push_back(std::move(hs));

  MetricFamily http =
      family("palisade_http_requests_total", "Inbound HTTP requests by authorization result.", C);
  http.metric.push_back(
      value(sum(workers, &WorkerStats::http_allowed), {{"result", "allowed"}}, C));
  http.metric.push_back(value(sum(workers, &WorkerStats::http_denied), {{"result", "denied"}}, C));
  out.push_back(std::move(http));

  MetricFamily closed = family("palisade_connections_closed_total",
                               "Open connections closed by the sidecar, by reason.", C);
  closed.metric.push_back(
      value(sum(workers, &WorkerStats::closed_by_policy), {{"reason", "policy_changed"}}, C));
  closed.metric.push_back(value(sum(workers, &WorkerStats::closed_cert_expired),
                                {{"reason", "peer_certificate_expired"}}, C));
  out.push_back(std::move(closed));

  MetricFamily outbound = family("palisade_outbound_connections_total",
                                 "Outbound connections from the app by outcome.", C);
  outbound.metric.push_back(
      value(sum(workers, &WorkerStats::outbound_connections), {{"result", "connected"}}, C));
  outbound.metric.push_back(
      value(sum(workers, &WorkerStats::outbound_connect_failures), {{"result", "failed"}}, C));
  outbound.metric.push_back(
      value(sum(workers, &WorkerStats::outbound_passthrough), {{"result", "passthrough"}}, C));
  out.push_back(std::move(outbound));

  MetricFamily active = family("palisade_active_connections", "Open downstream connections.", G);
  active.metric.push_back(value(sum(workers, &WorkerStats::active_connections), {}, G));
  out.push_back(std::move(active));

  MetricFamily bytes = family("palisade_tcp_bytes_total",
                              "Bytes carried by opaque TCP connections, by direction.", C);
  bytes.metric.push_back(
      value(sum(workers, &WorkerStats::tcp_received_bytes), {{"direction", "received"}}, C));
  bytes.metric.push_back(
      value(sum(workers, &WorkerStats::tcp_sent_bytes), {{"direction", "sent"}}, C));
  out.push_back(std::move(bytes));

  MetricFamily retries = family("palisade_upstream_retries_total",
                                "Outbound requests tried again (they never reached the app), and "
                                "retries the retry budget refused.",
                                C);
  retries.metric.push_back(
      value(sum(workers, &WorkerStats::upstream_retries), {{"result", "retried"}}, C));
  retries.metric.push_back(value(sum(workers, &WorkerStats::upstream_retry_overflow),
                                 {{"result", "budget_exhausted"}}, C));
  out.push_back(std::move(retries));

  MetricFamily overflow = family("palisade_upstream_overflow_total",
                                 "Outbound requests answered 503 at a connection pool limit.", C);
  overflow.metric.push_back(
      value(sum(workers, &WorkerStats::upstream_queue_full), {{"reason", "queue_full"}}, C));
  overflow.metric.push_back(
      value(sum(workers, &WorkerStats::upstream_queue_timeout), {{"reason", "queue_timeout"}}, C));
  out.push_back(std::move(overflow));

  MetricFamily timeouts = family("palisade_upstream_request_timeouts_total",
                                 "Outbound requests past their service's timeout (504).", C);
  timeouts.metric.push_back(value(sum(workers, &WorkerStats::upstream_request_timeouts), {}, C));
  out.push_back(std::move(timeouts));

  MetricFamily ejections =
      family("palisade_outlier_ejections_total", "Endpoints ejected by outlier detection.", C);
  ejections.metric.push_back(value(sum(workers, &WorkerStats::outlier_ejections), {}, C));
  out.push_back(std::move(ejections));

  MetricFamily reloads =
      family("palisade_config_reloads_total", "Reloads of policies and certificates by result.", C);
  reloads.metric.push_back(value(static_cast<double>(process.policy_reloads_ok.load()),
                                 {{"kind", "policies"}, {"result", "ok"}}, C));
  reloads.metric.push_back(value(static_cast<double>(process.policy_reloads_rejected.load()),
                                 {{"kind", "policies"}, {"result", "rejected"}}, C));
  reloads.metric.push_back(value(static_cast<double>(process.identity_reloads_ok.load()),
                                 {{"kind", "identity"}, {"result", "ok"}}, C));
  reloads.metric.push_back(value(static_cast<double>(process.identity_reloads_rejected.load()),
                                 {{"kind", "identity"}, {"result", "rejected"}}, C));
  out.push_back(std::move(reloads));

  MetricFamily expiry = family("palisade_certificate_expiry_timestamp_seconds",
                               "notAfter of this workload's SVID, seconds since the epoch.", G);
  expiry.metric.push_back(value(process.cert_expiry_seconds.load(), {{"kind", "svid"}}, G));
  out.push_back(std::move(expiry));

  MetricFamily version = family("palisade_policy_version",
                                "Version of the policies in force (counts good reloads).", G);
  version.metric.push_back(value(static_cast<double>(process.policy_version.load()), {}, G));
  out.push_back(std::move(version));

  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace palisade::proxy
