#include <charconv>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "cli/commands.h"
#include "policy/compiler.h"
#include "policy/engine.h"
#include "policy/explain.h"
#include "policy/lint.h"
#include "policy/loader.h"
#include "policy/peer_authn.h"

namespace palisade::cli {
namespace {

using policy::Decision;
using policy::describe;
using policy::explainAllow;
using policy::policyId;
using policy::RuleExplanation;
using policy::Verdict;

const char* kDefaultRootNamespace = "istio-system";

// Prints load errors as file:line:col: message; returns false if there were any.
bool reportLoadErrors(const policy::LoadResult& loaded, std::ostream& err) {
  if (loaded.ok()) {
    return true;
  }
  err << loaded.errorText();
  return false;
}

bool parseLabels(const std::string& text, std::map<std::string, std::string>& out,
                 std::ostream& err) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) {
      continue;
    }
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      err << "Error: --workload-labels: expected k=v[,k=v...], got \"" << item << "\"\n";
      return false;
    }
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return true;
}

nlohmann::json matchJson(const policy::MatchRef& m) {
  if (!m) {
    return nullptr;
  }
  const policy::CompiledPolicy& p = *m.policy;
  return {{"namespace", p.ns},
          {"name", p.name},
          {"action", policy::actionName(p.action)},
          {"rule", m.rule},
          {"dryRun", p.dry_run},
          {"location", policy::formatMark(p.rules[static_cast<std::size_t>(m.rule)].mark)}};
}

