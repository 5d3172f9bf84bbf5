#include "policy/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "policy/ip_address.h"
#include "policy/path_template.h"
#include "policy/service_entry_loader.h"
#include "policy/traffic_loader.h"
#include "policy/yaml_reader.h"

namespace palisade::policy {

std::string formatMark(const Mark& mark) {
  if (mark.line <= 0) {
    return mark.file;
  }
  return mark.file + ":" + std::to_string(mark.line) + ":" + std::to_string(mark.column);
}

std::string formatDiagnostic(const Diagnostic& d) {
  std::string prefix = formatMark(d.mark);
  std::string out = prefix.empty() ? std::string() : prefix + ": ";
  if (d.severity == Diagnostic::Severity::kWarning) {
    out += "warning: ";
  }
  return out + d.message;
}

const char* actionName(Action action) {
  switch (action) {
    case Action::kAllow:
      return "ALLOW";
    case Action::kDeny:
      return "DENY";
    case Action::kAudit:
      return "AUDIT";
  }
  return "?";
}

const char* mtlsModeName(MtlsMode mode) {
  switch (mode) {
    case MtlsMode::kUnset:
      return "UNSET";
    case MtlsMode::kDisable:
      return "DISABLE";
    case MtlsMode::kPermissive:
      return "PERMISSIVE";
    case MtlsMode::kStrict:
      return "STRICT";
  }
  return "?";
}

bool LoadResult::ok() const {
  return std::none_of(diagnostics.begin(), diagnostics.end(), [](const Diagnostic& d) {
    return d.severity == Diagnostic::Severity::kError;
  });
}

std::string LoadResult::errorText() const {
  std::string out;
  for (const Diagnostic& d : diagnostics) {
    if (d.severity == Diagnostic::Severity::kError) {
      out += formatDiagnostic(d);
      out += '\n';
    }
  }
  return out;
}

namespace {

constexpr std::string_view kDryRunAnnotation = "istio.io/dry-run";

// One file's walk over the YAML tree. Methods append diagnostics and keep going where they
// can, so `palisadectl authz validate` reports every error at once.
class FileLoader : public YamlReader {
 public:
  FileLoader(const std::string& file, LoadResult& out) : YamlReader(file, out) {}

  void load(std::string_view text) {
    // Documents are split here, at lines that start with "---", and parsed one by one:
    // yaml-cpp 0.7's LoadAll can loop forever on some malformed input, and one broken
    // document should not hide the errors of the others.
    int line = 0;
    int chunk_line = 0;
    std::size_t chunk_begin = 0;
    for (std::size_t pos = 0; pos <= text.size();) {
      std::size_t eol = text.find('\n', pos);
      std::size_t next = eol == std::string_view::npos ? text.size() + 1 : eol + 1;
      std::string_view l =
          text.substr(pos, (eol == std::string_view::npos ? text.size() : eol) - pos);
      const bool marker =
          l.starts_with("---") && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
      if (marker && pos > chunk_begin) {
        document(text.substr(chunk_begin, pos - chunk_begin), chunk_line);
        chunk_begin = pos;
        chunk_line = line;
      }
      pos = next;
      ++line;
    }
    if (chunk_begin < text.size()) {
      document(text.substr(chunk_begin), chunk_line);
    }
  }

 private:
  void document(std::string_view chunk, int first_line) {
    if (budget_exceeded_) {
      return;
    }
    if (std::optional<YAML::Node> doc = parse(chunk, first_line)) {
      document(*doc, /*in_list=*/false);
    }
  }

