#include "proxy/snapshot.h"

#include <charconv>
#include <mutex>
#include <unordered_map>

#include "common/openssl.h"
#include "common/x509_svid.h"
#include "policy/compiler.h"
#include "policy/traffic_policy.h"
#include "proxy/socket_util.h"

namespace palisade::proxy {

Result<std::shared_ptr<const common::BundleSet>> loadBundleFiles(const BootstrapConfig& config) {
  auto bundles = std::make_shared<common::BundleSet>();
  for (const TrustBundleFile& b : config.trust_bundles) {
    if (Status s = bundles->addPemFile(b.file, b.trust_domain); !s.ok()) {
      return Error{s.error().code, b.file + ": " + s.error().message};
    }
  }
  return std::shared_ptr<const common::BundleSet>(std::move(bundles));
}

Result<std::shared_ptr<const Identity>> loadIdentity(const BootstrapConfig& config,
                                                     std::uint64_t version) {
  auto svid = common::loadSvid(config.certificate_chain, config.private_key);
  if (!svid.ok()) {
    return svid.error();
  }
  auto bundles = loadBundleFiles(config);
  if (!bundles.ok()) {
    return bundles.error();
  }
  return buildIdentity(*svid, *bundles, version, config.certificate_chain);
}

Result<std::shared_ptr<const Identity>> buildIdentity(
    const common::Svid& svid, std::shared_ptr<const common::BundleSet> bundles,
    std::uint64_t version, const std::string& source) {
  // A certificate we could not verify ourselves would fail every peer's handshake: refuse it
  // before publishing it.
  std::vector<X509*> intermediates;
  for (const auto& c : svid.intermediates) {
    intermediates.push_back(c.get());
  }
  auto verified = common::verifySvid(svid.leaf.get(), intermediates, *bundles);
  if (!verified.ok()) {
    return invalidArgument(
        "identity: " + source +
        ": our own SVID does not verify against our trust bundles: " + verified.error().message);
  }
  auto identity = std::make_shared<Identity>();
  identity->version = version;
  identity->id = std::make_shared<const policy::SpiffeId>(verified->id);
  identity->serial = common::serialHex(svid.leaf.get());
  identity->not_before = common::notBefore(svid.leaf.get());
  identity->not_after = common::notAfter(svid.leaf.get());
  identity->trust_domains = bundles->trustDomains();
  for (const auto& c : svid.intermediates) {
    identity->chain_serials.push_back(common::serialHex(c.get()));
  }
  common::TlsOptions server_options;
  server_options.alpn = {"h2", "http/1.1"};
  auto server = common::TlsContext::server(svid, bundles, server_options);
  if (!server.ok()) {
    return server.error();
  }
  auto client = common::TlsContext::client(svid, bundles, common::TlsOptions{});
  if (!client.ok()) {
    return client.error();
  }
  identity->server = *server;
  identity->client = *client;
  return std::shared_ptr<const Identity>(std::move(identity));
}

std::shared_ptr<const Policies> loadPolicies(const BootstrapConfig& config, std::uint64_t version,
                                             policy::LoadResult& out) {
  auto p = std::make_shared<Policies>();
  p->version = version;
  if (!config.policies.empty()) {
    out = policy::loadPath(config.policies);
    if (!out.ok()) {
      return nullptr;
    }
    p->bundle = std::move(out.bundle);
    out.bundle = {};
  }
  policy::CompileOptions options;
  options.root_namespace = config.root_namespace;
  p->set = policy::PolicySet::compile(p->bundle, options);
  p->authz = std::make_unique<const policy::WorkloadAuthz>(
      p->set, policy::Workload{config.ns, config.labels});
  p->selected = p->authz->deny().size() + p->authz->allow().size() + p->authz->audit().size() +
                p->authz->dryRunDeny().size() + p->authz->dryRunAllow().size();
  p->mtls = policy::effectiveMtls(p->bundle, config.ns, config.labels, config.root_namespace);
  return p;
}

namespace {

bool labelsMatch(const std::map<std::string, std::string>& selector,
                 const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) {
      return false;
    }
  }
  return true;
}

// Opaque protocols: the client may wait for the server to speak first, so no sniffing.
bool opaqueProtocol(const std::string& p) {
  return p == "TCP" || p == "TLS" || p == "MONGO" || p == "MYSQL" || p == "REDIS";
}

}  // namespace

