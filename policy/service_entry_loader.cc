#include "policy/service_entry_loader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "policy/dns_name.h"
#include "policy/ip_address.h"
#include "policy/spiffe_id.h"

namespace palisade::policy {
namespace {

// Istio's protocol names (pkg/config/protocol), matched case-insensitively.
const std::set<std::string>& knownProtocols() {
  static const std::set<std::string> kProtocols = {
      "HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "MYSQL", "REDIS", "TCP", "TLS", "UDP"};
  return kProtocols;
}

std::string upper(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

// A port number 1..65535 from a scalar; reports and returns nullopt otherwise.
std::optional<std::uint32_t> portNumber(YamlReader& r, const YAML::Node& v, const Mark& at,
                                        const std::string& where) {
  auto text = r.scalar(v, at, where);
  if (!text) {
    return std::nullopt;
  }
  std::uint32_t n = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (text->empty() || ec != std::errc() || end != text->data() + text->size() || n == 0 ||
      n > 65535) {
    r.error(r.mark(v), where + " must be a port number in 1..65535, got \"" + *text + "\"");
    return std::nullopt;
  }
  return n;
}

// WorkloadEntry.spec, or one of ServiceEntry.spec.endpoints.
WorkloadEndpoint endpoint(YamlReader& r, const YAML::Node& node, const Mark& at,
                          const std::string& where) {
  WorkloadEndpoint ep;
  ep.mark = node.IsNull() ? at : r.mark(node);
  if (!r.expectMap(node, at, where)) {
    return ep;
  }
  r.forEachField(
      node, where,
      {"address", "ports", "labels", "network", "locality", "weight", "serviceAccount"},
      [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
        const std::string fw = where + "." + key;
        if (key == "ports") {
          if (!r.expectMap(v, key_at, fw)) {
            return;
          }
          for (auto it = v.begin(); it != v.end(); ++it) {
            const YAML::Node k = it->first;
            const YAML::Node n = it->second;
            if (auto port = portNumber(r, n, r.mark(k), fw + "." + k.Scalar())) {
              ep.ports[k.Scalar()] = *port;
            }
          }
        } else if (key == "labels") {
          ep.labels = r.stringMap(v, key_at, fw);
        } else if (key == "weight") {
          auto text = r.scalar(v, key_at, fw);
          std::uint32_t w = 0;
          if (text &&
              (std::from_chars(text->data(), text->data() + text->size(), w).ec != std::errc() ||
               text->empty())) {
            r.error(r.mark(v), fw + " must be a non-negative integer");
          }
          ep.weight = w;
        } else if (auto text = r.scalar(v, key_at, fw)) {
          if (key == "address") {
            ep.address = *text;
          } else if (key == "network") {
            ep.network = *text;
          } else if (key == "locality") {
            ep.locality = *text;
          } else {
            ep.service_account = *text;
          }
        }
      });
  return ep;
}

void validateEndpointAddress(YamlReader& r, const WorkloadEndpoint& ep, Resolution resolution,
                             const std::string& where) {
  if (ep.address.empty()) {
    r.error(ep.mark, where + ".address is required");
    return;
  }
  if (ep.address.starts_with("unix://")) {
    return;
  }
  const bool ip = IpAddress::parse(ep.address).ok();
  // "STATIC ... endpoints must be IP addresses"; DNS resolution also takes host names.
  if (resolution == Resolution::kStatic && !ip) {
    r.error(ep.mark, where + ".address \"" + ep.address +
                         "\" must be an IP address (or unix://) with resolution STATIC");
  } else if (!ip && !isDnsName(ep.address)) {
    r.error(ep.mark, where + ".address \"" + ep.address +
                         "\" is neither an IP address nor a "
                         "DNS name");
  }
}

}  // namespace

void readServiceEntry(YamlReader& r, const YAML::Node& doc, const std::string& api) {
  ServiceEntry se;
  se.api_version = api;
  se.mark = r.mark(doc);
  bool has_spec = false;
  r.forEachField(
      doc, "ServiceEntry", {"apiVersion", "kind", "metadata", "spec", "status"},
      [&](const std::string& key, const YAML::Node& v, const Mark& at) {
        if (key == "metadata") {
          se.metadata = r.metadata(v, at, "ServiceEntry");
          return;
        }
        if (key != "spec") {
          return;
        }
        has_spec = true;
        if (!r.expectMap(v, at, "spec")) {
          return;
        }
        r.forEachField(
            v, "ServiceEntry.spec",
            {"hosts", "addresses", "ports", "location", "resolution", "endpoints",
             "workloadSelector", "exportTo", "subjectAltNames"},
            [&](const std::string& sk, const YAML::Node& sv, const Mark& sat) {
              const std::string fw = "spec." + sk;
              if (sk == "hosts" || sk == "addresses" || sk == "exportTo" ||
                  sk == "subjectAltNames") {
                Values values = r.stringList(sv, sat, fw);
                for (const Value& value : values) {
                  if (sk == "hosts" && value.text != "*" && !isDnsName(value.text)) {
                    r.error(value.mark, "bad host \"" + value.text + "\" in spec.hosts");
                  } else if (sk == "addresses" && !CidrRange::parse(value.text).ok()) {
                    r.error(value.mark,
                            "bad address \"" + value.text + "\" in spec.addresses (IP or CIDR)");
                  } else if (sk == "subjectAltNames") {
                    // Palisade names servers by SPIFFE ID (secure naming).
                    if (auto id = SpiffeId::parse(value.text); !id.ok()) {
                      r.error(value.mark, "spec.subjectAltNames: \"" + value.text +
                                              "\" is not a SPIFFE ID: " + id.error().message);
                    }
                  }
                  auto& list = sk == "hosts"       ? se.hosts
                               : sk == "addresses" ? se.addresses
                               : sk == "exportTo"  ? se.export_to
                                                   : se.subject_alt_names;
                  list.push_back(value.text);
                }
              } else if (sk == "ports") {
                if (!sv.IsSequence()) {
                  r.error(sv.IsNull() ? sat : r.mark(sv), fw + " must be a list");
                  return;
                }
                int i = 0;
                for (const YAML::Node& p : sv) {
                  const std::string pw = fw + "[" + std::to_string(i++) + "]";
                  ServicePort port;
                  port.mark = r.mark(p);
                  if (!r.expectMap(p, sat, pw)) {
                    continue;
                  }
                  r.forEachField(p, pw, {"number", "protocol", "name", "targetPort"},
                                 [&](const std::string& pk, const YAML::Node& pv, const Mark& pat) {
                                   if (pk == "number" || pk == "targetPort") {
                                     auto n = portNumber(r, pv, pat, pw + "." + pk);
                                     (pk == "number" ? port.number : port.target_port) =
                                         n.value_or(0);
                                   } else if (auto text = r.scalar(pv, pat, pw + "." + pk)) {
                                     if (pk == "name") {
                                       port.name = *text;
                                     } else if (!knownProtocols().count(upper(*text))) {
                                       r.error(r.mark(pv), "unknown protocol \"" + *text +
                                                               "\" in " + pw + ".protocol");
                                     } else {
                                       port.protocol = upper(*text);
                                     }
                                   }
                                 });
                  if (!p["number"]) {
                    r.error(port.mark, pw + ".number is required");
                  }
                  se.ports.push_back(std::move(port));
                }
              } else if (sk == "location" || sk == "resolution") {
                auto text = r.scalar(sv, sat, fw);
                if (!text) {
                  return;
                }
                if (sk == "location" && *text == "MESH_EXTERNAL") {
                  se.location = ServiceLocation::kMeshExternal;
                } else if (sk == "location" && *text == "MESH_INTERNAL") {
                  se.location = ServiceLocation::kMeshInternal;
                } else if (sk == "resolution" && *text == "NONE") {
                  se.resolution = Resolution::kNone;
                } else if (sk == "resolution" && *text == "STATIC") {
                  se.resolution = Resolution::kStatic;
                } else if (sk == "resolution" && *text == "DNS") {
                  se.resolution = Resolution::kDns;
                } else if (sk == "resolution" && *text == "DNS_ROUND_ROBIN") {
                  se.resolution = Resolution::kDnsRoundRobin;
                } else {
                  r.error(r.mark(sv),
                          "unknown " + sk + " \"" + *text + "\" in " + fw +
                              (sk == "location" ? " (MESH_EXTERNAL or MESH_INTERNAL)"
                                                : " (NONE, STATIC, DNS or DNS_ROUND_ROBIN)"));
                }
              } else if (sk == "endpoints") {
                if (!sv.IsSequence()) {
                  r.error(sv.IsNull() ? sat : r.mark(sv), fw + " must be a list");
                  return;
                }
                int i = 0;
                for (const YAML::Node& e : sv) {
                  se.endpoints.push_back(endpoint(r, e, sat, fw + "[" + std::to_string(i++) + "]"));
                }
              } else if (sk == "workloadSelector") {
                if (!r.expectMap(sv, sat, fw)) {
                  return;
                }
                r.forEachField(sv, fw, {"labels"},
                               [&](const std::string&, const YAML::Node& lv, const Mark& lat) {
                                 se.workload_selector = r.stringMap(lv, lat, fw + ".labels");
                               });
              }
            });
      });
  if (!doc["metadata"]) {
    se.metadata = r.metadata(YAML::Node(), se.mark, "ServiceEntry");
  }
  // Istio's ValidateServiceEntry, the rules that matter to a sidecar.
  if (has_spec || se.hosts.empty()) {
    if (se.hosts.empty()) {
      r.error(se.mark, "ServiceEntry " + se.metadata.name + ": spec.hosts must not be empty");
    }
  }
  if (se.workload_selector && !se.endpoints.empty()) {
    r.error(se.mark, "ServiceEntry " + se.metadata.name +
                         ": only one of spec.workloadSelector and spec.endpoints can be set");
  }
  std::set<std::uint32_t> numbers;
  std::set<std::string> names;
  for (const ServicePort& p : se.ports) {
    if (p.number != 0 && !numbers.insert(p.number).second) {
      r.error(p.mark, "duplicate port number " + std::to_string(p.number) + " in spec.ports");
    }
    if (!p.name.empty() && !names.insert(p.name).second) {
      r.error(p.mark, "duplicate port name \"" + p.name + "\" in spec.ports");
    }
  }
  if (se.resolution != Resolution::kNone && se.ports.empty()) {
    r.error(se.mark, "ServiceEntry " + se.metadata.name +
                         ": spec.ports must not be empty when resolution is not NONE");
  }
  if (se.resolution == Resolution::kStatic && se.endpoints.empty() && !se.workload_selector) {
    r.error(se.mark, "ServiceEntry " + se.metadata.name +
                         ": resolution STATIC needs spec.endpoints or spec.workloadSelector");
  }
  for (std::size_t i = 0; i < se.endpoints.size(); ++i) {
    const WorkloadEndpoint& ep = se.endpoints[i];
    const std::string where = "spec.endpoints[" + std::to_string(i) + "]";
    validateEndpointAddress(r, ep, se.resolution, where);
    for (const auto& [name, port] : ep.ports) {
      if (!names.count(name)) {
        r.error(ep.mark, where + ".ports names \"" + name +
                             "\", which is not a port of the "
                             "service");
      }
    }
  }
  r.out().bundle.service_entries.push_back(std::move(se));
}

void readWorkloadEntry(YamlReader& r, const YAML::Node& doc, const std::string& api) {
  WorkloadEntry we;
  we.api_version = api;
  we.mark = r.mark(doc);
  we.spec.mark = we.mark;  // errors about a missing spec point at the document
  r.forEachField(doc, "WorkloadEntry", {"apiVersion", "kind", "metadata", "spec", "status"},
                 [&](const std::string& key, const YAML::Node& v, const Mark& at) {
                   if (key == "metadata") {
                     we.metadata = r.metadata(v, at, "WorkloadEntry");
                   } else if (key == "spec") {
                     we.spec = endpoint(r, v, at, "spec");
                   }
                 });
  if (!doc["metadata"]) {
    we.metadata = r.metadata(YAML::Node(), we.mark, "WorkloadEntry");
  }
  validateEndpointAddress(r, we.spec, Resolution::kDns, "spec");
  r.out().bundle.workload_entries.push_back(std::move(we));
}

}  // namespace palisade::policy
