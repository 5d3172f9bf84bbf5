#include "policy/engine.h"

#include <algorithm>

namespace palisade::policy {

const char* verdictName(Verdict v) { return v == Verdict::kAllow ? "ALLOW" : "DENY"; }

const char* decisionReasonName(DecisionReason r) {
  switch (r) {
    case DecisionReason::kNoAllowPolicies:
      return "no ALLOW policy selects the workload";
    case DecisionReason::kAllowedByPolicy:
      return "allowed by policy";
    case DecisionReason::kDeniedByPolicy:
      return "denied by policy";
    case DecisionReason::kNoAllowMatched:
      return "no ALLOW policy matched";
  }
  return "?";
}

WorkloadAuthz::WorkloadAuthz(std::shared_ptr<const PolicySet> set, const Workload& workload)
    : set_(std::move(set)) {
  auto take = [&](const std::vector<const CompiledPolicy*>& list) {
    for (const CompiledPolicy* p : list) {
      if (!p->selects(workload.labels)) {
        continue;
      }
      if (p->action == Action::kAudit) {
        // Istio puts dry-run policies of every action into the shadow rules, and Envoy only
        // marks a request for audit logging when the rules are enforced: a dry-run AUDIT
        // policy records nothing.
        if (!p->dry_run) {
          audit_.push_back(p);
        }
      } else if (p->dry_run) {
        (p->action == Action::kDeny ? dry_deny_ : dry_allow_).push_back(p);
      } else {
        (p->action == Action::kDeny ? deny_ : allow_).push_back(p);
      }
    }
  };
  // "If a policy is in the root namespace, it applies to all namespaces in a mesh",
  // narrowed by its selector like any other.
  if (workload.ns != set_->rootNamespace()) {
    take(set_->inNamespace(set_->rootNamespace()));
  }
  take(set_->inNamespace(workload.ns));
  auto order = [](const CompiledPolicy* a, const CompiledPolicy* b) {
    return a->ns != b->ns ? a->ns < b->ns : a->name < b->name;
  };
  for (auto* list : {&deny_, &allow_, &audit_, &dry_deny_, &dry_allow_}) {
    std::stable_sort(list->begin(), list->end(), order);
  }
}

namespace {

MatchRef firstMatch(const std::vector<const CompiledPolicy*>& policies, const RequestView& r) {
  for (const CompiledPolicy* p : policies) {
    int rule = p->firstMatchingRule(r);
    if (rule >= 0) {
      return MatchRef{p, rule};
    }
  }
  return {};
}

struct Outcome {
  Verdict verdict;
  DecisionReason reason;
  MatchRef by;
};

// The two-step rule over one set of DENY and one set of ALLOW policies.
Outcome decide(MatchRef deny, bool any_allow, MatchRef allow) {
  // DENY policies are evaluated before ALLOW.
  if (deny) {
    return {Verdict::kDeny, DecisionReason::kDeniedByPolicy, deny};
  }
  // If there are no ALLOW policies for the workload, allow the request.
  if (!any_allow) {
    return {Verdict::kAllow, DecisionReason::kNoAllowPolicies, {}};
  }
  // If any of the ALLOW policies match the request, allow the request.
  if (allow) {
    return {Verdict::kAllow, DecisionReason::kAllowedByPolicy, allow};
  }
  // Deny the request.
  return {Verdict::kDeny, DecisionReason::kNoAllowMatched, {}};
}

}  // namespace

Decision WorkloadAuthz::evaluate(const RequestView& r) const {
  Decision d;
  const MatchRef deny = firstMatch(deny_, r);
  // ALLOW policies are only consulted when nothing denied.
  const MatchRef allow = deny ? MatchRef{} : firstMatch(allow_, r);
  const Outcome enforced = decide(deny, !allow_.empty(), allow);
  d.verdict = enforced.verdict;
  d.reason = enforced.reason;
  d.by = enforced.by;
  d.audit = firstMatch(audit_, r);

  if (!dry_deny_.empty() || !dry_allow_.empty()) {
    // What the decision would be with the dry-run policies enforced too.
    MatchRef dry_deny = deny ? deny : firstMatch(dry_deny_, r);
    MatchRef dry_allow;
    if (!dry_deny) {
      dry_allow = allow ? allow : firstMatch(dry_allow_, r);
    }
    const Outcome shadow = decide(dry_deny, !allow_.empty() || !dry_allow_.empty(), dry_allow);
    d.has_dry_run = true;
    d.dry_run_verdict = shadow.verdict;
    d.dry_run_reason = shadow.reason;
    d.dry_run_by = shadow.by;
  }
  return d;
}

MatchRef WorkloadAuthz::deniesEveryRequest(const RequestView& peer) const {
  for (const CompiledPolicy* p : deny_) {
    for (std::size_t i = 0; i < p->rules.size(); ++i) {
      const CompiledRule& rule = p->rules[i];
      if (!rule.http_only_fields && rule.tcp->matches(peer)) {
        return MatchRef{p, static_cast<int>(i)};
      }
    }
  }
  if (allow_.empty()) {
    return {};
  }
  for (const CompiledPolicy* p : allow_) {
    for (const CompiledRule& rule : p->rules) {
      // The rule's fields that the connection alone decides; its HTTP fields might match.
      const Matcher* m = rule.tcp ? rule.tcp.get() : rule.peer_part.get();
      if (m->matches(peer)) {
        return {};
      }
    }
  }
  return MatchRef{allow_.front(), -1};
}

}  // namespace palisade::policy
