#include "proxy/server.h"

#include <event2/event.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/log.h"
#include "common/openssl.h"
#include "policy/explain.h"

namespace palisade::proxy {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// How long a sidecar waits for its first certificate before it gives up and exits.
constexpr std::chrono::milliseconds kControlPlaneBootstrapTimeout{300'000};

void logDiagnostics(const char* what, const policy::LoadResult& r) {
  for (const policy::Diagnostic& d : r.diagnostics) {
    if (d.severity == policy::Diagnostic::Severity::kError) {
      PALISADE_LOG(kError, what, policy::formatDiagnostic(d));
    }
  }
}

void describeFile(const std::string& path, std::string& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    out += path + ":missing;";
    return;
  }
  out += path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ino) + ";";
}

}  // namespace

std::string fingerprintPath(const std::string& path) {
  std::string out;
  if (path.empty()) {
    return out;
  }
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> files;
    for (auto it = fs::recursive_directory_iterator(
             path, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) {
        files.push_back(it->path().string());
      }
    }
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) {
      describeFile(f, out);
    }
    return out;
  }
  describeFile(path, out);
  return out;
}

Result<std::unique_ptr<Server>> Server::create(BootstrapConfig config) {
  std::unique_ptr<Server> s(new Server());
  s->bootstrap_ = std::make_shared<const BootstrapConfig>(std::move(config));
  const BootstrapConfig& b = *s->bootstrap_;
  Result<std::shared_ptr<const Identity>> identity = invalidArgument("");
  if (b.control_plane) {
    // Nothing serves before this workload has a certificate (as pilot-agent holds Envoy).
    auto svid = CertificateAgent::bootstrap(b, kControlPlaneBootstrapTimeout);
    if (!svid.ok()) {
      return svid.error();
    }
    identity = buildIdentity(*svid->svid, svid->bundles, s->next_version_++, "control plane");
    s->agent_initial_ = std::move(*svid);
  } else {
    identity = loadIdentity(b, s->next_version_++);
  }
  if (!identity.ok()) {
    return identity.error();
  }
  policy::LoadResult loaded;
  auto policies = loadPolicies(b, s->next_version_++, loaded);
  if (!policies) {
    return invalidArgument("policies: " + loaded.errorText());
  }
  policy::LoadResult services_loaded;
  auto services = loadServices(b, std::string((*identity)->id->trustDomain()), s->next_version_++,
                               services_loaded);
  if (!services) {
    return invalidArgument("services: " + services_loaded.errorText());
  }
  auto snap = std::make_shared<Snapshot>();
  snap->bootstrap = s->bootstrap_;
  snap->identity = *identity;
  snap->policies = policies;
  snap->services = services;
  s->snapshot_ = std::move(snap);
  s->policies_watch_.fingerprint = fingerprintPath(b.policies);
  s->services_watch_.fingerprint = fingerprintPath(b.services);
  std::string id_fp = fingerprintPath(b.certificate_chain) + fingerprintPath(b.private_key);
  for (const TrustBundleFile& f : b.trust_bundles) {
    id_fp += fingerprintPath(f.file);
  }
  s->identity_watch_.fingerprint = id_fp;
  s->process_stats_.cert_expiry_seconds = static_cast<double>((*identity)->not_after);
  s->process_stats_.policy_version = policies->version;
  return s;
}

Server::~Server() {
  stopWorkers();
  agent_.reset();
  admin_.reset();
}

