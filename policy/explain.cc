#include "policy/explain.h"

namespace palisade::policy {

std::string policyId(const CompiledPolicy& p) { return p.ns + "/" + p.name; }

std::string describe(const MatchRef& m) {
  const CompiledPolicy& p = *m.policy;
  std::string out = std::string(actionName(p.action)) + " policy " + policyId(p);
  if (m.rule < 0) {
    return out;
  }
  out += ", rule " + std::to_string(m.rule);
  const Mark& mark = p.rules[static_cast<std::size_t>(m.rule)].mark;
  if (mark.line > 0) {
    out += " (" + formatMark(mark) + ")";
  }
  return out;
}

std::string policyNames(const std::vector<const CompiledPolicy*>& list) {
  std::string out;
  for (const auto* p : list) {
    out += (out.empty() ? "" : ", ") + policyId(*p);
  }
  return out;
}

std::vector<RuleExplanation> explainAllow(const WorkloadAuthz& authz, const RequestView& req) {
  std::vector<RuleExplanation> out;
  for (const CompiledPolicy* p : authz.allow()) {
    for (std::size_t i = 0; i < p->rules.size(); ++i) {
      const CompiledRule& rule = p->rules[i];
      const bool dropped = req.protocol == Protocol::kTcp && rule.tcp == nullptr;
      out.push_back(RuleExplanation{p, static_cast<int>(i), dropped,
                                    dropped ? std::vector<std::string>{} : rule.mismatches(req)});
    }
  }
  return out;
}

std::string denialSummary(const Decision& d, const WorkloadAuthz& authz, const RequestView& req) {
  if (d.reason == DecisionReason::kDeniedByPolicy && d.by) {
    return "denied by " + describe(d.by);
  }
  std::string out = "no ALLOW policy matched; candidates: ";
  bool first = true;
  for (const RuleExplanation& e : explainAllow(authz, req)) {
    out += first ? "" : ", ";
    first = false;
    out += policyId(*e.policy) + " rule " + std::to_string(e.rule);
    if (e.dropped_on_tcp) {
      out += " (uses HTTP-only fields, dropped for TCP)";
      continue;
    }
    std::string list;
    for (const std::string& m : e.mismatches) {
      list += (list.empty() ? "" : ", ") + m;
    }
    out += list.empty() ? " (matched no entry)" : " (not matched: " + list + ")";
  }
  if (first) {
    out += "none";
  }
  return out;
}

}  // namespace palisade::policy
