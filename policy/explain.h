#pragma once

// Explanations of authorization decisions in the words of the policies: which policy and
// rule decided, and for a default deny which ALLOW rules were candidates and which of their
// fields the request failed. Shared by `palisadectl authz check` and the sidecar's deny log
// lines and x-palisade-denied-reason header. Allocates; never on the allow path.
// Thread: any.

#include <string>
#include <vector>

#include "policy/engine.h"

namespace palisade::policy {

// "ns/name".
std::string policyId(const CompiledPolicy& p);
// "DENY policy ns/name, rule 0 (file:line:col)".
std::string describe(const MatchRef& m);
// "ns/a, ns/b".
std::string policyNames(const std::vector<const CompiledPolicy*>& list);

struct RuleExplanation {
  const CompiledPolicy* policy;
  int rule;
  bool dropped_on_tcp;                  // an ALLOW rule with HTTP-only fields, on TCP
  std::vector<std::string> mismatches;  // the rule's fields the request failed
};
// Every rule of the ALLOW policies selecting the workload, with why it did not match.
std::vector<RuleExplanation> explainAllow(const WorkloadAuthz& authz, const RequestView& req);

// One line for a log or a response header, for a DENY decision:
//   "denied by DENY policy foo/deny-admin, rule 0 (policies/a.yaml:9:7)"
//   "no ALLOW policy matched; candidates: foo/allow-get rule 0 (not matched: methods), ..."
std::string denialSummary(const Decision& d, const WorkloadAuthz& authz, const RequestView& req);

}  // namespace palisade::policy