std::string outboundSni(std::uint16_t port, std::string_view host) {
  return "outbound_." + std::to_string(port) + "_._." + std::string(host);
}

std::uint16_t portFromSni(std::string_view sni) {
  constexpr std::string_view kPrefix = "outbound_.";
  if (!sni.starts_with(kPrefix)) {
    return 0;
  }
  sni.remove_prefix(kPrefix.size());
  unsigned port = 0;
  auto [end, ec] = std::from_chars(sni.data(), sni.data() + sni.size(), port);
  if (ec != std::errc() || port == 0 || port > 65535 || end == sni.data() + sni.size() ||
      *end != '_') {
    return 0;
  }
  return static_cast<std::uint16_t>(port);
}

const ServiceRoute* Services::find(std::string_view host, std::uint16_t port) const {
  for (const ServiceRoute& r : routes) {
    if (r.port == port && r.host == host) {
      return &r;
    }
  }
  return nullptr;
}

const ServiceRoute* Services::findByDestination(const policy::IpAddress& ip,
                                                std::uint16_t port) const {
  for (const ServiceRoute& r : routes) {
    if (r.port != port) {
      continue;
    }
    for (const policy::CidrRange& vip : r.vips) {
      if (vip.contains(ip)) {
        return &r;
      }
    }
  }
  for (const ServiceRoute& r : routes) {
    for (const Endpoint& e : r.endpoints) {
      const Sockaddr a = fromSockaddr(reinterpret_cast<const sockaddr*>(&e.address), e.address_len);
      if (a.port() == port && a.ip() == ip) {
        return &r;
      }
    }
  }
  return nullptr;
}

namespace {

// Process-wide numbers for cluster and endpoint names, so a worker's pool finds its state for
// the same endpoint in every snapshot with an integer lookup.
std::uint64_t stableKey(const std::string& name) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::uint64_t> keys;
  std::lock_guard<std::mutex> lock(mu);
  auto [it, fresh] = keys.try_emplace(name, keys.size() + 1);
  return it->second;
}

LoadBalancer loadBalancer(policy::LoadBalancerPolicy p, LoadBalancer fallback) {
  switch (p) {
    case policy::LoadBalancerPolicy::kLeastRequest:
      return LoadBalancer::kLeastRequest;
    case policy::LoadBalancerPolicy::kRoundRobin:
      return LoadBalancer::kRoundRobin;
    case policy::LoadBalancerPolicy::kRandom:
      return LoadBalancer::kRandom;
    case policy::LoadBalancerPolicy::kUnset:
      break;
  }
  return fallback;
}