  void document(const YAML::Node& doc, bool in_list) {
    if (doc.IsNull()) {
      return;  // an empty document, e.g. after a trailing "---"
    }
    Mark doc_mark = mark(doc);
    if (!doc.IsMap()) {
      error(doc_mark, "a manifest must be a mapping with apiVersion, kind, metadata and spec");
      return;
    }
    const YAML::Node kind_node = doc["kind"];
    const YAML::Node api_node = doc["apiVersion"];
    if (!kind_node || !kind_node.IsScalar()) {
      error(doc_mark, "manifest has no kind");
      return;
    }
    if (!api_node || !api_node.IsScalar()) {
      error(doc_mark, "manifest has no apiVersion");
      return;
    }
    const std::string kind = kind_node.Scalar();
    const std::string api = api_node.Scalar();
    if (kind == "List" && api == "v1" && !in_list) {
      forEachField(doc, "List", {"apiVersion", "kind", "metadata", "items"},
                   [&](const std::string& key, const YAML::Node& v, const Mark& at) {
                     if (key != "items") {
                       return;
                     }
                     if (!v.IsSequence()) {
                       error(v.IsNull() ? at : mark(v), "List.items must be a list");
                       return;
                     }
                     for (const YAML::Node& item : v) {
                       document(item, /*in_list=*/true);
                     }
                   });
      return;
    }
    const bool security_api = api == "security.istio.io/v1" || api == "security.istio.io/v1beta1";
    if (kind == "AuthorizationPolicy" && security_api) {
      authorizationPolicy(doc, api);
      return;
    }
    if (kind == "PeerAuthentication" && security_api) {
      peerAuthentication(doc, api);
      return;
    }
    if (kind == "AuthorizationPolicy" || kind == "PeerAuthentication") {
      error(mark(api_node), "unsupported apiVersion \"" + api + "\" for " + kind +
                                " (use security.istio.io/v1 or security.istio.io/v1beta1)");
      return;
    }
    const bool networking_api = api == "networking.istio.io/v1" ||
                                api == "networking.istio.io/v1beta1" ||
                                api == "networking.istio.io/v1alpha3";
    if (kind == "ServiceEntry" && networking_api) {
      readServiceEntry(*this, doc, api);
      return;
    }
    if (kind == "WorkloadEntry" && networking_api) {
      readWorkloadEntry(*this, doc, api);
      return;
    }
    if (kind == "DestinationRule" && networking_api) {
      readDestinationRule(*this, doc, api);
      return;
    }
    if (kind == "VirtualService" && networking_api) {
      readVirtualService(*this, doc, api);
      return;
    }
    if (kind == "ServiceEntry" || kind == "WorkloadEntry" || kind == "DestinationRule" ||
        kind == "VirtualService") {
      error(mark(api_node), "unsupported apiVersion \"" + api + "\" for " + kind +
                                " (use networking.istio.io/v1, v1beta1 or v1alpha3)");
      return;
    }
    error(mark(kind_node), "unsupported kind \"" + kind + "\" (" + api +
                               "): expected AuthorizationPolicy or PeerAuthentication "
                               "(security.istio.io), ServiceEntry, WorkloadEntry, "
                               "DestinationRule or VirtualService (networking.istio.io)");
  }

  // --- AuthorizationPolicy --------------------------------------------------------------

  void authorizationPolicy(const YAML::Node& doc, const std::string& api) {
    AuthorizationPolicy ap;
    ap.api_version = api;
    ap.mark = mark(doc);
    forEachField(doc, "AuthorizationPolicy", {"apiVersion", "kind", "metadata", "spec", "status"},
                 [&](const std::string& key, const YAML::Node& v, const Mark& at) {
                   if (key == "metadata") {
                     ap.metadata = metadata(v, at, "AuthorizationPolicy");
                   } else if (key == "spec") {
                     authzSpec(v, at, ap);
                   }
                 });
    if (!doc["metadata"]) {
      ap.metadata = metadata(YAML::Node(), ap.mark, "AuthorizationPolicy");
    }
    // A policy without spec is `spec: {}`: ALLOW (the default action) with no rules, which
    // allows nothing.
    auto dry = ap.metadata.annotations.find(std::string(kDryRunAnnotation));
    if (dry != ap.metadata.annotations.end()) {
      // Istio reads the annotation with Go's strconv.ParseBool.
      static const std::set<std::string> kTrue = {"1", "t", "T", "TRUE", "true", "True"};
      static const std::set<std::string> kFalse = {"0", "f", "F", "FALSE", "false", "False"};
      if (kTrue.count(dry->second)) {
        ap.dry_run = true;
      } else if (!kFalse.count(dry->second)) {
        error(ap.metadata.mark,
              "annotation istio.io/dry-run must be \"true\" or \"false\", got \"" + dry->second +
                  "\"");
      }
    }
    if (ap.action == Action::kAudit && ap.dry_run) {
      warning(ap.metadata.mark,
              "istio.io/dry-run on an AUDIT policy turns it off: it records nothing (an AUDIT "
              "policy never changes a decision anyway)");
    }
    out_.bundle.authorization_policies.push_back(std::move(ap));
  }

