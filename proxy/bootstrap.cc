#include "proxy/bootstrap.h"

#include <charconv>
#include <filesystem>

#include "common/tls_context.h"
#include "common/trust_bundle.h"
#include "policy/duration.h"
#include "policy/yaml_reader.h"

namespace palisade::proxy {
namespace {

namespace fs = std::filesystem;
using policy::Mark;
using policy::YamlReader;

std::optional<std::uint16_t> parsePort(std::string_view text, bool allow_zero) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535 ||
      (value == 0 && !allow_zero)) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

class BootstrapReader : public YamlReader {
 public:
  BootstrapReader(const std::string& file, policy::LoadResult& out) : YamlReader(file, out) {}

 private:
  // identity is read after every other field: what it requires depends on controlPlane.
  YAML::Node identity_node_;
  Mark identity_at_;

 public:
  void read(const YAML::Node& doc, BootstrapConfig& c) {
    if (!expectMap(doc, Mark{file_, 1, 1}, "bootstrap")) {
      return;
    }
    forEachField(
        doc, "bootstrap",
        {"identity", "workload", "rootNamespace", "policies", "services", "inbound", "outbound",
         "admin", "readiness", "metrics", "concurrency", "explainDenials", "drainTimeout",
         "pathNormalization", "limits", "controlPlane"},
        [&](const std::string& key, const YAML::Node& v, const Mark& at) {
          if (key == "identity") {
            identity_node_ = v;
            identity_at_ = at;
          } else if (key == "controlPlane") {
            controlPlane(v, at, c);
          } else if (key == "workload") {
            workload(v, at, c);
          } else if (key == "inbound") {
            inbound(v, at, c);
          } else if (key == "outbound") {
            outbound(v, at, c);
          } else if (key == "admin" || key == "readiness" || key == "metrics") {
            if (auto a = address(v, at, key)) {
              (key == "admin" ? c.admin : key == "readiness" ? c.readiness : c.metrics) = *a;
            }
          } else if (key == "explainDenials") {
            if (auto s = scalar(v, at, key)) {
              if (*s != "true" && *s != "false") {
                error(mark(v), "explainDenials must be true or false");
              }
              c.explain_denials = *s == "true";
            }
          } else if (key == "pathNormalization") {
            if (auto s = scalar(v, at, key)) {
              if (auto n = policy::parsePathNormalization(*s)) {
                c.path_normalization = *n;
              } else {
                error(mark(v),
                      "pathNormalization must be NONE, BASE, MERGE_SLASHES or "
                      "DECODE_AND_MERGE_SLASHES, got \"" +
                          *s + "\"");
              }
            }
          } else if (key == "drainTimeout") {
            duration(v, at, key, c.drain_timeout);
          } else if (key == "limits") {
            limits(v, at, c.limits);
          } else if (key == "concurrency") {
            if (auto s = scalar(v, at, key)) {
              unsigned n = 0;
              auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), n);
              if (s->empty() || ec != std::errc() || end != s->data() + s->size() || n > 256) {
                error(mark(v), "concurrency must be 0 (one worker per core) to 256");
              }
              c.concurrency = n;
            }
          } else if (auto s = scalar(v, at, key)) {
            (key == "rootNamespace" ? c.root_namespace
             : key == "policies"    ? c.policies
                                    : c.services) = key == "rootNamespace" ? *s : path(*s);
          }
        });
    if (identity_node_) {
      identity(identity_node_, identity_at_, c);
    } else {
      error(Mark{file_, 1, 1}, "identity is required (at least identity.trustBundles)");
    }
  }

 private:
  // Relative paths are relative to the bootstrap file's directory.
  std::string path(const std::string& p) const {
    fs::path given(p);
    if (given.is_absolute()) {
      return p;
    }
    return (fs::path(file_).parent_path() / given).lexically_normal().string();
  }

  void duration(const YAML::Node& v, const Mark& at, const std::string& where,
                std::chrono::milliseconds& out) {
    if (auto s = scalar(v, at, where)) {
      auto d = policy::parseDurationMillis(*s);
      if (!d.ok() || d->count() <= 0) {
        error(mark(v),
              where + " must be a positive duration such as 100ms, 10s or 1h, got \"" + *s + "\"");
        return;
      }
      out = *d;
    }
  }

  template <typename T>
  void count(const YAML::Node& v, const Mark& at, const std::string& where, T& out,
             unsigned long long max) {
    if (auto s = scalar(v, at, where)) {
      unsigned long long n = 0;
      auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), n);
      if (s->empty() || ec != std::errc() || end != s->data() + s->size() || n == 0 || n > max) {
        error(mark(v), where + " must be a whole number in 1.." + std::to_string(max));
        return;
      }
      out = static_cast<T>(n);
    }
  }

  void limits(const YAML::Node& v, const Mark& at, ProxyLimits& l) {
    if (!expectMap(v, at, "limits")) {
      return;
    }
    forEachField(
        v, "limits",
        {"maxConnections", "handshakeTimeout", "sniffTimeout", "connectTimeout", "idleTimeout",
         "maxHeaderBytes", "maxHeaders", "maxConcurrentStreams", "bufferLimit"},
        [&](const std::string& key, const YAML::Node& f, const Mark& fat) {
          const std::string where = "limits." + key;
          if (key == "maxConnections") {
            count(f, fat, where, l.max_connections, 1'000'000);
          } else if (key == "handshakeTimeout") {
            duration(f, fat, where, l.handshake_timeout);
          } else if (key == "sniffTimeout") {
            duration(f, fat, where, l.sniff_timeout);
          } else if (key == "connectTimeout") {
            duration(f, fat, where, l.connect_timeout);
          } else if (key == "idleTimeout") {
            duration(f, fat, where, l.idle_timeout);
          } else if (key == "maxHeaderBytes") {
            count(f, fat, where, l.max_header_bytes, 1024 * 1024);
          } else if (key == "maxHeaders") {
            count(f, fat, where, l.max_headers, 10'000);
          } else if (key == "maxConcurrentStreams") {
            count(f, fat, where, l.max_concurrent_streams, 1'000'000);
          } else {
            count(f, fat, where, l.buffer_limit, 1ull << 30);
          }
        });
  }

  std::optional<SocketAddress> address(const YAML::Node& v, const Mark& at,
                                       const std::string& where) {
    auto s = scalar(v, at, where);
    if (!s) {
      return std::nullopt;
    }
    auto a = parseSocketAddress(*s);
    if (!a) {
      error(mark(v), where + ": bad address \"" + *s + "\" (IP:PORT or [IPv6]:PORT)");
    }
    return a;
  }

  void controlPlane(const YAML::Node& v, const Mark& at, BootstrapConfig& c) {
    if (!expectMap(v, at, "controlPlane")) {
      return;
    }
    ControlPlaneConfig cp;
    cp.mark = mark(v);
    forEachField(
        v, "controlPlane",
        {"address", "identity", "joinToken", "joinTokenFile", "serviceAccountTokenFile",
         "certificateTtl", "renewFraction", "renewJitter", "retryInitial", "retryMax", "keepalive"},
        [&](const std::string& key, const YAML::Node& f, const Mark& fat) {
          const std::string where = "controlPlane." + key;
          if (key == "certificateTtl" || key == "retryInitial" || key == "retryMax" ||
              key == "keepalive") {
            duration(f, fat, where,
                     key == "certificateTtl" ? cp.certificate_ttl
                     : key == "retryInitial" ? cp.retry_initial
                     : key == "retryMax"     ? cp.retry_max
                                             : cp.keepalive);
            return;
          }
          auto s = scalar(f, fat, where);
          if (!s) {
            return;
          }
          if (key == "address") {
            auto colon = s->rfind(':');
            auto port =
                colon == std::string::npos ? std::nullopt : parsePort(s->substr(colon + 1), false);
            if (!port || colon == 0) {
              error(mark(f), where + ": bad address \"" + *s + "\" (HOST:PORT)");
              return;
            }
            cp.host = s->substr(0, colon);
            if (cp.host.size() > 2 && cp.host.front() == '[' && cp.host.back() == ']') {
              cp.host = cp.host.substr(1, cp.host.size() - 2);
            }
            cp.port = *port;
          } else if (key == "identity") {
            if (auto id = policy::SpiffeId::parse(*s); !id.ok()) {
              error(mark(f), where + ": " + id.error().message);
            }
            cp.identity = *s;
          } else if (key == "joinToken") {
            cp.join_token = *s;
          } else if (key == "joinTokenFile") {
            cp.join_token_file = path(*s);
          } else if (key == "serviceAccountTokenFile") {
            cp.service_account_token_file = path(*s);
          } else {
            char* end = nullptr;
            double x = std::strtod(s->c_str(), &end);
            double lo = key == "renewFraction" ? 0.1 : 0.0;
            double hi = key == "renewFraction" ? 0.9 : 0.5;
            if (end == s->c_str() || *end != '\0' || x < lo || x > hi) {
              error(mark(f), where + " must be a number in " + std::to_string(lo).substr(0, 3) +
                                 ".." + std::to_string(hi).substr(0, 3));
              return;
            }
            (key == "renewFraction" ? cp.renew_fraction : cp.renew_jitter) = x;
          }
        });
    if (cp.host.empty()) {
      error(cp.mark, "controlPlane.address is required");
    }
    int credentials = !cp.join_token.empty() + !cp.join_token_file.empty() +
                      !cp.service_account_token_file.empty();
    if (credentials > 1) {
      error(cp.mark,
            "controlPlane: give one of joinToken, joinTokenFile or serviceAccountTokenFile");
    }
    c.control_plane = std::move(cp);
  }

  void identity(const YAML::Node& v, const Mark& at, BootstrapConfig& c) {
    if (!expectMap(v, at, "identity")) {
      return;
    }
    forEachField(
        v, "identity", {"certificateChain", "privateKey", "trustBundles"},
        [&](const std::string& key, const YAML::Node& f, const Mark& fat) {
          const std::string where = "identity." + key;
          if (key == "trustBundles") {
            if (!f.IsSequence()) {
              error(f.IsNull() ? fat : mark(f), where + " must be a list");
              return;
            }
            for (const YAML::Node& b : f) {
              TrustBundleFile bundle;
              bundle.mark = mark(b);
              if (!expectMap(b, fat, where + "[]")) {
                continue;
              }
              forEachField(b, where + "[]", {"file", "trustDomain"},
                           [&](const std::string& bk, const YAML::Node& bv, const Mark& bat) {
                             auto s = scalar(bv, bat, where + "[]." + bk);
                             if (!s) {
                               return;
                             }
                             if (bk == "file") {
                               bundle.file = path(*s);
                             } else if (auto td = policy::SpiffeId::validateTrustDomain(*s);
                                        !td.ok()) {
                               error(mark(bv), td.error().message);
                             } else {
                               bundle.trust_domain = *s;
                             }
                           });
              if (bundle.file.empty()) {
                error(bundle.mark, where + "[].file is required");
              }
              c.trust_bundles.push_back(std::move(bundle));
            }
          } else if (auto s = scalar(f, fat, where)) {
            (key == "certificateChain" ? c.certificate_chain : c.private_key) = path(*s);
            (key == "certificateChain" ? c.certificate_chain_mark : c.private_key_mark) = mark(f);
          }
        });
    for (const auto& [field, value] : {std::pair{"certificateChain", &c.certificate_chain},
                                       std::pair{"privateKey", &c.private_key}}) {
      if (value->empty() && !c.control_plane) {
        error(mark(v), std::string("identity.") + field +
                           " is required (or a controlPlane section that issues the SVID)");
      } else if (!value->empty() && c.control_plane) {
        error(mark(v), std::string("identity.") + field +
                           ": the controlPlane issues this workload's SVID; leave it out");
      }
    }
    if (c.trust_bundles.empty()) {
      error(mark(v), "identity.trustBundles must name at least one bundle");
    }
  }

  void workload(const YAML::Node& v, const Mark& at, BootstrapConfig& c) {
    if (!expectMap(v, at, "workload")) {
      return;
    }
    forEachField(v, "workload", {"namespace", "labels"},
                 [&](const std::string& key, const YAML::Node& f, const Mark& fat) {
                   if (key == "labels") {
                     c.labels = stringMap(f, fat, "workload.labels");
                   } else if (auto s = scalar(f, fat, "workload.namespace")) {
                     c.ns = *s;
                   }
                 });
  }

  void inbound(const YAML::Node& v, const Mark& at, BootstrapConfig& c) {
    if (!expectMap(v, at, "inbound")) {
      return;
    }
    forEachField(v, "inbound", {"address", "ports"},
                 [&](const std::string& key, const YAML::Node& f, const Mark& fat) {
                   if (key == "address") {
                     if (auto a = address(f, fat, "inbound.address")) {
                       c.inbound_address = *a;
                     }
                     return;
                   }
                   if (!f.IsSequence()) {
                     error(f.IsNull() ? fat : mark(f), "inbound.ports must be a list");
                     return;
                   }
                   for (const YAML::Node& p : f) {
                     c.inbound_ports.push_back(inboundPort(p, fat));
                   }
                 });
    std::map<std::uint16_t, bool> seen;
    for (const InboundPort& p : c.inbound_ports) {
      if (p.port != 0 && seen[p.port]) {
        error(p.mark, "inbound.ports: port " + std::to_string(p.port) + " is listed twice");
      }
      seen[p.port] = true;
    }
  }

  InboundPort inboundPort(const YAML::Node& p, const Mark& at) {
    InboundPort port;
    port.mark = mark(p);
    const std::string where = "inbound.ports[]";
    if (!expectMap(p, at, where)) {
      return port;
    }
    forEachField(p, where, {"port", "targetPort", "protocol", "clientCertificateHeader"},
                 [&](const std::string& key, const YAML::Node& f, const Mark& fat) {
                   auto s = scalar(f, fat, where + "." + key);
                   if (!s) {
                     return;
                   }
                   if (key == "port" || key == "targetPort") {
                     auto n = parsePort(*s, false);
                     if (!n) {
                       error(mark(f), where + "." + key + " must be a port number in 1..65535");
                       return;
                     }
                     (key == "port" ? port.port : port.target_port) = *n;
                   } else if (key == "protocol") {
                     static const std::map<std::string, InboundProtocol> kProtocols = {
                         {"HTTP", InboundProtocol::kHttp},
                         {"HTTP2", InboundProtocol::kHttp2},
                         {"GRPC", InboundProtocol::kGrpc},
                         {"TCP", InboundProtocol::kTcp}};
                     auto it = kProtocols.find(*s);
                     if (it == kProtocols.end()) {
                       error(mark(f), where + ".protocol must be HTTP, HTTP2, GRPC or TCP, got \"" +
                                          *s + "\"");
                       return;
                     }
                     port.protocol = it->second;
                   } else if (*s == "XFCC" || *s == "RFC9440") {
                     port.client_cert_header =
                         *s == "XFCC" ? ClientCertHeader::kXfcc : ClientCertHeader::kRfc9440;
                   } else {
                     error(mark(f), where + ".clientCertificateHeader must be XFCC or RFC9440");
                   }
                 });
    if (port.port == 0 && !p["port"]) {
      error(port.mark, where + ".port is required");
    }
    if (port.target_port == 0) {
      port.target_port = port.port;
    }
    return port;
  }

  void outbound(const YAML::Node& v, const Mark& at, BootstrapConfig& c) {
    if (!expectMap(v, at, "outbound")) {
      return;
    }
    forEachField(
        v, "outbound", {"transparent", "listeners", "pooledHttp", "loadBalancer"},
        [&](const std::string& key, const YAML::Node& f, const Mark& fat) {
          if (key == "transparent") {
            c.transparent_outbound = address(f, fat, "outbound.transparent");
            return;
          }
          if (key == "pooledHttp") {
            auto s = scalar(f, fat, "outbound.pooledHttp");
            if (s && *s != "true" && *s != "false") {
              error(mark(f), "outbound.pooledHttp must be true or false");
            } else if (s) {
              c.outbound_pooled_http = *s == "true";
            }
            return;
          }
          if (key == "loadBalancer") {
            auto s = scalar(f, fat, "outbound.loadBalancer");
            if (s && *s == "LEAST_REQUEST") {
              c.outbound_load_balancer = LoadBalancer::kLeastRequest;
            } else if (s && *s == "ROUND_ROBIN") {
              c.outbound_load_balancer = LoadBalancer::kRoundRobin;
            } else if (s && *s == "RANDOM") {
              c.outbound_load_balancer = LoadBalancer::kRandom;
            } else if (s) {
              error(mark(f), "outbound.loadBalancer must be LEAST_REQUEST, ROUND_ROBIN or RANDOM");
            }
            return;
          }
          if (!f.IsSequence()) {
            error(f.IsNull() ? fat : mark(f), "outbound.listeners must be a list");
            return;
          }
          for (const YAML::Node& l : f) {
            OutboundListener listener;
            listener.mark = mark(l);
            const std::string where = "outbound.listeners[]";
            if (!expectMap(l, fat, where)) {
              continue;
            }
            forEachField(l, where, {"address", "service", "port"},
                         [&](const std::string& lk, const YAML::Node& lv, const Mark& lat) {
                           if (lk == "address") {
                             if (auto a = address(lv, lat, where + ".address")) {
                               listener.address = *a;
                             }
                           } else if (auto s = scalar(lv, lat, where + "." + lk)) {
                             if (lk == "service") {
                               listener.service = *s;
                             } else if (auto n = parsePort(*s, false)) {
                               listener.port = *n;
                             } else {
                               error(mark(lv), where + ".port must be a port number in 1..65535");
                             }
                           }
                         });
            for (const char* required : {"address", "service", "port"}) {
              if (!l[required]) {
                error(listener.mark, where + "." + required + " is required");
              }
            }
            c.outbound_listeners.push_back(std::move(listener));
          }
        });
  }
};

}  // namespace

