#pragma once

// Engine: evaluates the policies that select one workload. Built once per (config version,
// workload) from a PolicySet; evaluate() then allocates nothing and its cost does not depend
// on policies that do not select the workload. Istio's order:
//   CUSTOM (refused at load), then DENY, then ALLOW; AUDIT only records.
//   No ALLOW policy for the workload means allow; ALLOW policies present and none matching
//   means deny. Dry-run policies (istio.io/dry-run) never change the decision; the Decision
//   says what they would have decided.
// Thread: evaluate() may run on any thread at once; the object is immutable.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policy/compiler.h"
#include "policy/request_view.h"

namespace palisade::policy {

enum class Verdict : std::uint8_t { kAllow, kDeny };

const char* verdictName(Verdict v);

enum class DecisionReason : std::uint8_t {
  kNoAllowPolicies,  // allowed: nothing denied and no ALLOW policy selects the workload
  kAllowedByPolicy,  // allowed: an ALLOW policy matched
  kDeniedByPolicy,   // denied: a DENY policy matched
  kNoAllowMatched,   // denied: ALLOW policies exist and none matched
};

const char* decisionReasonName(DecisionReason r);

// A policy and rule that matched; policy == nullptr when none.
struct MatchRef {
  const CompiledPolicy* policy = nullptr;
  int rule = -1;
  explicit operator bool() const { return policy != nullptr; }
};

struct Decision {
  Verdict verdict = Verdict::kAllow;
  DecisionReason reason = DecisionReason::kNoAllowPolicies;
  MatchRef by;     // the deciding DENY or ALLOW policy, when one decided
  MatchRef audit;  // the first AUDIT policy that matched, if any

  // Set when dry-run policies select the workload: the decision they would give if they
  // were enforced alongside the enforced ones.
  bool has_dry_run = false;
  Verdict dry_run_verdict = Verdict::kAllow;
  DecisionReason dry_run_reason = DecisionReason::kNoAllowPolicies;
  MatchRef dry_run_by;
  bool dryRunChanges() const { return has_dry_run && dry_run_verdict != verdict; }
};

struct Workload {
  std::string ns;
  std::map<std::string, std::string> labels;
};

class WorkloadAuthz {
 public:
  // Selects the policies that apply to `workload`: those of its namespace whose selector
  // matches its labels (or that have none), and those of the root namespace likewise.
  WorkloadAuthz(std::shared_ptr<const PolicySet> set, const Workload& workload);

  Decision evaluate(const RequestView& request) const;

  // For an open HTTP connection after a policy change: true when no request of this peer
  // could be allowed, whatever its host, method, path or headers. `peer` carries only the
  // connection's fields (protocol kTcp). A DENY rule counts only when it has no HTTP-only
  // field; an ALLOW rule with HTTP-only fields might match some request, so it keeps the
  // connection open. Returns the deciding DENY policy and rule; for a default deny (no ALLOW
  // rule can match) the first ALLOW policy with rule -1; empty when some request might be
  // allowed. Allocates nothing.
  MatchRef deniesEveryRequest(const RequestView& peer) const;

  // The selected policies, by action, in evaluation order (namespace, then name).
  const std::vector<const CompiledPolicy*>& deny() const { return deny_; }
  const std::vector<const CompiledPolicy*>& allow() const { return allow_; }
  const std::vector<const CompiledPolicy*>& audit() const { return audit_; }
  const std::vector<const CompiledPolicy*>& dryRunDeny() const { return dry_deny_; }
  const std::vector<const CompiledPolicy*>& dryRunAllow() const { return dry_allow_; }

 private:
  std::shared_ptr<const PolicySet> set_;  // keeps the policies alive
  std::vector<const CompiledPolicy*> deny_, allow_, audit_, dry_deny_, dry_allow_;
};

}  // namespace palisade::policy