  void authzSpec(const YAML::Node& spec, const Mark& at, AuthorizationPolicy& ap) {
    if (spec.IsNull()) {
      return;
    }
    if (!expectMap(spec, at, "spec")) {
      return;
    }
    bool custom = false;
    forEachField(spec, "AuthorizationPolicy.spec",
                 {"selector", "targetRef", "targetRefs", "action", "provider", "rules"},
                 [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
                   if (key == "selector") {
                     ap.selector = selector(v, key_at);
                   } else if (key == "targetRef" || key == "targetRefs") {
                     error(key_at, "spec." + key +
                                       " is not supported: palisade applies policies to workloads "
                                       "through spec.selector (waypoints and gateways by reference "
                                       "are not supported)");
                   } else if (key == "action") {
                     auto s = scalar(v, key_at, "spec.action");
                     if (!s) {
                       return;
                     }
                     ap.action_mark = mark(v);
                     if (*s == "ALLOW") {
                       ap.action = Action::kAllow;
                     } else if (*s == "DENY") {
                       ap.action = Action::kDeny;
                     } else if (*s == "AUDIT") {
                       ap.action = Action::kAudit;
                     } else if (*s == "CUSTOM") {
                       custom = true;
                       error(mark(v),
                             "action CUSTOM is not supported (external authorization "
                             "providers are not available in palisade)");
                     } else {
                       error(mark(v),
                             "unknown action \"" + *s + "\" (expected ALLOW, DENY or AUDIT)");
                     }
                   } else if (key == "provider") {
                     if (!custom) {
                       error(key_at,
                             "spec.provider is only valid with action CUSTOM, which palisade "
                             "does not support");
                     }
                   } else if (key == "rules") {
                     // `rules:` left empty or `rules: []` is no rules at all (Istio's Rules ==
                     // nil).
                     ap.has_rules = v.IsSequence() && v.size() > 0;
                     if (v.IsNull()) {
                       return;
                     }
                     if (!v.IsSequence()) {
                       error(mark(v), "spec.rules must be a list");
                       return;
                     }
                     int i = 0;
                     for (const YAML::Node& r : v) {
                       ap.rules.push_back(rule(r, key_at, i++));
                     }
                   }
                 });
    // "DENY action without `rules` is meaningless as it will never be triggered" (Istio).
    if (ap.action == Action::kDeny && !ap.has_rules) {
      error(ap.action_mark.line ? ap.action_mark : at,
            "DENY action without rules is meaningless as it will never be triggered; add an "
            "empty rule {} to deny every request");
    }
  }

  Rule rule(const YAML::Node& node, const Mark& at, int index) {
    Rule r;
    r.mark = node.IsNull() ? at : mark(node);
    const std::string where = "spec.rules[" + std::to_string(index) + "]";
    if (node.IsNull()) {
      error(r.mark, where + " must not be null");
      return r;
    }
    if (!expectMap(node, at, where)) {
      return r;
    }
    forEachField(
        node, where, {"from", "to", "when"},
        [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
          if (key == "from") {
            list(v, key_at, where + ".from", [&](const YAML::Node& item, int i) {
              r.from.push_back(source(item, key_at, where + ".from[" + std::to_string(i) + "]"));
            });
          } else if (key == "to") {
            list(v, key_at, where + ".to", [&](const YAML::Node& item, int i) {
              r.to.push_back(operation(item, key_at, where + ".to[" + std::to_string(i) + "]"));
            });
          } else if (key == "when") {
            list(v, key_at, where + ".when", [&](const YAML::Node& item, int i) {
              r.when.push_back(condition(item, key_at, where + ".when[" + std::to_string(i) + "]"));
            });
          }
        });
    return r;
  }