int Server::run() {
  const BootstrapConfig& b = *bootstrap_;
  base_.reset(event_base_new());
  if (agent_initial_) {
    agent_ = std::make_unique<CertificateAgent>(base_.get(), b);
    agent_->start(std::move(*agent_initial_),
                  [this](const AgentSvid& svid) { onAgentIdentity(svid); });
    agent_initial_.reset();
  }
  unsigned n = b.concurrency != 0 ? b.concurrency : std::thread::hardware_concurrency();
  n = std::max(1u, n);
  std::vector<ListenerSpec> listeners;
  listeners.push_back(
      {ListenerKind::kInbound, makeSockaddr(b.inbound_address.ip, b.inbound_address.port)});
  if (b.transparent_outbound) {
    listeners.push_back({ListenerKind::kOutboundTransparent,
                         makeSockaddr(b.transparent_outbound->ip, b.transparent_outbound->port)});
  }
  for (const OutboundListener& l : b.outbound_listeners) {
    listeners.push_back(
        {ListenerKind::kOutboundExplicit, makeSockaddr(l.address.ip, l.address.port), &l});
  }
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(i, n, open_connections_);
    if (Status s = w->listen(listeners); !s.ok()) {
      PALISADE_LOG(kError, "palisade-proxy", s.error().message);
      return 1;
    }
    workers_.push_back(std::move(w));
  }
  admin_ = std::make_unique<AdminServer>(base_.get(), *this);
  if (Status s = admin_->bind(makeSockaddr(b.admin.ip, b.admin.port),
                              makeSockaddr(b.readiness.ip, b.readiness.port),
                              makeSockaddr(b.metrics.ip, b.metrics.port));
      !s.ok()) {
    PALISADE_LOG(kError, "palisade-proxy", s.error().message);
    return 1;
  }
  for (auto& w : workers_) {
    w->start(snapshot_);
  }
  tick_.reset(event_new(base_.get(), -1, EV_PERSIST, &Server::onTick, this));
  timeval second{1, 0};
  event_add(tick_.get(), &second);
  sigterm_.reset(evsignal_new(base_.get(), SIGTERM, &Server::onSignal, this));
  sigint_.reset(evsignal_new(base_.get(), SIGINT, &Server::onSignal, this));
  sighup_.reset(evsignal_new(base_.get(), SIGHUP, &Server::onSignal, this));
  for (EventPtr* e : {&sigterm_, &sigint_, &sighup_}) {
    event_add(e->get(), nullptr);
  }
  std::signal(SIGPIPE, SIG_IGN);
  const Identity& id = *snapshot_->identity;
  PALISADE_LOG(
      kInfo, "palisade-proxy",
      "serving as " + std::string(id.id->uri()) + " (certificate " + id.serial + ", expires " +
          common::formatTime(id.not_after) + "), " + std::to_string(snapshot_->policies->selected) +
          " of " + std::to_string(snapshot_->policies->set->size()) +
          " policies select this workload, " + std::to_string(snapshot_->services->routes.size()) +
          " service ports, " + std::to_string(n) + " workers; inbound " + b.inbound_address.text +
          ", admin " + b.admin.text);
  PALISADE_LOG(kInfo, "palisade-proxy", "ready");
  event_base_dispatch(base_.get());
  stopWorkers();
  PALISADE_LOG(kInfo, "palisade-proxy", "exited");
  return exit_code_;
}

void Server::stopWorkers() {
  for (auto& w : workers_) {
    w->stop();
  }
  for (auto& w : workers_) {
    w->join();
  }
  workers_.clear();
}

void Server::onTick(evutil_socket_t, short, void* arg) { static_cast<Server*>(arg)->reload(false); }

void Server::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* s = static_cast<Server*>(arg);
  if (sig == SIGHUP) {
    s->reload(true);
    return;
  }
  PALISADE_LOG(kInfo, "palisade-proxy",
               std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": draining");
  s->startDrain(true);
}

