#include "policy/lint.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/loader.h"
#include "tests/mocks/policy/manifest_heads.h"

// Lint: warnings about valid policies that do not do what their authors usually mean. Each
// warning points at the value at fault with file:line:col. The TCP warnings follow Istio's
// builder (pilot/pkg/security/authz/model: on TCP an ALLOW rule with HTTP-only fields is
// dropped, a DENY or AUDIT rule loses those fields and so matches more).

namespace palisade::policy {
namespace {

using test_manifests::kApHead;


struct Row {
  std::string name;
  std::string yaml;
  std::vector<std::string> want;  // formatted warnings, in order
};

std::vector<std::string> lintYaml(const std::string& yaml) {
  LoadResult r;
  loadYaml(yaml, "test.yaml", r);
  EXPECT_TRUE(r.ok()) << r.errorText();
  std::vector<std::string> out;
  for (const Diagnostic& d : lint(r.bundle)) {
    EXPECT_EQ(d.severity, Diagnostic::Severity::kWarning);
    out.push_back(formatDiagnostic(d));
  }
  return out;
}

void checkRows(const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name + ":\n" + row.yaml);
    EXPECT_EQ(lintYaml(row.yaml), row.want);
  }
}

std::string schemeWarning(const std::string& at, const std::string& principal) {
  return "test.yaml:" + at + ": warning: principal \"" + principal +
         "\" starts with spiffe:// and never matches: policies name principals without the "
         "scheme, e.g. \"" +
         principal.substr(9) + "\"";
}

TEST(LintTest, PrincipalWithScheme) {
  const std::string src = kApHead + "spec:\n  rules:\n  - from:\n    - source:\n";  // line 10
  checkRows({
      {"principal",
       src + "        principals: [\"spiffe://cluster.local/ns/a/sa/b\"]\n",
       {schemeWarning("10:22", "spiffe://cluster.local/ns/a/sa/b")}},
      {"second principal",
       src + "        principals: [\"cluster.local/ns/a/sa/b\", \"spiffe://td/x\"]\n",
       {schemeWarning("10:49", "spiffe://td/x")}},
      {"not principal",
       src + "        notPrincipals: [\"spiffe://td/ns/a/sa/*\"]\n",
       {schemeWarning("10:25", "spiffe://td/ns/a/sa/*")}},
      {"source.principal condition",
       kApHead + "spec:\n  rules:\n  - when:\n    - key: source.principal\n"
                 "      values: [\"spiffe://td/ns/a/sa/b\"]\n"
                 "      notValues: [\"spiffe://td/ns/c/sa/d\"]\n",
       {schemeWarning("10:16", "spiffe://td/ns/a/sa/b"),
        schemeWarning("11:19", "spiffe://td/ns/c/sa/d")}},
      {"without scheme", src + "        principals: [\"cluster.local/ns/a/sa/b\", \"*\"]\n", {}},
      // Only principals are read this way: a namespace named like a URI is just odd.
      {"namespace", src + "        namespaces: [\"spiffe://x\"]\n", {}},
  });
}

std::string tcpWarning(const std::string& at, const std::string& action, int rule,
                       const std::string& field) {
  return "test.yaml:" + at + ": warning: " + action + " policy ns/p rule " + std::to_string(rule) +
         " uses HTTP-only field " + field +
         ", which plain TCP connections do not have; on TCP traffic it is ignored and the rule " +
         (action == "DENY" ? "denies" : "audits") +
         " every TCP connection that matches the rest of it; restrict it with ports";
}

TEST(LintTest, DenyAndAuditRulesWithHttpOnlyFields) {
  const std::string deny = kApHead + "spec:\n  action: DENY\n  rules:\n";  // rule on line 9
  const std::string audit = kApHead + "spec:\n  action: AUDIT\n  rules:\n";
  checkRows({
      {"deny methods without ports",
       deny + "  - to:\n    - operation:\n        methods: [\"POST\"]\n",
       {tcpWarning("11:9", "DENY", 0, "methods")}},
      {"deny methods with ports",
       deny + "  - to:\n    - operation:\n        methods: [\"POST\"]\n        ports: [\"8080\"]\n",
       {}},
      {"deny paths restricted by a destination.port condition",
       deny + "  - to:\n    - operation:\n        paths: [\"/admin*\"]\n    when:\n"
              "    - key: destination.port\n      values: [\"8080\"]\n",
       {}},
      {"deny with ports on only one operation",
       deny + "  - to:\n    - operation:\n        ports: [\"8080\"]\n    - operation:\n"
              "        paths: [\"/admin\"]\n",
       {tcpWarning("13:9", "DENY", 0, "paths")}},
      {"deny hosts",
       deny + "  - to:\n    - operation:\n        hosts: [\"example.com:*\"]\n",
       {tcpWarning("11:9", "DENY", 0, "hosts")}},
      {"deny header condition",
       deny + "  - from:\n    - source:\n        namespaces: [\"dev\"]\n    when:\n"
              "    - key: request.headers[x-user]\n      values: [\"bob\"]\n",
       {tcpWarning("13:12", "DENY", 0, "request.headers[x-user]")}},
      {"deny points at the first http-only field",
       deny + "  - to:\n    - operation:\n        paths: [\"/a\"]\n        methods: [\"GET\"]\n",
       {tcpWarning("12:9", "DENY", 0, "methods")}},
      {"deny second rule",
       deny + "  - from:\n    - source:\n        namespaces: [\"dev\"]\n"
              "  - to:\n    - operation:\n        methods: [\"DELETE\"]\n",
       {tcpWarning("14:9", "DENY", 1, "methods")}},
      {"deny without http-only fields",
       deny + "  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/8\"]\n"
              "    when:\n    - key: source.namespace\n      values: [\"dev\"]\n",
       {}},
      {"deny everything", deny + "  - {}\n", {}},
      {"audit paths without ports",
       audit + "  - to:\n    - operation:\n        paths: [\"/x\"]\n",
       {tcpWarning("11:9", "AUDIT", 0, "paths")}},
      {"audit paths with ports",
       audit + "  - to:\n    - operation:\n        paths: [\"/x\"]\n        ports: [\"80\"]\n",
       {}},
  });
}