// The route's TrafficSettings: the bootstrap's defaults, then what the DestinationRule and
// VirtualService for host:port set.
TrafficSettings trafficFor(const BootstrapConfig& config, const policy::PolicyBundle& bundle,
                           const std::string& host, std::uint32_t port) {
  TrafficSettings t;
  t.load_balancer = config.outbound_load_balancer;
  t.connect_timeout = config.limits.connect_timeout;
  const policy::ResolvedTraffic r = policy::resolveTraffic(bundle, host, port);
  const policy::TrafficPolicy& p = r.policy;
  t.load_balancer = loadBalancer(p.load_balancer, t.load_balancer);
  if (p.warmup) {
    t.warmup = *p.warmup;
  }
  if (p.max_connections) {
    t.max_connections = *p.max_connections;
  }
  if (p.connect_timeout) {
    t.connect_timeout = *p.connect_timeout;
  }
  if (p.http2_max_requests) {
    t.max_requests = *p.http2_max_requests;
  }
  if (p.http1_max_pending_requests) {
    t.max_pending = *p.http1_max_pending_requests;
  }
  if (p.max_requests_per_connection) {
    t.max_requests_per_connection = *p.max_requests_per_connection;
  }
  if (p.max_retries) {
    t.max_retries = *p.max_retries;
  }
  if (p.outlier_detection) {
    // Given a rule, its unset fields take Envoy's defaults: 5 consecutive 5xx, gateway
    // errors not counted apart, 10 s interval, 30 s base ejection, 10 %.
    const policy::OutlierDetection& o = *p.outlier_detection;
    t.consecutive_5xx = o.consecutive_5xx_errors.value_or(5);
    t.consecutive_gateway = o.consecutive_gateway_errors.value_or(0);
    t.interval = o.interval.value_or(std::chrono::milliseconds(10'000));
    t.base_ejection_time = o.base_ejection_time.value_or(std::chrono::milliseconds(30'000));
    t.max_ejection_percent = o.max_ejection_percent.value_or(10);
  }
  if (r.destination_rule != nullptr) {
    const auto& m = r.destination_rule->metadata;
    t.destination_rule = (m.ns.empty() ? "default" : m.ns) + "/" + m.name;
  }
  if (r.virtual_service != nullptr) {
    const auto& m = r.virtual_service->metadata;
    t.virtual_service = (m.ns.empty() ? "default" : m.ns) + "/" + m.name;
  }
  if (r.http_route) {
    if (r.http_route->timeout) {
      t.request_timeout = *r.http_route->timeout;
    }
    if (r.http_route->retry_attempts) {
      t.retry_attempts = static_cast<int>(*r.http_route->retry_attempts);
    }
  }
  return t;
}

}  // namespace

std::shared_ptr<const Services> loadServices(const BootstrapConfig& config,
                                             const std::string& trust_domain, std::uint64_t version,
                                             policy::LoadResult& out) {
  auto s = std::make_shared<Services>();
  s->version = version;
  if (config.services.empty()) {
    return s;
  }
  out = policy::loadPath(config.services);
  if (!out.ok()) {
    return nullptr;
  }
  const policy::PolicyBundle& b = out.bundle;
  for (const policy::ServiceEntry& se : b.service_entries) {
    std::vector<const policy::WorkloadEndpoint*> endpoints;
    for (const policy::WorkloadEndpoint& e : se.endpoints) {
      endpoints.push_back(&e);
    }
    if (se.workload_selector) {
      for (const policy::WorkloadEntry& we : b.workload_entries) {
        if (we.metadata.ns == se.metadata.ns &&
            labelsMatch(*se.workload_selector, we.spec.labels)) {
          endpoints.push_back(&we.spec);
        }
      }
    }
    std::vector<policy::CidrRange> vips;
    for (const std::string& a : se.addresses) {
      if (auto r = policy::CidrRange::parse(a); r.ok()) {
        vips.push_back(*r);
      }
    }
    for (const policy::ServicePort& port : se.ports) {
      for (const std::string& host : se.hosts) {
        ServiceRoute route;
        route.host = host;
        route.port = static_cast<std::uint16_t>(port.number);
        route.protocol = port.protocol;
        route.opaque = opaqueProtocol(port.protocol);
        route.sni = outboundSni(route.port, host);
        route.cluster = "outbound|" + std::to_string(route.port) + "||" + host;
        route.key = stableKey(route.sni);
        route.traffic = trafficFor(config, b, host, port.number);
        route.vips = vips;
        for (const policy::WorkloadEndpoint* e : endpoints) {
          auto ip = policy::IpAddress::parse(e->address);
          if (!ip.ok()) {
            continue;  // DNS endpoints are resolved by a later issue
          }
          std::uint32_t target = port.target_port != 0 ? port.target_port : port.number;
          if (auto it = e->ports.find(port.name); it != e->ports.end()) {
            target = it->second;
          }
          Endpoint ep;
          Sockaddr a = makeSockaddr(*ip, static_cast<std::uint16_t>(target));
          ep.address = a.storage;
          ep.address_len = a.len;
          ep.text = a.toString();
          ep.allowed_ids = se.subject_alt_names;
          if (!e->service_account.empty()) {
            // Istio's secure naming: the endpoint's service account in the service's namespace.
            ep.allowed_ids.push_back("spiffe://" + trust_domain + "/ns/" + se.metadata.ns + "/sa/" +
                                     e->service_account);
          }
          std::string name = route.sni + "\n" + ep.text;
          for (const std::string& id : ep.allowed_ids) {
            name.append("\n").append(id);
          }
          ep.key = stableKey(name);
          route.endpoints.push_back(std::move(ep));
        }
        s->routes.push_back(std::move(route));
      }
    }
  }
  out.bundle = {};
  return s;
}

}  // namespace palisade::proxy