void Server::reload(bool force) {
  if (draining_) {
    return;
  }
  const BootstrapConfig& b = *bootstrap_;
  bool changed = false;
  auto snap = std::make_shared<Snapshot>(*snapshot_);

  std::string id_fp = fingerprintPath(b.certificate_chain) + fingerprintPath(b.private_key);
  for (const TrustBundleFile& f : b.trust_bundles) {
    id_fp += fingerprintPath(f.file);
  }
  if (!b.control_plane && (force || id_fp != identity_watch_.fingerprint)) {
    auto identity = loadIdentity(b, next_version_);
    if (identity.ok()) {
      ++next_version_;
      snap->identity = *identity;
      identity_watch_ = {id_fp, ""};
      inc(process_stats_.identity_reloads_ok);
      process_stats_.cert_expiry_seconds = static_cast<double>((*identity)->not_after);
      PALISADE_LOG(kInfo, "identity",
                   "new certificate " + (*identity)->serial + " for " +
                       std::string((*identity)->id->uri()) + ", expires " +
                       common::formatTime((*identity)->not_after) +
                       "; new handshakes use it, open connections keep theirs");
      changed = true;
    } else if (id_fp != identity_watch_.failed_fingerprint) {
      // Often a moment between two renames (chain written, key not yet): tried again on the
      // next tick, logged once per version of the files.
      identity_watch_.failed_fingerprint = id_fp;
      inc(process_stats_.identity_reloads_rejected);
      PALISADE_LOG(kWarning, "identity",
                   "not loaded, keeping certificate " + snapshot_->identity->serial + ": " +
                       identity.error().message);
    }
  }

  std::string pol_fp = fingerprintPath(b.policies);
  if (force || pol_fp != policies_watch_.fingerprint) {
    policy::LoadResult loaded;
    auto policies = loadPolicies(b, next_version_, loaded);
    if (policies) {
      ++next_version_;
      snap->policies = policies;
      policies_watch_ = {pol_fp, ""};
      inc(process_stats_.policy_reloads_ok);
      process_stats_.policy_version = policies->version;
      PALISADE_LOG(kInfo, "policies",
                   "loaded version " + std::to_string(policies->version) + ": " +
                       std::to_string(policies->set->size()) + " policies, " +
                       std::to_string(policies->selected) + " select this workload");
      changed = true;
    } else if (pol_fp != policies_watch_.failed_fingerprint) {
      policies_watch_.failed_fingerprint = pol_fp;
      inc(process_stats_.policy_reloads_rejected);
      logDiagnostics("policies", loaded);
      PALISADE_LOG(
          kError, "policies",
          "rejected; version " + std::to_string(snapshot_->policies->version) + " keeps serving");
    }
  }

  std::string svc_fp = fingerprintPath(b.services);
  // Endpoints' service accounts name identities in our own trust domain.
  const bool trust_domain_changed =
      snap->identity->id->trustDomain() != snapshot_->identity->id->trustDomain();
  if (force || trust_domain_changed || svc_fp != services_watch_.fingerprint) {
    policy::LoadResult loaded;
    auto services =
        loadServices(b, std::string(snap->identity->id->trustDomain()), next_version_, loaded);
    if (services) {
      ++next_version_;
      snap->services = services;
      services_watch_ = {svc_fp, ""};
      PALISADE_LOG(kInfo, "services",
                   "loaded version " + std::to_string(services->version) + ": " +
                       std::to_string(services->routes.size()) + " service ports");
      changed = true;
    } else if (svc_fp != services_watch_.failed_fingerprint) {
      services_watch_.failed_fingerprint = svc_fp;
      logDiagnostics("services", loaded);
      PALISADE_LOG(
          kError, "services",
          "rejected; version " + std::to_string(snapshot_->services->version) + " keeps serving");
    }
  }
  if (changed) {
    snapshot_ = std::move(snap);
    publish();
  }
}

void Server::onAgentIdentity(const AgentSvid& svid) {
  if (draining_) {
    return;
  }
  auto identity = buildIdentity(*svid.svid, svid.bundles, next_version_, "control plane");
  if (!identity.ok()) {
    inc(process_stats_.identity_reloads_rejected);
    PALISADE_LOG(kWarning, "identity",
                 "not used, keeping certificate " + snapshot_->identity->serial + ": " +
                     identity.error().message);
    return;
  }
  ++next_version_;
  auto snap = std::make_shared<Snapshot>(*snapshot_);
  snap->identity = *identity;
  snapshot_ = std::move(snap);
  inc(process_stats_.identity_reloads_ok);
  process_stats_.cert_expiry_seconds = static_cast<double>((*identity)->not_after);
  PALISADE_LOG(kInfo, "identity",
               "new certificate " + (*identity)->serial + " for " +
                   std::string((*identity)->id->uri()) + ", expires " +
                   common::formatTime((*identity)->not_after) +
                   "; new handshakes use it, open connections keep theirs");
  publish();
}

void Server::publish() {
  for (auto& w : workers_) {
    w->publish(snapshot_);
  }
}

void Server::startDrain(bool then_exit) {
  exit_after_drain_ |= then_exit;
  if (draining_) {
    if (then_exit) {
      // Drained already by /drain: exit now, or at the latest after drainTimeout.
      if (drained_workers_.load() == workers_.size()) {
        event_base_loopexit(base_.get(), nullptr);
        return;
      }
      const timeval tv = toTimeval(bootstrap_->drain_timeout);
      evtimer_add(drain_timer_.get(), &tv);
    }
    return;
  }
  draining_ = true;
  // Workers report from their own threads; the main loop looks every 50 ms.
  for (auto& w : workers_) {
    w->drain([this] { drained_workers_.fetch_add(1); });
  }
  drain_poll_.reset(event_new(
      base_.get(), -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) {
        auto* s = static_cast<Server*>(arg);
        if (s->drained_workers_.load() < s->workers_.size()) {
          return;
        }
        event_del(s->drain_poll_.get());
        PALISADE_LOG(kInfo, "palisade-proxy", "drained: no connection left");
        if (s->exit_after_drain_) {
          event_base_loopexit(s->base_.get(), nullptr);
        }
      },
      this));
  timeval poll{0, 50'000};
  event_add(drain_poll_.get(), &poll);
  drain_timer_.reset(evtimer_new(base_.get(), &Server::onDrainTimeout, this));
  const timeval tv = toTimeval(bootstrap_->drain_timeout);
  evtimer_add(drain_timer_.get(), &tv);
}