  // from/to/when: a non-empty list ("`from` must not be empty" in Istio's validation).
  void list(const YAML::Node& v, const Mark& at, const std::string& where,
            const std::function<void(const YAML::Node&, int)>& fn) {
    if (v.IsNull() || (v.IsSequence() && v.size() == 0)) {
      error(v.IsNull() ? at : mark(v), where + " must not be empty");
      return;
    }
    if (!v.IsSequence()) {
      error(mark(v), where + " must be a list");
      return;
    }
    int i = 0;
    for (const YAML::Node& item : v) {
      fn(item, i++);
    }
  }

  Field field(const YAML::Node& v, const Mark& at, const std::string& where) {
    Field f;
    f.mark = at;
    f.values = stringList(v, at, where);
    return f;
  }

  void validateIps(const Values& values, const std::string& where) {
    for (const Value& v : values) {
      if (auto r = CidrRange::parse(v.text); !r.ok()) {
        error(v.mark, r.error().message + " in " + where);
      }
    }
  }

  void validatePorts(const Values& values, const std::string& where) {
    for (const Value& v : values) {
      unsigned long port = 0;
      auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), port);
      if (ec != std::errc() || end != v.text.data() + v.text.size() || port > 65535) {
        error(v.mark, "bad port \"" + v.text + "\" in " + where + " (expected 0-65535)");
      }
    }
  }

  // Istio's CheckServiceAccount: at most 16 values of at most 320 characters, "name" or
  // "namespace/name", no wildcards.
  void validateServiceAccounts(const Values& values, const std::string& where) {
    if (values.size() > 16) {
      error(values[16].mark, where + " may not have more than 16 values");
    }
    for (const Value& v : values) {
      if (v.text.size() > 320) {
        error(v.mark, "service account in " + where + " cannot exceed 320 characters");
        continue;
      }
      auto slash = v.text.find('/');
      bool bad = v.text.find('*') != std::string::npos ||
                 (slash != std::string::npos && (slash == 0 || slash + 1 == v.text.size() ||
                                                 v.text.find('/', slash + 1) != std::string::npos));
      if (bad) {
        error(v.mark, "bad service account \"" + v.text + "\" in " + where +
                          " (expected \"name\" or \"namespace/name\", no wildcards)");
      }
    }
  }

  // `- source: {...}` and `- operation: {...}`: a list item whose one field wraps the mapping
  // that matters. Calls body(mapping, key_mark, "where.field") when that mapping is there.
  template <typename Body>
  void wrapped(const YAML::Node& item, const Mark& at, const std::string& where,
               std::string_view field, Mark& item_mark, Body body) {
    item_mark = item.IsNull() ? at : mark(item);
    if (!expectMap(item, at, where)) {
      return;
    }
    const std::string inner = where + "." + std::string(field);
    bool present = false;
    forEachField(item, where, {field},
                 [&](const std::string&, const YAML::Node& v, const Mark& key_at) {
                   present = true;
                   if (v.IsNull()) {
                     error(key_at, inner + " must not be null");
                     return;
                   }
                   if (!expectMap(v, key_at, inner)) {
                     return;
                   }
                   item_mark = key_at;
                   body(v, key_at, inner);
                 });
    if (!present) {
      error(item_mark, inner + " must not be null");
    }
  }

