#include "policy/compiler.h"

#include <algorithm>
#include <charconv>

namespace palisade::policy {
namespace {

std::vector<std::string> texts(const Values& values) {
  std::vector<std::string> out;
  out.reserve(values.size());
  for (const Value& v : values) {
    out.push_back(v.text);
  }
  return out;
}

std::vector<CidrRange> ranges(const Values& values) {
  std::vector<CidrRange> out;
  for (const Value& v : values) {
    auto r = CidrRange::parse(v.text);
    if (r.ok()) {  // validated by the loader
      out.push_back(*r);
    }
  }
  return out;
}

std::vector<std::uint16_t> ports(const Values& values) {
  std::vector<std::uint16_t> out;
  for (const Value& v : values) {
    unsigned port = 0;
    std::from_chars(v.text.data(), v.text.data() + v.text.size(), port);
    out.push_back(static_cast<std::uint16_t>(port));
  }
  return out;
}

bool isHttpOnlyConditionKey(std::string_view key) { return key.starts_with("request."); }

// Builds one rule's matcher. `for_tcp` drops HTTP-only attributes; the caller has already
// dropped ALLOW rules that use them.
// Every field's leaf matcher is also recorded in `parts` under the name the policy gives it
// ("from[0].source.principals"), for explanations.
class RuleCompiler {
 public:
  RuleCompiler(std::string_view policy_ns, bool for_tcp, std::vector<RulePart>& parts)
      : policy_ns_(policy_ns), for_tcp_(for_tcp), parts_(parts) {}

  MatcherPtr compile(const Rule& rule) {
    std::vector<MatcherPtr> all;
    if (!rule.from.empty()) {
      std::vector<MatcherPtr> any;
      for (std::size_t i = 0; i < rule.from.size(); ++i) {
        prefix_ = "from[" + std::to_string(i) + "].source.";
        any.push_back(source(rule.from[i]));
      }
      all.push_back(orOf(std::move(any)));
    }
    if (!rule.to.empty()) {
      std::vector<MatcherPtr> any;
      for (std::size_t i = 0; i < rule.to.size(); ++i) {
        prefix_ = "to[" + std::to_string(i) + "].operation.";
        any.push_back(operation(rule.to[i]));
      }
      all.push_back(orOf(std::move(any)));
    }
    for (std::size_t i = 0; i < rule.when.size(); ++i) {
      prefix_ = "when[" + std::to_string(i) + "]";
      if (MatcherPtr m = condition(rule.when[i])) {
        all.push_back(std::move(m));
      }
    }
    return andOf(std::move(all));
  }

 private:
  static MatcherPtr andOf(std::vector<MatcherPtr> all) {
    if (all.empty()) {
      return std::make_unique<AnyMatcher>();
    }
    if (all.size() == 1) {
      return std::move(all[0]);
    }
    return std::make_unique<AndMatcher>(std::move(all));
  }
  static MatcherPtr orOf(std::vector<MatcherPtr> any) {
    if (any.size() == 1) {
      return std::move(any[0]);
    }
    return std::make_unique<OrMatcher>(std::move(any));
  }

  // values -> leaf; notValues -> Not(leaf); both -> leaf AND Not(leaf). `name` is the
  // field's name in the policy ("principals"); its negation is "notPrincipals".
  template <typename Make>
  void field(const Values& values, const Values& not_values, std::vector<MatcherPtr>& all,
             const std::string& name, const std::string& not_name, Make make) {
    if (!values.empty()) {
      all.push_back(make(values));
      parts_.push_back(RulePart{prefix_ + name, all.back().get()});
    }
    if (!not_values.empty()) {
      all.push_back(std::make_unique<NotMatcher>(make(not_values)));
      parts_.push_back(RulePart{prefix_ + not_name, all.back().get()});
    }
  }
  template <typename Make>
  void field(const Field& f, std::vector<MatcherPtr>& all, const std::string& name, Make make) {
    std::string not_name = "not" + name;
    not_name[3] = static_cast<char>(not_name[3] - 'a' + 'A');
    field(f.values, f.not_values, all, name, not_name, make);
  }