// Why each rule of the ALLOW policies failed: the answer to "why was this denied?" when no
// ALLOW policy matched.
int checkRun(const Args& args, Io& io) {
  if (!args.positional.empty()) {
    io.err << "Error: unexpected argument \"" << args.positional[0]
           << "\"\nRun 'palisadectl authz check --help' for usage.\n";
    return kExitUsage;
  }
  for (const char* required : {"policies", "workload-namespace"}) {
    if (!args.has(required)) {
      io.err << "Error: required flag --" << required << " is missing\n"
             << "Run 'palisadectl authz check --help' for usage.\n";
      return kExitUsage;
    }
  }
  const std::string output = args.get("output", "text");
  if (output != "text" && output != "json") {
    io.err << "Error: --output must be text or json\n";
    return kExitUsage;
  }
  policy::Workload workload;
  workload.ns = args.get("workload-namespace");
  if (!parseLabels(args.get("workload-labels"), workload.labels, io.err)) {
    return kExitUsage;
  }
  const std::string root_ns = args.get("root-namespace", kDefaultRootNamespace);

  // Everything the request is made of, parsed before any policy is read.
  policy::RequestView req;
  std::optional<policy::SpiffeId> peer;
  if (args.has("source")) {
    auto id = policy::SpiffeId::parse(args.get("source"));
    if (!id.ok()) {
      io.err << "Error: --source: " << id.error().message << "\n";
      return kExitUsage;
    }
    peer = std::move(*id);
    req.peer = &*peer;
  }
  struct IpFlag {
    const char* name;
    policy::IpAddress* slot;
  };
  for (IpFlag f : {IpFlag{"source-ip", &req.source_ip}, IpFlag{"remote-ip", &req.remote_ip},
                   IpFlag{"destination-ip", &req.destination_ip}}) {
    if (!args.has(f.name)) {
      continue;
    }
    auto ip = policy::IpAddress::parse(args.get(f.name));
    if (!ip.ok()) {
      io.err << "Error: --" << f.name << ": " << ip.error().message << "\n";
      return kExitUsage;
    }
    *f.slot = *ip;
  }
  if (args.has("port")) {
    const std::string p = args.get("port");
    unsigned value = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value > 65535) {
      io.err << "Error: --port: expected a port number 0-65535, got \"" << p << "\"\n";
      return kExitUsage;
    }
    req.destination_port = static_cast<std::uint16_t>(value);
  }
  const bool tcp = args.has("tcp");
  if (tcp) {
    for (const char* http_flag : {"host", "method", "path", "header"}) {
      if (args.has(http_flag)) {
        io.err << "Error: --" << http_flag << " describes an HTTP request and cannot be "
               << "used with --tcp\n";
        return kExitUsage;
      }
    }
  }
  const std::string sni = args.get("sni");
  const std::string host = args.get("host");
  const std::string method = args.get("method", "GET");
  const std::string path = args.get("path", "/");
  // Repeated headers are joined with "," as RFC 9110 allows and Envoy's matchers see them.
  std::vector<std::pair<std::string, std::string>> header_store;
  for (const std::string& h : args.all("header")) {
    auto colon = h.find(':');
    if (colon == std::string::npos || colon == 0) {
      io.err << "Error: --header: expected 'Name: value', got \"" << h << "\"\n";
      return kExitUsage;
    }
    std::string name = h.substr(0, colon);
    std::string value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t") + 1);
    auto same = std::find_if(header_store.begin(), header_store.end(), [&](const auto& e) {
      return policy::equalsIgnoreCase(e.first, name);
    });
    if (same != header_store.end()) {
      same->second += "," + value;
    } else {
      header_store.emplace_back(std::move(name), std::move(value));
    }
  }
  std::vector<policy::HeaderView> headers;
  for (const auto& [n, v] : header_store) {
    headers.push_back(policy::HeaderView{n, v});
  }
  req.protocol = tcp ? policy::Protocol::kTcp : policy::Protocol::kHttp;
  req.sni = sni;
  if (!tcp) {
    req.host = host;
    req.method = method;
    req.path = path;
    req.headers = headers;
  }

  policy::LoadResult loaded = policy::loadPath(args.get("policies"));
  if (!reportLoadErrors(loaded, io.err)) {
    return kExitUsage;
  }
  auto set = policy::PolicySet::compile(loaded.bundle, {root_ns});
  policy::WorkloadAuthz authz(set, workload);
  Decision d = authz.evaluate(req);

  // A plaintext peer never reaches authorization where mTLS is STRICT.
  policy::EffectiveMtls mtls =
      policy::effectiveMtls(loaded.bundle, workload.ns, workload.labels, root_ns);
  const policy::MtlsMode mode = mtls.forPort(req.destination_port);
  const bool refused_plaintext = !peer && mode == policy::MtlsMode::kStrict;
  const Verdict verdict = refused_plaintext ? Verdict::kDeny : d.verdict;

  if (output == "json") {
    nlohmann::json j;
    j["decision"] = policy::verdictName(verdict);
    j["reason"] = refused_plaintext ? "peer authentication STRICT refuses plaintext peers"
                                    : policy::decisionReasonName(d.reason);
    j["policy"] = refused_plaintext ? nlohmann::json(nullptr) : matchJson(d.by);
    // A refused plaintext peer never reaches authorization: nothing audited, no dry run.
    j["audit"] = refused_plaintext ? nlohmann::json(nullptr) : matchJson(d.audit);
    j["mtlsMode"] = policy::mtlsModeName(mode);
    if (!refused_plaintext && d.reason == policy::DecisionReason::kNoAllowMatched) {
      nlohmann::json rules = nlohmann::json::array();
      for (const RuleExplanation& e : explainAllow(authz, req)) {
        rules.push_back({{"namespace", e.policy->ns},
                         {"name", e.policy->name},
                         {"rule", e.rule},
                         {"location", policy::formatMark(e.policy->rules[e.rule].mark)},
                         {"droppedOnTcp", e.dropped_on_tcp},
                         {"mismatches", e.mismatches}});
      }
      j["allowRulesNotMatched"] = rules;
    }
    if (d.has_dry_run && !refused_plaintext) {
      j["dryRun"] = {{"decision", policy::verdictName(d.dry_run_verdict)},
                     {"reason", policy::decisionReasonName(d.dry_run_reason)},
                     {"policy", matchJson(d.dry_run_by)},
                     {"changesDecision", d.dryRunChanges()}};
    } else {
      j["dryRun"] = nullptr;
    }
    io.out << j.dump(2) << "\n";
    return verdict == Verdict::kAllow ? kExitOk : kExitNegative;
  }

  io.out << policy::verdictName(verdict) << "\n";
  if (refused_plaintext) {
    const policy::PeerAuthentication* from = mtls.workload ? mtls.workload
                                             : mtls.ns     ? mtls.ns
                                                           : mtls.mesh;
    io.out << "decided by: PeerAuthentication " << from->metadata.ns << "/" << from->metadata.name
           << " (mTLS STRICT, " << policy::formatMark(from->mark)
           << "): a plaintext peer (no --source) is refused before authorization\n";
    return kExitNegative;
  }
  switch (d.reason) {
    case policy::DecisionReason::kDeniedByPolicy:
    case policy::DecisionReason::kAllowedByPolicy:
      io.out << "decided by: " << describe(d.by) << "\n";
      break;
    case policy::DecisionReason::kNoAllowPolicies:
      io.out << "decided by: no ALLOW policy selects workload in namespace " << workload.ns
             << (authz.deny().empty()
                     ? " and no DENY policy either"
                     : "; no DENY policy matched (" + policy::policyNames(authz.deny()) + ")")
             << "\n";
      break;
    case policy::DecisionReason::kNoAllowMatched:
      io.out << "decided by: no ALLOW policy matched (" << policy::policyNames(authz.allow())
             << ")\n";
      for (const RuleExplanation& e : explainAllow(authz, req)) {
        io.out << "  " << policyId(*e.policy) << " rule " << e.rule << " ("
               << policy::formatMark(e.policy->rules[e.rule].mark) << "): ";
        if (e.dropped_on_tcp) {
          io.out << "dropped for TCP traffic (uses HTTP-only fields)\n";
          continue;
        }
        std::string list;
        for (const std::string& m : e.mismatches) {
          list += (list.empty() ? "" : ", ") + m;
        }
        io.out << (list.empty() ? std::string("matched no entry") : "not matched: " + list) << "\n";
      }
      break;
  }
  if (d.audit) {
    io.out << "audit: " << describe(d.audit) << "\n";
  }
  // Dry-run policies are worth a line when one of them decided the shadow outcome, or when
  // enforcing them would change the decision.
  if (d.dryRunChanges() || (d.dry_run_by && d.dry_run_by.policy->dry_run)) {
    io.out << "dry-run: would " << policy::verdictName(d.dry_run_verdict)
           << (d.dryRunChanges() ? " (differs from the enforced decision)" : " (same)");
    if (d.dry_run_by) {
      io.out << ", by " << describe(d.dry_run_by);
    } else {
      io.out << ", " << policy::decisionReasonName(d.dry_run_reason);
    }
    io.out << "\n";
  }
  return verdict == Verdict::kAllow ? kExitOk : kExitNegative;
}