  Source source(const YAML::Node& item, const Mark& at, const std::string& where) {
    Source s;
    wrapped(item, at, where, "source", s.mark,
            [&](const YAML::Node& v, const Mark& key_at, const std::string& sw) {
              forEachField(
                  v, sw,
                  {"principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
                   "namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
                   "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"},
                  [&](const std::string& key, const YAML::Node& fv, const Mark& fat) {
                    const std::string fw = sw + "." + key;
                    Values vals = stringList(fv, fat, fw);
                    auto put = [&](Field& f, bool negated) {
                      f.mark = f.mark.line ? f.mark : fat;
                      (negated ? f.not_values : f.values) = std::move(vals);
                    };
                    if (key == "principals") {
                      put(s.principals, false);
                    } else if (key == "notPrincipals") {
                      put(s.principals, true);
                    } else if (key == "requestPrincipals" || key == "notRequestPrincipals") {
                      error(fat, fw + " is not supported: request principals come from JWT "
                                      "authentication (RequestAuthentication), which palisade does "
                                      "not support yet");
                      put(s.request_principals, key == "notRequestPrincipals");
                    } else if (key == "namespaces") {
                      put(s.namespaces, false);
                    } else if (key == "notNamespaces") {
                      put(s.namespaces, true);
                    } else if (key == "serviceAccounts" || key == "notServiceAccounts") {
                      validateServiceAccounts(vals, fw);
                      put(s.service_accounts, key == "notServiceAccounts");
                    } else if (key == "ipBlocks" || key == "notIpBlocks") {
                      validateIps(vals, fw);
                      put(s.ip_blocks, key == "notIpBlocks");
                    } else if (key == "remoteIpBlocks" || key == "notRemoteIpBlocks") {
                      validateIps(vals, fw);
                      put(s.remote_ip_blocks, key == "notRemoteIpBlocks");
                    }
                  });
              if (s.principals.empty() && s.request_principals.empty() && s.namespaces.empty() &&
                  s.service_accounts.empty() && s.ip_blocks.empty() && s.remote_ip_blocks.empty()) {
                error(key_at, sw + " must not be empty");
              }
              if (!s.service_accounts.empty() && (!s.principals.empty() || !s.namespaces.empty())) {
                error(s.service_accounts.mark,
                      "cannot set serviceAccounts with namespaces or principals in " + sw);
              }
            });
    return s;
  }

  Operation operation(const YAML::Node& item, const Mark& at, const std::string& where) {
    Operation o;
    wrapped(item, at, where, "operation", o.mark,
            [&](const YAML::Node& v, const Mark& key_at, const std::string& ow) {
              forEachField(v, ow,
                           {"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods",
                            "paths", "notPaths"},
                           [&](const std::string& key, const YAML::Node& fv, const Mark& fat) {
                             const std::string fw = ow + "." + key;
                             Values vals = stringList(fv, fat, fw);
                             const bool negated = key.starts_with("not");
                             Field* f = nullptr;
                             if (key == "hosts" || key == "notHosts") {
                               f = &o.hosts;
                             } else if (key == "ports" || key == "notPorts") {
                               validatePorts(vals, fw);
                               f = &o.ports;
                             } else if (key == "methods" || key == "notMethods") {
                               f = &o.methods;
                             } else {
                               for (const Value& p : vals) {
                                 if (auto t = PathTemplate::validate(p.text); !t.ok()) {
                                   error(p.mark, t.error().message + " in " + fw);
                                 }
                               }
                               f = &o.paths;
                             }
                             f->mark = f->mark.line ? f->mark : fat;
                             (negated ? f->not_values : f->values) = std::move(vals);
                           });
              if (o.hosts.empty() && o.ports.empty() && o.methods.empty() && o.paths.empty()) {
                error(key_at, ow + " must not be empty");
              }
            });
    return o;
  }

