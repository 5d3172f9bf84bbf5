#include "policy/lint.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "policy/compiler.h"

namespace palisade::policy {
namespace {

void warn(std::vector<Diagnostic>& out, const Mark& m, std::string message) {
  out.push_back(Diagnostic{Diagnostic::Severity::kWarning, m, std::move(message)});
}

void principalsWithScheme(const Values& values, std::vector<Diagnostic>& out) {
  for (const Value& v : values) {
    if (v.text.starts_with("spiffe://")) {
      warn(out, v.mark,
           "principal \"" + v.text +
               "\" starts with spiffe:// and never matches: policies "
               "name principals without the scheme, e.g. \"" +
               v.text.substr(9) + "\"");
    }
  }
}

void hostsWithoutPort(const Values& values, std::vector<Diagnostic>& out) {
  for (const Value& v : values) {
    const std::string& h = v.text;
    if (h == "*" || h.ends_with("*") || h.find(':') != std::string::npos) {
      continue;
    }
    const bool paired = std::any_of(values.begin(), values.end(),
                                    [&](const Value& other) { return other.text == h + ":*"; });
    if (paired) {
      continue;
    }
    warn(out, v.mark,
         "host \"" + h + "\" does not match a Host header that carries a port, such as \"" + h +
             ":8080\"; add \"" + h + ":*\" to match those too");
  }
}

// The first HTTP-only field of a rule, for pointing at it.
const Mark* firstHttpOnlyMark(const Rule& rule, std::string* name) {
  for (const Operation& o : rule.to) {
    if (!o.methods.empty()) {
      *name = "methods";
      return &o.methods.mark;
    }
    if (!o.paths.empty()) {
      *name = "paths";
      return &o.paths.mark;
    }
    if (!o.hosts.empty()) {
      *name = "hosts";
      return &o.hosts.mark;
    }
  }
  for (const Condition& c : rule.when) {
    if (c.key.text.starts_with("request.")) {
      *name = c.key.text;
      return &c.key.mark;
    }
  }
  return nullptr;
}

// True if every operation of the rule names ports, or a condition does: the rule then
// cannot widen to TCP traffic on other ports.
bool restrictsPorts(const Rule& rule) {
  for (const Condition& c : rule.when) {
    if (c.key.text == "destination.port") {
      return true;
    }
  }
  if (rule.to.empty()) {
    return false;
  }
  for (const Operation& o : rule.to) {
    if (o.ports.empty()) {
      return false;
    }
  }
  return true;
}

void authorizationPolicy(const AuthorizationPolicy& ap, std::vector<Diagnostic>& out) {
  const std::string id = ap.metadata.ns + "/" + ap.metadata.name;
  int dropped_on_tcp = 0;
  for (std::size_t i = 0; i < ap.rules.size(); ++i) {
    const Rule& rule = ap.rules[i];
    for (const Source& s : rule.from) {
      principalsWithScheme(s.principals.values, out);
      principalsWithScheme(s.principals.not_values, out);
    }
    for (const Condition& c : rule.when) {
      if (c.key.text == "source.principal") {
        principalsWithScheme(c.values, out);
        principalsWithScheme(c.not_values, out);
      }
    }
    for (const Operation& o : rule.to) {
      hostsWithoutPort(o.hosts.values, out);
      hostsWithoutPort(o.hosts.not_values, out);
    }
    if (!ruleUsesHttpOnlyFields(rule)) {
      continue;
    }
    std::string field;
    const Mark* at = firstHttpOnlyMark(rule, &field);
    const Mark& where = at ? *at : rule.mark;
    if ((ap.action == Action::kDeny || ap.action == Action::kAudit) && !restrictsPorts(rule)) {
      warn(out, where,
           std::string(actionName(ap.action)) + " policy " + id + " rule " + std::to_string(i) +
               " uses HTTP-only field " + field +
               ", which plain TCP connections do not have; on TCP traffic it is ignored and "
               "the rule " +
               (ap.action == Action::kDeny ? "denies" : "audits") +
               " every TCP connection that matches the rest of it; restrict it with ports");
    } else if (ap.action == Action::kAllow) {
      ++dropped_on_tcp;
    }
  }
  if (ap.action == Action::kAllow && !ap.rules.empty() &&
      dropped_on_tcp == static_cast<int>(ap.rules.size())) {
    warn(out, ap.metadata.mark.line ? ap.metadata.mark : ap.mark,
         "ALLOW policy " + id +
             " uses HTTP-only fields in every rule; on plain TCP traffic "
             "all its rules are dropped, so it allows no TCP connection to the workloads it "
             "selects");
  }
}

}  // namespace

std::vector<Diagnostic> lint(const PolicyBundle& bundle) {
  std::vector<Diagnostic> out;
  for (const AuthorizationPolicy& ap : bundle.authorization_policies) {
    authorizationPolicy(ap, out);
  }
  // Two PeerAuthentications at the same scope: Istio keeps the oldest and ignores the other.
  std::map<std::tuple<std::string, std::map<std::string, std::string>, bool>,
           const PeerAuthentication*>
      scopes;
  for (const PeerAuthentication& pa : bundle.peer_authentications) {
    const bool has_labels = pa.selector && !pa.selector->match_labels.empty();
    auto key = std::make_tuple(
        pa.metadata.ns,
        has_labels ? pa.selector->match_labels : std::map<std::string, std::string>{}, has_labels);
    auto [it, inserted] = scopes.emplace(key, &pa);
    if (!inserted) {
      warn(out, pa.metadata.mark,
           "PeerAuthentication " + pa.metadata.ns + "/" + pa.metadata.name +
               " has the same scope as " + it->second->metadata.name + " (" +
               formatMark(it->second->metadata.mark) + "); only the oldest of them applies");
    }
  }
  return out;
}

}  // namespace palisade::policy