int validateRun(const Args& args, Io& io) {
  if (args.positional.size() != 1) {
    io.err << "Error: expected one FILE_OR_DIR\nUsage: palisadectl authz validate "
              "FILE_OR_DIR\n";
    return kExitUsage;
  }
  const std::string& path = args.positional[0];
  policy::LoadResult loaded = policy::loadPath(path);
  std::vector<policy::Diagnostic> all = loaded.diagnostics;
  if (loaded.ok()) {
    auto warnings = policy::lint(loaded.bundle);
    all.insert(all.end(), warnings.begin(), warnings.end());
  }
  std::size_t errors = 0;
  std::size_t warnings = 0;
  for (const policy::Diagnostic& d : all) {
    io.err << policy::formatDiagnostic(d) << "\n";
    (d.severity == policy::Diagnostic::Severity::kError ? errors : warnings)++;
  }
  if (errors > 0) {
    // stderr holds only file:line:col diagnostics; the count goes to stdout.
    io.out << path << ": " << errors << " error(s), " << warnings << " warning(s)\n";
    return kExitUsage;
  }
  io.out << path << ": " << loaded.bundle.authorization_policies.size() << " AuthorizationPolicy, "
         << loaded.bundle.peer_authentications.size() << " PeerAuthentication";
  if (!loaded.bundle.service_entries.empty() || !loaded.bundle.workload_entries.empty()) {
    io.out << ", " << loaded.bundle.service_entries.size() << " ServiceEntry, "
           << loaded.bundle.workload_entries.size() << " WorkloadEntry";
  }
  io.out << ": valid";
  if (warnings > 0) {
    io.out << " (" << warnings << " warning(s))";
  }
  io.out << "\n";
  return kExitOk;
}

}  // namespace