  // Keys documented in Istio's "Authorization Policy Conditions".
  void validateConditionKey(const Condition& c, const std::string& where) {
    const std::string& k = c.key.text;
    auto bracketed = [&](std::string_view prefix) {
      // "request.headers[User-Agent]": a non-empty name in brackets.
      return k.size() > prefix.size() + 2 && k[prefix.size()] == '[' && k.back() == ']';
    };
    auto check_ips = [&] {
      validateIps(c.values, where + ".values");
      validateIps(c.not_values, where + ".notValues");
    };
    if (k.starts_with("request.headers")) {
      if (!bracketed("request.headers")) {
        error(c.key.mark,
              "bad key \"" + k + "\" in " + where + ": should have the form request.headers[Name]");
      }
    } else if (k == "source.ip" || k == "remote.ip" || k == "destination.ip") {
      check_ips();
    } else if (k == "destination.port") {
      validatePorts(c.values, where + ".values");
      validatePorts(c.not_values, where + ".notValues");
    } else if (k == "source.namespace" || k == "source.principal" || k == "connection.sni") {
      // any non-empty string
    } else if (k == "source.serviceAccount") {
      validateServiceAccounts(c.values, where + ".values");
      validateServiceAccounts(c.not_values, where + ".notValues");
    } else if (k.starts_with("request.experimental.")) {
      error(c.key.mark, "condition key \"" + k + "\" in " + where + " is not supported");
    } else if (k.starts_with("request.auth.")) {
      error(c.key.mark, "condition key \"" + k + "\" in " + where +
                            " is not supported: it needs JWT authentication "
                            "(RequestAuthentication), which palisade does not support yet");
    } else if (k.starts_with("experimental.envoy.filters.")) {
      error(c.key.mark, "condition key \"" + k + "\" in " + where +
                            " is not supported: it reads Envoy filter metadata");
    } else if (k == "destination.namespace") {
      error(c.key.mark, "attribute destination.namespace is replaced by metadata.namespace");
    } else if (k.starts_with("destination.labels")) {
      error(c.key.mark, "attribute destination.labels is replaced by the workload selector");
    } else if (k == "destination.name" || k == "destination.user") {
      error(c.key.mark, "deprecated attribute " + k + ": only supported in v1alpha1");
    } else {
      error(c.key.mark, "unknown condition key \"" + k + "\" in " + where);
    }
  }

  Condition condition(const YAML::Node& item, const Mark& at, const std::string& where) {
    Condition c;
    c.mark = item.IsNull() ? at : mark(item);
    if (!expectMap(item, at, where)) {
      return c;
    }
    forEachField(item, where, {"key", "values", "notValues"},
                 [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
                   if (key == "key") {
                     if (auto s = scalar(v, key_at, where + ".key")) {
                       c.key = Value{*s, mark(v)};
                     }
                   } else if (key == "values") {
                     c.values = stringList(v, key_at, where + ".values");
                   } else {
                     c.not_values = stringList(v, key_at, where + ".notValues");
                   }
                 });
    if (c.key.text.empty()) {
      error(c.mark, where + ".key must not be empty");
      return c;
    }
    if (c.values.empty() && c.not_values.empty()) {
      error(c.mark, "at least one of values or notValues must be set for key " + c.key.text +
                        " in " + where);
      return c;
    }
    validateConditionKey(c, where);
    return c;
  }

  // --- PeerAuthentication -----------------------------------------------------------------

  std::optional<MtlsMode> mtls(const YAML::Node& v, const Mark& at, const std::string& where) {
    if (v.IsNull()) {
      return MtlsMode::kUnset;
    }
    if (!expectMap(v, at, where)) {
      return std::nullopt;
    }
    MtlsMode mode = MtlsMode::kUnset;
    forEachField(v, where, {"mode"},
                 [&](const std::string&, const YAML::Node& mv, const Mark& mat) {
                   auto s = scalar(mv, mat, where + ".mode");
                   if (!s) {
                     return;
                   }
                   if (*s == "UNSET") {
                     mode = MtlsMode::kUnset;
                   } else if (*s == "DISABLE") {
                     mode = MtlsMode::kDisable;
                   } else if (*s == "PERMISSIVE") {
                     mode = MtlsMode::kPermissive;
                   } else if (*s == "STRICT") {
                     mode = MtlsMode::kStrict;
                   } else {
                     error(mark(mv), "unknown mTLS mode \"" + *s + "\" in " + where +
                                         ".mode (expected UNSET, DISABLE, PERMISSIVE or "
                                         "STRICT)");
                   }
                 });
    return mode;
  }

