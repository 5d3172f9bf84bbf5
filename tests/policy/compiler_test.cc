#include "policy/compiler.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policy/loader.h"
#include "policy/spiffe_id.h"

// The compiler's structure: which rules survive for TCP, how policies are indexed and selected.
// Evaluation semantics are covered case by case in engine_test.cc.

namespace palisade::policy {
namespace {

LoadResult load(const std::string& yaml) {
  LoadResult loaded;
  loadYaml(yaml, "test.yaml", loaded);
  EXPECT_TRUE(loaded.ok()) << loaded.errorText();
  return loaded;
}

// One policy "p" in namespace foo whose spec is the YAML flow mapping `spec`.
std::string policyYaml(const std::string& spec, const std::string& name = "p",
                       const std::string& ns = "foo") {
  return "---\napiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n"
         "metadata: {name: " +
         name + ", namespace: " + ns + "}\nspec: " + spec + "\n";
}

TEST(CompilerTest, RuleUsesHttpOnlyFields) {
  struct Row {
    std::string name;
    std::string rule;  // one rule as a YAML flow mapping
    bool want;
  };
  const std::vector<Row> rows = {
      {"empty rule", "{}", false},
      {"principals", "{from: [{source: {principals: [a/ns/b/sa/c]}}]}", false},
      {"namespaces", "{from: [{source: {notNamespaces: [b]}}]}", false},
      {"serviceAccounts", "{from: [{source: {serviceAccounts: [c]}}]}", false},
      {"ipBlocks", "{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}", false},
      {"remoteIpBlocks", "{from: [{source: {notRemoteIpBlocks: [10.0.0.0/8]}}]}", false},
      {"ports", R"({to: [{operation: {ports: ["80"]}}]})", false},
      {"notPorts", R"({to: [{operation: {notPorts: ["80"]}}]})", false},
      {"hosts", "{to: [{operation: {hosts: [a]}}]}", true},
      {"notHosts", "{to: [{operation: {notHosts: [a]}}]}", true},
      {"methods", "{to: [{operation: {methods: [GET]}}]}", true},
      {"notMethods", "{to: [{operation: {notMethods: [GET]}}]}", true},
      {"paths", "{to: [{operation: {paths: [/a]}}]}", true},
      {"notPaths", "{to: [{operation: {notPaths: [/a]}}]}", true},
      {"HTTP field in a second to entry",
       R"({to: [{operation: {ports: ["80"]}}, {operation: {methods: [GET]}}]})", true},
      {"request.headers", R"({when: [{key: "request.headers[x]", values: [a]}]})", true},
      {"source.ip", "{when: [{key: source.ip, values: [10.0.0.1]}]}", false},
      {"remote.ip", "{when: [{key: remote.ip, values: [10.0.0.1]}]}", false},
      {"destination.ip", "{when: [{key: destination.ip, values: [10.0.0.1]}]}", false},
      {"destination.port", R"({when: [{key: destination.port, values: ["80"]}]})", false},
      {"source.namespace", "{when: [{key: source.namespace, values: [a]}]}", false},
      {"source.principal", "{when: [{key: source.principal, values: [a]}]}", false},
      {"connection.sni", "{when: [{key: connection.sni, values: [a]}]}", false},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    LoadResult loaded = load(policyYaml("{rules: [" + row.rule + "]}"));
    ASSERT_EQ(loaded.bundle.authorization_policies.size(), 1u);
    ASSERT_EQ(loaded.bundle.authorization_policies[0].rules.size(), 1u);
    EXPECT_EQ(ruleUsesHttpOnlyFields(loaded.bundle.authorization_policies[0].rules[0]), row.want);
  }
}

TEST(CompilerTest, TcpMatchersFollowTheAction) {
  // ALLOW: a rule with HTTP-only fields has no TCP matcher. DENY and AUDIT: it has one, with
  // the HTTP-only fields left out.
  struct Row {
    std::string name;
    std::string action;
    std::string rule;
    bool want_tcp;
  };
  const std::vector<Row> rows = {
      {"ALLOW, HTTP field", "ALLOW", "{to: [{operation: {methods: [GET]}}]}", false},
      {"ALLOW, header condition", "ALLOW", R"({when: [{key: "request.headers[x]", values: [a]}]})",
       false},
      {"ALLOW, TCP fields", "ALLOW", R"({to: [{operation: {ports: ["80"]}}]})", true},
      {"ALLOW, empty rule", "ALLOW", "{}", true},
      {"DENY, HTTP field", "DENY", "{to: [{operation: {methods: [GET]}}]}", true},
      {"AUDIT, HTTP field", "AUDIT", "{to: [{operation: {paths: [/a]}}]}", true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    LoadResult loaded = load(policyYaml("{action: " + row.action + ", rules: [" + row.rule + "]}"));
    auto set = PolicySet::compile(loaded.bundle);
    const auto& list = set->inNamespace("foo");
    ASSERT_EQ(list.size(), 1u);
    ASSERT_EQ(list[0]->rules.size(), 1u);
    EXPECT_NE(list[0]->rules[0].http, nullptr);
    EXPECT_EQ(list[0]->rules[0].tcp != nullptr, row.want_tcp);
  }
}

TEST(CompilerTest, FirstMatchingRulePerProtocol) {
  LoadResult loaded = load(policyYaml(
      R"({rules: [{to: [{operation: {methods: [GET]}}]}, {to: [{operation: {ports: ["80"]}}]}]})"));
  auto set = PolicySet::compile(loaded.bundle);
  ASSERT_EQ(set->inNamespace("foo").size(), 1u);
  const CompiledPolicy& p = *set->inNamespace("foo")[0];

  RequestView http;
  http.protocol = Protocol::kHttp;
  http.method = "GET";
  http.path = "/";
  http.destination_port = 80;
  EXPECT_EQ(p.firstMatchingRule(http), 0);
  http.method = "POST";
  EXPECT_EQ(p.firstMatchingRule(http), 1);
  http.destination_port = 81;
  EXPECT_EQ(p.firstMatchingRule(http), -1);

  RequestView tcp;
  tcp.protocol = Protocol::kTcp;
  tcp.destination_port = 80;
  EXPECT_EQ(p.firstMatchingRule(tcp), 1);  // rule 0 is dropped for TCP
  tcp.destination_port = 81;
  EXPECT_EQ(p.firstMatchingRule(tcp), -1);
}

TEST(CompilerTest, PolicySetIndexesByNamespaceAndName) {
  LoadResult loaded = load(policyYaml("{}", "zeta") + policyYaml("{}", "alpha") +
                           policyYaml("{action: DENY, rules: [{}]}", "mid", "bar") +
                           policyYaml("{}", "root", "mesh-root"));
  auto set = PolicySet::compile(loaded.bundle, {"mesh-root"});
  EXPECT_EQ(set->rootNamespace(), "mesh-root");
  EXPECT_EQ(set->size(), 4u);
  const auto& foo = set->inNamespace("foo");
  ASSERT_EQ(foo.size(), 2u);
  EXPECT_EQ(foo[0]->name, "alpha");
  EXPECT_EQ(foo[1]->name, "zeta");
  const auto& bar = set->inNamespace("bar");
  ASSERT_EQ(bar.size(), 1u);
  EXPECT_EQ(bar[0]->ns, "bar");
  EXPECT_EQ(bar[0]->action, Action::kDeny);
  EXPECT_TRUE(set->inNamespace("nowhere").empty());
  EXPECT_EQ(set->inNamespace("mesh-root").size(), 1u);
}

TEST(CompilerTest, DefaultRootNamespace) {
  auto set = PolicySet::compile(PolicyBundle{});
  EXPECT_EQ(set->rootNamespace(), "istio-system");
  EXPECT_EQ(set->size(), 0u);
}

TEST(CompilerTest, CompiledPolicyKeepsMetadata) {
  LoadResult loaded = load(
      "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
      "metadata: {name: p, namespace: foo, annotations: {\"istio.io/dry-run\": \"true\"}}\n"
      "spec: {selector: {matchLabels: {app: web}}, action: DENY, rules: [{}, {}]}\n");
  auto set = PolicySet::compile(loaded.bundle);
  ASSERT_EQ(set->inNamespace("foo").size(), 1u);
  const CompiledPolicy& p = *set->inNamespace("foo")[0];
  EXPECT_EQ(p.name, "p");
  EXPECT_EQ(p.ns, "foo");
  EXPECT_EQ(p.action, Action::kDeny);
  EXPECT_TRUE(p.dry_run);
  EXPECT_TRUE(p.has_selector);
  EXPECT_EQ(p.match_labels, (std::map<std::string, std::string>{{"app", "web"}}));
  EXPECT_EQ(p.rules.size(), 2u);
  EXPECT_EQ(p.mark.file, "test.yaml");
  EXPECT_EQ(p.rules[1].mark.file, "test.yaml");
}

TEST(CompilerTest, SelectsByLabelSubset) {
  // Istio: labels.Instance(selector.matchLabels).SubsetOf(workload labels); no selector
  // selects every workload of the namespace.
  struct Row {
    std::string name;
    std::string selector;  // "" for none
    std::map<std::string, std::string> labels;
    bool want;
  };
  const std::vector<Row> rows = {
      {"no selector, no labels", "", {}, true},
      {"no selector, labels", "", {{"app", "web"}}, true},
      {"empty matchLabels", "selector: {matchLabels: {}}, ", {{"app", "web"}}, true},
      {"same label", "selector: {matchLabels: {app: web}}, ", {{"app", "web"}}, true},
      {"subset", "selector: {matchLabels: {app: web}}, ", {{"app", "web"}, {"v", "1"}}, true},
      {"other value", "selector: {matchLabels: {app: web}}, ", {{"app", "api"}}, false},
      {"missing label", "selector: {matchLabels: {app: web, v: \"1\"}}, ", {{"app", "web"}}, false},
      {"no workload labels", "selector: {matchLabels: {app: web}}, ", {}, false},
      {"value is case-sensitive", "selector: {matchLabels: {app: web}}, ", {{"app", "Web"}}, false},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    LoadResult loaded = load(policyYaml("{" + row.selector + "rules: [{}]}"));
    auto set = PolicySet::compile(loaded.bundle);
    ASSERT_EQ(set->inNamespace("foo").size(), 1u);
    EXPECT_EQ(set->inNamespace("foo")[0]->selects(row.labels), row.want);
  }
}

}  // namespace
}  // namespace palisade::policy

namespace palisade::policy {
namespace {

// CompiledRule::mismatches names the fields of a rule that a request fails, as the policy
// names them; an entry of `from` or `to` that matches whole silences its siblings.
TEST(CompilerTest, MismatchesNameTheFailingFields) {
  struct Row {
    std::string name;
    std::string rule;
    Protocol protocol;
    std::vector<std::string> want;
  };
  const std::vector<Row> rows = {
      {"all match",
       "{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]}",
       Protocol::kHttp,
       {}},
      {"principal fails",
       "{from: [{source: {principals: [cluster.local/ns/foo/sa/other]}}]}",
       Protocol::kHttp,
       {"from[0].source.principals"}},
      {"negated field named as written",
       "{from: [{source: {notNamespaces: [foo]}}], to: [{operation: {notPaths: [/x]}}]}",
       Protocol::kHttp,
       {"from[0].source.notNamespaces", "to[0].operation.notPaths"}},
      {"several fields of one operation",
       "{to: [{operation: {methods: [POST], paths: [/post], ports: [\"8000\"]}}]}",
       Protocol::kHttp,
       {"to[0].operation.methods", "to[0].operation.paths"}},
      {"a matching sibling entry silences the others",
       "{to: [{operation: {methods: [POST]}}, {operation: {paths: [/x]}}], "
       "when: [{key: source.ip, values: [192.168.0.0/16]}]}",
       Protocol::kHttp,
       {"when[0] (source.ip)"}},
      {"every entry fails: each is named",
       "{from: [{source: {namespaces: [a]}}, {source: {namespaces: [b]}}]}",
       Protocol::kHttp,
       {"from[0].source.namespaces", "from[1].source.namespaces"}},
      {"condition notValues",
       "{when: [{key: \"request.headers[x-env]\", notValues: [prod]}]}",
       Protocol::kHttp,
       {"when[0] (request.headers[x-env], notValues)"}},
      {"TCP drops HTTP fields of a DENY rule",
       "{to: [{operation: {methods: [POST], ports: [\"9\"]}}]}",
       Protocol::kTcp,
       {"to[0].operation.ports"}},
  };
  static const SpiffeId peer = *SpiffeId::parse("spiffe://cluster.local/ns/foo/sa/sleep");
  const HeaderView headers[] = {{"x-env", "prod"}};
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    LoadResult loaded = load(policyYaml("{action: DENY, rules: [" + row.rule + "]}"));
    auto set = PolicySet::compile(loaded.bundle);
    ASSERT_EQ(set->inNamespace("foo").size(), 1u);
    const CompiledRule& rule = set->inNamespace("foo")[0]->rules[0];
    RequestView req;
    req.protocol = row.protocol;
    req.peer = &peer;
    req.source_ip = *IpAddress::parse("10.1.2.3");
    req.destination_port = 8000;
    if (row.protocol == Protocol::kHttp) {
      req.method = "GET";
      req.path = "/x";
      req.headers = headers;
    }
    EXPECT_EQ(rule.mismatches(req), row.want);
  }
}

}  // namespace
}  // namespace palisade::policy