std::optional<SocketAddress> parseSocketAddress(const std::string& text) {
  std::string host;
  std::string port;
  if (text.starts_with("[")) {
    auto close = text.find("]:");
    if (close == std::string::npos) {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      return std::nullopt;  // IPv6 needs brackets
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto ip = policy::IpAddress::parse(host);
  auto n = parsePort(port, true);
  if (!ip.ok() || !n) {
    return std::nullopt;
  }
  return SocketAddress{*ip, *n, text};
}

BootstrapConfig loadBootstrap(const std::string& path, policy::LoadResult& out) {
  BootstrapConfig c;
  c.file = path;
  c.inbound_address = *parseSocketAddress("0.0.0.0:15006");
  c.admin = *parseSocketAddress("127.0.0.1:15000");
  c.readiness = *parseSocketAddress("0.0.0.0:15020");
  c.metrics = *parseSocketAddress("0.0.0.0:15090");
  auto text = common::readFile(path);
  if (!text.ok()) {
    out.diagnostics.push_back(
        {policy::Diagnostic::Severity::kError, Mark{path, 0, 0}, "cannot read the bootstrap file"});
    return c;
  }
  BootstrapReader reader(path, out);
  if (std::optional<YAML::Node> doc = reader.parse(*text)) {
    reader.read(*doc, c);
  }
  return c;
}

void validateBootstrapReferences(const BootstrapConfig& c, policy::LoadResult& out) {
  auto fail = [&](const Mark& m, std::string message) {
    out.diagnostics.push_back({policy::Diagnostic::Severity::kError, m, std::move(message)});
  };
  auto svid = c.control_plane ? Result<common::Svid>(common::Svid{})
                              : common::loadSvid(c.certificate_chain, c.private_key);
  if (c.control_plane) {
    // The SVID comes from the control plane; a token file must be readable.
    for (const std::string* f :
         {&c.control_plane->join_token_file, &c.control_plane->service_account_token_file}) {
      if (!f->empty() && !common::readFile(*f).ok()) {
        fail(c.control_plane->mark, "controlPlane: cannot read " + *f);
      }
    }
  } else if (!svid.ok()) {
    // The message names the file at fault; point at the field that names it.
    const bool key = svid.error().message.find(c.private_key) != std::string::npos;
    fail(key ? c.private_key_mark : c.certificate_chain_mark,
         std::string(key ? "identity.privateKey: " : "identity.certificateChain: ") +
             svid.error().message);
  } else if (auto id = common::spiffeIdOf(svid->leaf.get()); !id.ok()) {
    fail(c.certificate_chain_mark,
         "identity.certificateChain: " + c.certificate_chain + ": " + id.error().message);
  }
  common::BundleSet bundles;
  for (const TrustBundleFile& b : c.trust_bundles) {
    if (Status s = bundles.addPemFile(b.file, b.trust_domain); !s.ok()) {
      fail(b.mark, "identity.trustBundles: " + s.error().message);
    }
  }
  policy::LoadResult services;
  for (const std::string* dir : {&c.policies, &c.services}) {
    if (dir->empty()) {
      continue;
    }
    policy::LoadResult loaded = policy::loadPath(*dir);
    out.diagnostics.insert(out.diagnostics.end(), loaded.diagnostics.begin(),
                           loaded.diagnostics.end());
    if (dir == &c.services) {
      services = std::move(loaded);
    }
  }
  for (const OutboundListener& l : c.outbound_listeners) {
    bool known = false;
    for (const policy::ServiceEntry& se : services.bundle.service_entries) {
      for (const std::string& host : se.hosts) {
        known |= host == l.service;
      }
    }
    if (!known) {
      fail(l.mark, "outbound.listeners[].service \"" + l.service +
                       "\" is not a host of any ServiceEntry in " +
                       (c.services.empty() ? std::string("(no services configured)") : c.services));
    }
  }
}

}  // namespace palisade::proxy