  MatcherPtr principals(const Values& v) { return std::make_unique<PrincipalMatcher>(texts(v)); }
  MatcherPtr namespaces(const Values& v) { return std::make_unique<NamespaceMatcher>(texts(v)); }
  MatcherPtr ips(IpMatcher::Which which, const Values& v) {
    return std::make_unique<IpMatcher>(which, ranges(v));
  }
  MatcherPtr attribute(AttributeMatcher::Attribute a, const Values& v, std::string header = {}) {
    return std::make_unique<AttributeMatcher>(a, texts(v), std::move(header));
  }

  MatcherPtr source(const Source& s) {
    std::vector<MatcherPtr> all;
    field(s.principals, all, "principals", [&](const Values& v) { return principals(v); });
    field(s.namespaces, all, "namespaces", [&](const Values& v) { return namespaces(v); });
    field(s.service_accounts, all, "serviceAccounts", [&](const Values& v) -> MatcherPtr {
      return std::make_unique<ServiceAccountMatcher>(texts(v), policy_ns_);
    });
    field(s.ip_blocks, all, "ipBlocks",
          [&](const Values& v) { return ips(IpMatcher::Which::kSource, v); });
    field(s.remote_ip_blocks, all, "remoteIpBlocks",
          [&](const Values& v) { return ips(IpMatcher::Which::kRemote, v); });
    return andOf(std::move(all));
  }

  MatcherPtr operation(const Operation& o) {
    using A = AttributeMatcher::Attribute;
    std::vector<MatcherPtr> all;
    if (!for_tcp_) {
      field(o.hosts, all, "hosts", [&](const Values& v) { return attribute(A::kHost, v); });
      field(o.methods, all, "methods", [&](const Values& v) { return attribute(A::kMethod, v); });
      field(o.paths, all, "paths", [&](const Values& v) { return attribute(A::kPath, v); });
    }
    field(o.ports, all, "ports",
          [&](const Values& v) -> MatcherPtr { return std::make_unique<PortMatcher>(ports(v)); });
    return andOf(std::move(all));
  }

  // nullptr when the condition is dropped (an HTTP-only key on TCP).
  MatcherPtr condition(const Condition& c) {
    using A = AttributeMatcher::Attribute;
    const std::string& k = c.key.text;
    if (for_tcp_ && isHttpOnlyConditionKey(k)) {
      return nullptr;
    }
    std::vector<MatcherPtr> all;
    auto add = [&](auto make) {
      field(c.values, c.not_values, all, " (" + k + ")", " (" + k + ", notValues)", make);
    };
    if (k == "source.ip") {
      add([&](const Values& v) { return ips(IpMatcher::Which::kSource, v); });
    } else if (k == "remote.ip") {
      add([&](const Values& v) { return ips(IpMatcher::Which::kRemote, v); });
    } else if (k == "destination.ip") {
      add([&](const Values& v) { return ips(IpMatcher::Which::kDestination, v); });
    } else if (k == "destination.port") {
      add([&](const Values& v) -> MatcherPtr { return std::make_unique<PortMatcher>(ports(v)); });
    } else if (k == "source.namespace") {
      add([&](const Values& v) { return namespaces(v); });
    } else if (k == "source.principal") {
      add([&](const Values& v) { return principals(v); });
    } else if (k == "source.serviceAccount") {
      add([&](const Values& v) -> MatcherPtr {
        return std::make_unique<ServiceAccountMatcher>(texts(v), policy_ns_);
      });
    } else if (k == "connection.sni") {
      add([&](const Values& v) { return attribute(A::kSni, v); });
    } else if (k.starts_with("request.headers[")) {
      std::string name = k.substr(16, k.size() - 17);
      add([&](const Values& v) { return attribute(A::kHeader, v, name); });
    }
    // Other keys were refused by the loader.
    return all.empty() ? nullptr : andOf(std::move(all));
  }