Command authzCommand() {
  Command check;
  check.name = "check";
  check.summary = "Decide offline whether a connection or request would be allowed";
  check.usage = "palisadectl authz check --policies FILE_OR_DIR --workload-namespace NS [flags]";
  check.long_help =
      "Evaluate Istio AuthorizationPolicies (and PeerAuthentication) for one workload\n"
      "and one connection or HTTP request, exactly as the sidecar would, without a mesh.\n\n"
      "The first line of output is ALLOW or DENY; the next lines say which policy and rule\n"
      "decided, any AUDIT policy that matched, and what dry-run policies would decide.\n"
      "Exit status: 0 allow, 1 deny, 2 bad input (policy errors as file:line:col: message).\n\n"
      "Without --source the peer is plaintext (no principal, no namespace). Without --tcp\n"
      "the request is HTTP, with method GET and path / unless given.";
  check.examples =
      "  # May sleep GET /headers on httpbin?\n"
      "  palisadectl authz check --policies deploy/examples/ --workload-namespace foo \\\n"
      "    --workload-labels app=httpbin --source spiffe://cluster.local/ns/foo/sa/sleep \\\n"
      "    --method GET --path /headers --port 8000\n\n"
      "  # A plain TCP connection from a peer in another namespace\n"
      "  palisadectl authz check --policies policies.yaml --workload-namespace db --tcp \\\n"
      "    --source spiffe://cluster.local/ns/web/sa/api --port 5432 --output json\n";
  check.flags = {
      {"policies", "FILE_OR_DIR", "policy file or directory of YAML manifests (required)"},
      {"workload-namespace", "NS", "namespace of the workload receiving the traffic (required)"},
      {"workload-labels", "k=v,...", "labels of the workload, for policy selectors"},
      {"root-namespace", "NS",
       "root namespace whose policies apply mesh-wide (default istio-system)"},
      {"source", "SPIFFE_ID", "the peer's SPIFFE ID; omit for a plaintext peer"},
      {"source-ip", "IP", "the peer's address (ipBlocks, source.ip)"},
      {"remote-ip", "IP", "the original client's address (remoteIpBlocks); default --source-ip"},
      {"destination-ip", "IP", "the workload's address (destination.ip)"},
      {"port", "N", "destination port (ports, destination.port, port-level mTLS)"},
      {"host", "H", "HTTP Host / :authority"},
      {"method", "M", "HTTP method (default GET)"},
      {"path", "P", "HTTP path, query allowed (default /)"},
      {"header", "'Name: value'", "HTTP request header", true},
      {"sni", "S", "TLS server name (connection.sni)"},
      {"tcp", "", "a plain TCP connection instead of an HTTP request"},
      {"output", "FORMAT", "text (default) or json"},
  };
  check.run = checkRun;

  Command validate;
  validate.name = "validate";
  validate.summary = "Validate policy files and warn about common traps";
  validate.usage = "palisadectl authz validate FILE_OR_DIR";
  validate.long_help =
      "Load every AuthorizationPolicy, PeerAuthentication, ServiceEntry and WorkloadEntry in a\n"
      "file or directory (*.yaml, *.yml, multi-document) and report every error as\n"
      "file:line:col: message: unknown fields, unsupported features, bad CIDRs and ports,\n"
      "YAML syntax.\n\n"
      "Warnings (also file:line:col) point at valid policies that rarely do what was meant:\n"
      "a principal written with spiffe:// (never matches), a DENY rule whose HTTP-only\n"
      "fields make it deny all TCP traffic, a host without :* that will not match\n"
      "host:port, an ALLOW policy whose rules are all dropped on TCP.\n\n"
      "Exit status: 0 valid (warnings allowed), 2 errors.";
  validate.examples = "  palisadectl authz validate deploy/examples/\n";
  validate.run = validateRun;

  Command authz;
  authz.name = "authz";
  authz.summary = "Check and validate authorization policies offline";
  authz.long_help =
      "Work with Istio AuthorizationPolicy and PeerAuthentication manifests offline:\n"
      "validate them, and decide what the sidecar would do with a given request.";
  authz.children.push_back(std::move(check));
  authz.children.push_back(std::move(validate));
  return authz;
}

}  // namespace palisade::cli