  void peerAuthentication(const YAML::Node& doc, const std::string& api) {
    PeerAuthentication pa;
    pa.api_version = api;
    pa.mark = mark(doc);
    forEachField(
        doc, "PeerAuthentication", {"apiVersion", "kind", "metadata", "spec", "status"},
        [&](const std::string& key, const YAML::Node& v, const Mark& at) {
          if (key == "metadata") {
            pa.metadata = metadata(v, at, "PeerAuthentication");
            return;
          }
          if (key != "spec" || v.IsNull() || !expectMap(v, at, "spec")) {
            return;
          }
          forEachField(
              v, "PeerAuthentication.spec", {"selector", "mtls", "portLevelMtls"},
              [&](const std::string& sk, const YAML::Node& sv, const Mark& sat) {
                if (sk == "selector") {
                  pa.selector = selector(sv, sat);
                } else if (sk == "mtls") {
                  pa.mode = mtls(sv, sat, "spec.mtls").value_or(MtlsMode::kUnset);
                } else {
                  if (sv.IsNull() || (sv.IsMap() && sv.size() == 0)) {
                    error(sat, "port level mTLS, if defined, must have at least one element");
                    return;
                  }
                  if (!expectMap(sv, sat, "spec.portLevelMtls")) {
                    return;
                  }
                  for (auto it = sv.begin(); it != sv.end(); ++it) {
                    const YAML::Node port_node = it->first;
                    const YAML::Node mode_node = it->second;
                    const std::string port_text =
                        port_node.IsScalar() ? port_node.Scalar() : std::string();
                    unsigned long port = 0;
                    auto [end, ec] = std::from_chars(port_text.data(),
                                                     port_text.data() + port_text.size(), port);
                    if (port_text.empty() || ec != std::errc() ||
                        end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
                      error(mark(port_node), "port \"" + port_text +
                                                 "\" in spec.portLevelMtls must be in range "
                                                 "1..65535");
                      continue;
                    }
                    auto m =
                        mtls(mode_node, mark(port_node), "spec.portLevelMtls[" + port_text + "]");
                    if (m &&
                        !pa.port_level_mtls.emplace(static_cast<std::uint32_t>(port), *m).second) {
                      error(mark(port_node),
                            "duplicate port " + port_text + " in spec.portLevelMtls");
                    }
                  }
                }
              });
          if (v["portLevelMtls"] && (!pa.selector || pa.selector->match_labels.empty())) {
            error(mark(v["portLevelMtls"]),
                  "mesh/namespace peer authentication cannot have port level mTLS (add a "
                  "selector)");
          }
        });
    if (!doc["metadata"]) {
      pa.metadata = metadata(YAML::Node(), pa.mark, "PeerAuthentication");
    }
    out_.bundle.peer_authentications.push_back(std::move(pa));
  }
};

bool isYamlFile(const std::filesystem::path& p) {
  auto ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

void loadFile(const std::filesystem::path& path, LoadResult& out) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    out.diagnostics.push_back(
        Diagnostic{Diagnostic::Severity::kError, Mark{name, 0, 0}, "cannot read file"});
    return;
  }
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPolicyFileBytes) {
      out.diagnostics.push_back(
          Diagnostic{Diagnostic::Severity::kError, Mark{name, 0, 0},
                     "file is larger than " + std::to_string(kMaxPolicyFileBytes >> 20) + " MiB"});
      return;
    }
  }
  loadYaml(text, name, out);
}

}  // namespace

void loadYaml(std::string_view text, const std::string& filename, LoadResult& out) {
  if (text.size() > kMaxPolicyFileBytes) {
    out.diagnostics.push_back(
        Diagnostic{Diagnostic::Severity::kError, Mark{filename, 0, 0},
                   "file is larger than " + std::to_string(kMaxPolicyFileBytes >> 20) + " MiB"});
    return;
  }
  FileLoader(filename, out).load(text);
}

LoadResult loadPath(const std::string& file_or_dir) {
  LoadResult out;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path root(file_or_dir);
  if (fs::is_directory(root, ec)) {
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(
             root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec) && isYamlFile(it->path())) {
        files.push_back(it->path());
      }
    }
    if (ec) {
      out.diagnostics.push_back(Diagnostic{Diagnostic::Severity::kError, Mark{file_or_dir, 0, 0},
                                           "cannot list directory: " + ec.message()});
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      loadFile(f, out);
    }
    return out;
  }
  if (!fs::exists(root, ec)) {
    out.diagnostics.push_back(Diagnostic{Diagnostic::Severity::kError, Mark{file_or_dir, 0, 0},
                                         "no such file or directory"});
    return out;
  }
  loadFile(root, out);
  return out;
}

}  // namespace palisade::policy