  std::string_view policy_ns_;
  bool for_tcp_;
  std::vector<RulePart>& parts_;
  std::string prefix_;
};

}  // namespace

bool ruleUsesHttpOnlyFields(const Rule& rule) {
  for (const Source& s : rule.from) {
    if (!s.request_principals.empty()) {
      return true;
    }
  }
  for (const Operation& o : rule.to) {
    if (!o.hosts.empty() || !o.methods.empty() || !o.paths.empty()) {
      return true;
    }
  }
  for (const Condition& c : rule.when) {
    if (isHttpOnlyConditionKey(c.key.text)) {
      return true;
    }
  }
  return false;
}

int CompiledPolicy::firstMatchingRule(const RequestView& r) const {
  const bool tcp = r.protocol == Protocol::kTcp;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Matcher* m = tcp ? rules[i].tcp.get() : rules[i].http.get();
    if (m != nullptr && m->matches(r)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::vector<std::string> CompiledRule::mismatches(const RequestView& r) const {
  const std::vector<RulePart>& parts = r.protocol == Protocol::kTcp ? tcp_parts : http_parts;
  // Entries of `from` (and of `to`) are ORed: when one entry matches whole, the failures of
  // its siblings explain nothing. An entry is named by the text up to "]".
  auto entry = [](const std::string& name) { return name.substr(0, name.find(']') + 1); };
  std::map<std::string, bool> entry_fails;  // "from[0]" -> some field failed
  std::vector<const RulePart*> failed;
  for (const RulePart& part : parts) {
    const bool fails = !part.matcher->matches(r);
    entry_fails[entry(part.name)] |= fails;
    if (fails) {
      failed.push_back(&part);
    }
  }
  auto section_matched = [&](std::string_view section) {
    for (const auto& [name, fails] : entry_fails) {
      if (name.starts_with(section) && !fails) {
        return true;
      }
    }
    return false;
  };
  const bool from_ok = section_matched("from[");
  const bool to_ok = section_matched("to[");
  std::vector<std::string> out;
  for (const RulePart* part : failed) {
    if ((from_ok && part->name.starts_with("from[")) || (to_ok && part->name.starts_with("to["))) {
      continue;
    }
    out.push_back(part->name);
  }
  return out;
}

bool CompiledPolicy::selects(const std::map<std::string, std::string>& labels) const {
  for (const auto& [k, v] : match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) {
      return false;
    }
  }
  return true;
}

std::shared_ptr<const PolicySet> PolicySet::compile(const PolicyBundle& bundle,
                                                    const CompileOptions& options) {
  auto set = std::make_shared<PolicySet>();
  set->root_namespace_ = options.root_namespace;
  for (const AuthorizationPolicy& ap : bundle.authorization_policies) {
    auto p = std::make_unique<CompiledPolicy>();
    p->ns = ap.metadata.ns;
    p->name = ap.metadata.name;
    p->action = ap.action;
    p->dry_run = ap.dry_run;
    p->has_selector = ap.selector.has_value();
    if (ap.selector) {
      p->match_labels = ap.selector->match_labels;
    }
    p->mark = ap.mark;
    for (const Rule& rule : ap.rules) {
      CompiledRule cr;
      cr.mark = rule.mark;
      cr.http = RuleCompiler(p->ns, /*for_tcp=*/false, cr.http_parts).compile(rule);
      // "Return the error as-is for allow policy. This will make all rules in the current
      // permission ignored, effectively result in a smaller allow policy" (Istio's authz
      // model); DENY and AUDIT ignore the HTTP-only attributes instead, matching more.
      cr.http_only_fields = ruleUsesHttpOnlyFields(rule);
      if (ap.action != Action::kAllow || !cr.http_only_fields) {
        cr.tcp = RuleCompiler(p->ns, /*for_tcp=*/true, cr.tcp_parts).compile(rule);
      } else {
        std::vector<RulePart> scratch;
        cr.peer_part = RuleCompiler(p->ns, /*for_tcp=*/true, scratch).compile(rule);
      }
      p->rules.push_back(std::move(cr));
    }
    set->by_namespace_[p->ns].push_back(p.get());
    set->policies_.push_back(std::move(p));
  }
  for (auto& [ns, list] : set->by_namespace_) {
    std::stable_sort(
        list.begin(), list.end(),
        [](const CompiledPolicy* a, const CompiledPolicy* b) { return a->name < b->name; });
  }
  return set;
}

const std::vector<const CompiledPolicy*>& PolicySet::inNamespace(std::string_view ns) const {
  static const std::vector<const CompiledPolicy*> kNone;
  auto it = by_namespace_.find(ns);
  return it == by_namespace_.end() ? kNone : it->second;
}

}  // namespace palisade::policy