void Server::onDrainTimeout(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Server*>(arg);
  if (s->drained_workers_ < s->workers_.size()) {
    PALISADE_LOG(kInfo, "palisade-proxy", "drain timeout: closing the connections still open");
  }
  if (s->exit_after_drain_) {
    event_base_loopexit(s->base_.get(), nullptr);
  }
}

bool Server::ready() { return !draining_; }

void Server::drainListeners() {
  PALISADE_LOG(kInfo, "admin", "/drain: listeners closed, draining open connections");
  startDrain(false);
}

void Server::quit() {
  PALISADE_LOG(kInfo, "admin", "/quitquitquit: exiting");
  // A moment for the 200 to reach the caller first, as Envoy answers before it exits.
  timeval flush{0, 100'000};
  event_base_loopexit(base_.get(), &flush);
}

std::string Server::metrics() {
  std::vector<const WorkerStats*> stats;
  for (const auto& w : workers_) {
    stats.push_back(&w->stats());
  }
  return renderPrometheus(stats, process_stats_);
}

namespace {

json identityJson(const Identity& id) {
  return {{"spiffeId", std::string(id.id->uri())},
          {"serialNumber", id.serial},
          {"notBefore", common::formatTime(id.not_before)},
          {"notAfter", common::formatTime(id.not_after)},
          {"secondsUntilExpiry", static_cast<long long>(id.not_after - std::time(nullptr))},
          {"intermediates", id.chain_serials},
          {"trustDomains", id.trust_domains},
          {"version", id.version}};
}

const char* protocolName(InboundProtocol p) {
  switch (p) {
    case InboundProtocol::kHttp:
      return "HTTP";
    case InboundProtocol::kHttp2:
      return "HTTP2";
    case InboundProtocol::kGrpc:
      return "GRPC";
    case InboundProtocol::kTcp:
      return "TCP";
    case InboundProtocol::kDetect:
      break;
  }
  return "auto";
}

}  // namespace

std::string Server::clusters() {
  // Each worker reports its own pool; the counts are summed (a worker that does not answer
  // within a second is left out rather than stalling the admin loop).
  std::vector<std::future<std::vector<ClusterView>>> answers;
  for (auto& w : workers_) {
    auto promise = std::make_shared<std::promise<std::vector<ClusterView>>>();
    answers.push_back(promise->get_future());
    w->collectClusters(
        [promise](std::vector<ClusterView> views) { promise->set_value(std::move(views)); });
  }
  std::map<std::string, ClusterView> merged;
  for (auto& a : answers) {
    if (a.wait_for(std::chrono::seconds(1)) != std::future_status::ready) {
      continue;
    }
    for (ClusterView& v : a.get()) {
      auto [it, fresh] = merged.try_emplace(v.name, v);
      if (!fresh) {
        it->second.merge(v);
      }
    }
  }
  std::vector<ClusterView> out;
  for (auto& [name, v] : merged) {
    std::sort(v.endpoints.begin(), v.endpoints.end(),
              [](const EndpointView& a, const EndpointView& b) { return a.address < b.address; });
    out.push_back(std::move(v));
  }
  return renderClusters(out);
}

std::string Server::certs() {
  json j;
  j["certificates"] = json::array({identityJson(*snapshot_->identity)});
  return j.dump(2) + "\n";
}

std::string Server::configDump() {
  const Snapshot& s = *snapshot_;
  const BootstrapConfig& b = *s.bootstrap;
  json listeners = json::array();
  json inbound_ports = json::array();
  for (const InboundPort& p : b.inbound_ports) {
    inbound_ports.push_back(
        {{"port", p.port},
         {"targetPort", p.target_port},
         {"protocol", protocolName(p.protocol)},
         {"mtlsMode", policy::mtlsModeName(s.policies->mtls.forPort(p.port))},
         {"clientCertificateHeader",
          p.client_cert_header == ClientCertHeader::kXfcc ? "XFCC" : "RFC9440"}});
  }
  listeners.push_back(
      {{"name", "inbound"}, {"address", b.inbound_address.text}, {"ports", inbound_ports}});
  if (b.transparent_outbound) {
    listeners.push_back(
        {{"name", "outbound"}, {"address", b.transparent_outbound->text}, {"transparent", true}});
  }
  for (const OutboundListener& l : b.outbound_listeners) {
    listeners.push_back({{"name", "outbound_" + std::to_string(l.port) + "_" + l.service},
                         {"address", l.address.text},
                         {"service", l.service},
                         {"port", l.port}});
  }
  json services = json::array();
  for (const ServiceRoute& r : s.services->routes) {
    json endpoints = json::array();
    for (const Endpoint& e : r.endpoints) {
      endpoints.push_back({{"address", e.text}, {"allowedIdentities", e.allowed_ids}});
    }
    const TrafficSettings& t = r.traffic;
    json traffic = {{"loadBalancer", t.load_balancer == LoadBalancer::kRoundRobin ? "ROUND_ROBIN"
                                     : t.load_balancer == LoadBalancer::kRandom   ? "RANDOM"
                                                                                : "LEAST_REQUEST"},
                    {"maxConnections", t.max_connections},
                    {"http2MaxRequests", t.max_requests},
                    {"http1MaxPendingRequests", t.max_pending},
                    {"maxRequestsPerConnection", t.max_requests_per_connection},
                    {"maxRetries", t.max_retries},
                    {"connectTimeoutMs", t.connect_timeout.count()},
                    {"requestTimeoutMs", t.request_timeout.count()},
                    {"retryAttempts", t.retry_attempts},
                    {"outlierDetection",
                     {{"consecutive5xxErrors", t.consecutive_5xx},
                      {"consecutiveGatewayErrors", t.consecutive_gateway},
                      {"intervalMs", t.interval.count()},
                      {"baseEjectionTimeMs", t.base_ejection_time.count()},
                      {"maxEjectionPercent", t.max_ejection_percent}}},
                    {"warmupMs", t.warmup.count()},
                    {"destinationRule", t.destination_rule},
                    {"virtualService", t.virtual_service}};
    services.push_back({{"host", r.host},
                        {"port", r.port},
                        {"cluster", r.cluster},
                        {"protocol", r.protocol},
                        {"opaque", r.opaque},
                        {"sni", r.sni},
                        {"trafficPolicy", traffic},
                        {"endpoints", endpoints}});
  }
  json selected = json::array();
  const policy::WorkloadAuthz& authz = *s.policies->authz;
  for (const auto* list :
       {&authz.deny(), &authz.allow(), &authz.audit(), &authz.dryRunDeny(), &authz.dryRunAllow()}) {
    for (const policy::CompiledPolicy* p : *list) {
      selected.push_back({{"name", policy::policyId(*p)},
                          {"action", policy::actionName(p->action)},
                          {"dryRun", p->dry_run},
                          {"rules", p->rules.size()},
                          {"location", policy::formatMark(p->mark)}});
    }
  }
  json j;
  j["workload"] = {{"namespace", b.ns}, {"labels", b.labels}, {"rootNamespace", b.root_namespace}};
  j["listeners"] = listeners;
  j["services"] = {{"version", s.services->version}, {"routes", services}};
  j["policies"] = {{"version", s.policies->version},
                   {"source", b.policies},
                   {"total", s.policies->set->size()},
                   {"selected", selected},
                   {"mtlsMode", policy::mtlsModeName(s.policies->mtls.mode)}};
  j["certificates"] = json::array({identityJson(*s.identity)});
  j["limits"] = {{"maxConnections", b.limits.max_connections},
                 {"handshakeTimeoutMs", b.limits.handshake_timeout.count()},
                 {"sniffTimeoutMs", b.limits.sniff_timeout.count()},
                 {"connectTimeoutMs", b.limits.connect_timeout.count()},
                 {"idleTimeoutMs", b.limits.idle_timeout.count()},
                 {"maxHeaderBytes", b.limits.max_header_bytes},
                 {"maxHeaders", b.limits.max_headers},
                 {"maxConcurrentStreams", b.limits.max_concurrent_streams},
                 {"bufferLimit", b.limits.buffer_limit}};
  j["openConnections"] = open_connections_.load();
  j["draining"] = draining_;
  return j.dump(2) + "\n";
}

}  // namespace palisade::proxy