TEST(LintTest, HostWithoutPort) {
  const std::string op = kApHead +
                         "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [\"a\"]\n"
                         "  - to:\n    - operation:\n";  // hosts on line 13
  const std::string host_warning =
      "warning: host \"example.com\" does not match a Host header that carries a port, such as "
      "\"example.com:8080\"; add \"example.com:*\" to match those too";
  checkRows({
      {"exact host",
       op + "        hosts: [\"example.com\"]\n",
       {"test.yaml:13:17: " + host_warning}},
      {"not host",
       op + "        notHosts: [\"example.com\"]\n",
       {"test.yaml:13:20: " + host_warning}},
      {"suffix host",
       op + "        hosts: [\"*.example.com\"]\n",
       {"test.yaml:13:17: warning: host \"*.example.com\" does not match a Host header that "
        "carries a port, such as \"*.example.com:8080\"; add \"*.example.com:*\" to match those "
        "too"}},
      {"host with port", op + "        hosts: [\"example.com:8080\", \"example.com:*\"]\n", {}},
      {"prefix host", op + "        hosts: [\"example.*\"]\n", {}},
      {"any host", op + "        hosts: [\"*\"]\n", {}},
  });
}

TEST(LintTest, AllowPolicyDroppedOnTcp) {
  const std::string allow = kApHead + "spec:\n  rules:\n";  // first rule on line 8
  const std::string dropped =
      "test.yaml:4:3: warning: ALLOW policy ns/p uses HTTP-only fields in every rule; on plain "
      "TCP traffic all its rules are dropped, so it allows no TCP connection to the workloads "
      "it selects";
  checkRows({
      {"every rule http-only",
       allow + "  - to:\n    - operation:\n        methods: [\"GET\"]\n"
               "  - when:\n    - key: request.headers[x]\n      values: [\"y\"]\n",
       {dropped}},
      {"ports do not save an allow rule",
       allow + "  - to:\n    - operation:\n        paths: [\"/\"]\n        ports: [\"80\"]\n",
       {dropped}},
      {"one rule works on tcp",
       allow + "  - to:\n    - operation:\n        methods: [\"GET\"]\n"
               "  - to:\n    - operation:\n        ports: [\"9000\"]\n",
       {}},
      {"allow nothing has no rules", kApHead + "spec: {}\n", {}},
      {"allow everything", allow + "  - {}\n", {}},
  });
}

TEST(LintTest, DuplicatePeerAuthenticationScope) {
  auto pa = [](const std::string& ns, const std::string& name, const std::string& spec) {
    return "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: " +
           name + "\n  namespace: " + ns + "\n" + spec;
  };
  const std::string strict = "spec:\n  mtls:\n    mode: STRICT\n";
  const std::string web =
      "spec:\n  selector:\n    matchLabels:\n      app: web\n  mtls:\n    mode: STRICT\n";
  const std::string api =
      "spec:\n  selector:\n    matchLabels:\n      app: api\n  mtls:\n    mode: STRICT\n";
  // Each document is 8 or 11 lines; the second starts after "---".
  checkRows({
      {"two namespace policies",
       pa("ns", "a", strict) + "---\n" + pa("ns", "b", strict),
       {"test.yaml:13:3: warning: PeerAuthentication ns/b has the same scope as a "
        "(test.yaml:4:3); only the oldest of them applies"}},
      {"two workload policies with the same labels",
       pa("ns", "a", web) + "---\n" + pa("ns", "b", web),
       {"test.yaml:16:3: warning: PeerAuthentication ns/b has the same scope as a "
        "(test.yaml:4:3); only the oldest of them applies"}},
      // An empty selector is a namespace-wide policy, as Istio reads it.
      {"empty selector and no selector",
       pa("ns", "a", strict) + "---\n" + pa("ns", "b", "spec:\n  selector: {}\n"),
       {"test.yaml:13:3: warning: PeerAuthentication ns/b has the same scope as a "
        "(test.yaml:4:3); only the oldest of them applies"}},
      {"different labels", pa("ns", "a", web) + "---\n" + pa("ns", "b", api), {}},
      {"different namespaces", pa("ns", "a", strict) + "---\n" + pa("other", "b", strict), {}},
      {"namespace and workload", pa("ns", "a", strict) + "---\n" + pa("ns", "b", web), {}},
  });
}

TEST(LintTest, CleanPolicyHasNoWarnings) {
  const std::string yaml = kApHead +
                           "spec:\n"
                           "  selector:\n"
                           "    matchLabels:\n"
                           "      app: web\n"
                           "  rules:\n"
                           "  - from:\n"
                           "    - source:\n"
                           "        principals: [\"cluster.local/ns/a/sa/b\"]\n"
                           "    to:\n"
                           "    - operation:\n"
                           "        ports: [\"8080\"]\n"
                           "  - from:\n"
                           "    - source:\n"
                           "        namespaces: [\"ops\"]\n"
                           "    to:\n"
                           "    - operation:\n"
                           "        hosts: [\"web:*\"]\n"
                           "        methods: [\"GET\"]\n";
  EXPECT_EQ(lintYaml(yaml), std::vector<std::string>{});
  EXPECT_TRUE(lint(PolicyBundle{}).empty());
}

}  // namespace
}  // namespace palisade::policy
