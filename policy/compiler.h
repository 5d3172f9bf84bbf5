#pragma once

// Compiler: the policy model into matchers, once per config version. Each rule is compiled
// twice, as Istio builds two filters: for HTTP requests, and for plain TCP connections,
// where HTTP-only fields (hosts, methods, paths, request.headers) cannot be evaluated.
// On TCP, Istio drops an ALLOW rule that uses them (allowing less) and drops only those
// fields from a DENY or AUDIT rule (matching more); we do the same.
// The result is immutable and shared by every thread that evaluates it.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/matchers.h"
#include "policy/model.h"

namespace palisade::policy {

// One field of a rule as compiled ("from[0].source.principals", "when[1] (source.ip)"),
// pointing into the rule's matcher tree. Used to explain decisions, never on the hot path.
struct RulePart {
  std::string name;
  const Matcher* matcher;
};

struct CompiledRule {
  Mark mark;  // where the rule stands in its file
  MatcherPtr http;
  MatcherPtr tcp;  // nullptr: the rule is dropped for TCP traffic
  // An ALLOW rule with HTTP-only fields: its other fields alone (the rule as a DENY rule
  // would be compiled for TCP). Used to tell whether a peer could send any allowed request.
  MatcherPtr peer_part;
  bool http_only_fields = false;
  std::vector<RulePart> http_parts;
  std::vector<RulePart> tcp_parts;

  // The fields of this rule that do not match `r` (empty when it matches, or when it is
  // dropped for TCP: check `tcp` first). Allocates; for explanations only.
  std::vector<std::string> mismatches(const RequestView& r) const;
};

struct CompiledPolicy {
  std::string ns;
  std::string name;
  Action action = Action::kAllow;
  bool dry_run = false;
  bool has_selector = false;
  std::map<std::string, std::string> match_labels;
  std::vector<CompiledRule> rules;
  Mark mark;

  // Index of the first rule that matches, or -1. Allocates nothing.
  int firstMatchingRule(const RequestView& r) const;
  bool selects(const std::map<std::string, std::string>& workload_labels) const;
};

struct CompileOptions {
  std::string root_namespace = "istio-system";
};

// True if the rule uses a field that only HTTP requests carry.
bool ruleUsesHttpOnlyFields(const Rule& rule);

// One config version's policies, indexed by namespace so that finding those that select a
// workload costs nothing for policies in other namespaces.
class PolicySet {
 public:
  // Precondition: `bundle` loaded without errors (the loader validated every value).
  static std::shared_ptr<const PolicySet> compile(const PolicyBundle& bundle,
                                                  const CompileOptions& options = {});

  const std::string& rootNamespace() const { return root_namespace_; }
  std::size_t size() const { return policies_.size(); }
  // Policies of `ns` (selecting or not), sorted by name; empty when none.
  const std::vector<const CompiledPolicy*>& inNamespace(std::string_view ns) const;

 private:
  std::string root_namespace_;
  std::vector<std::unique_ptr<CompiledPolicy>> policies_;
  std::unordered_map<std::string, std::vector<const CompiledPolicy*>, TransparentHash,
                     std::equal_to<>>
      by_namespace_;
};

}  // namespace palisade::policy
