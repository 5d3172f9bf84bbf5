#include "policy/loader.h"
#include "tests/mocks/policy/manifest_heads.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

// The YAML loader: Istio AuthorizationPolicy and PeerAuthentication manifests into the model,
// every problem reported as "file:line:col: message". Error rows follow Istio's own validation
// (pkg/config/validation: ValidateAuthorizationPolicy, ValidatePeerAuthentication;
// pkg/config/security: ValidateAttribute, ValidateIPs, ValidatePorts, CheckServiceAccount).

namespace palisade::policy {
namespace {

using test_manifests::kApHead;
using test_manifests::kPaHead;

LoadResult load(const std::string& yaml) {
  LoadResult r;
  loadYaml(yaml, "test.yaml", r);
  return r;
}

// Every error, one per line, without the final newline.
std::string errors(const LoadResult& r) {
  std::string text = r.errorText();
  if (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  return text;
}

std::string warnings(const LoadResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics) {
    if (d.severity == Diagnostic::Severity::kWarning) {
      out += out.empty() ? "" : "\n";
      out += formatDiagnostic(d);
    }
  }
  return out;
}

struct ErrorRow {
  std::string name;
  std::string yaml;
  std::string want_error;  // the whole errorText(), lines joined with "\n"
};

void checkErrors(const std::vector<ErrorRow>& rows) {
  for (const ErrorRow& r : rows) {
    SCOPED_TRACE(r.name + ":\n" + r.yaml);
    LoadResult got = load(r.yaml);
    EXPECT_FALSE(got.ok());
    EXPECT_EQ(errors(got), r.want_error);
  }
}

// --- Documents, kinds and versions -------------------------------------------------------

TEST(LoaderTest, DocumentErrors) {
  const std::string msg_kind =
      ": expected AuthorizationPolicy or PeerAuthentication (security.istio.io), ServiceEntry, "
      "WorkloadEntry, DestinationRule or VirtualService (networking.istio.io)";
  checkErrors({
      {"yaml syntax error in a flow sequence", "a: [1, 2\n",
       "test.yaml:2:1: yaml: end of sequence flow not found"},
      {"yaml syntax error in a mapping", "a: b: c\n", "test.yaml:1:5: yaml: illegal map value"},
      {"sequence document", "- a\n- b\n",
       "test.yaml:1:1: a manifest must be a mapping with apiVersion, kind, metadata and spec"},
      {"scalar document", "just text\n",
       "test.yaml:1:1: a manifest must be a mapping with apiVersion, kind, metadata and spec"},
      {"missing kind", "apiVersion: security.istio.io/v1\nmetadata:\n  name: p\n",
       "test.yaml:1:1: manifest has no kind"},
      {"kind not a string", "apiVersion: security.istio.io/v1\nkind: [a]\n",
       "test.yaml:1:1: manifest has no kind"},
      {"missing apiVersion", "kind: AuthorizationPolicy\nmetadata:\n  name: p\n",
       "test.yaml:1:1: manifest has no apiVersion"},
      {"unsupported kind", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
       "test.yaml:2:7: unsupported kind \"ConfigMap\" (v1)" + msg_kind},
      {"request authentication",
       "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: r\n",
       "test.yaml:2:7: unsupported kind \"RequestAuthentication\" (security.istio.io/v1)" +
           msg_kind},
      {"kind is case-sensitive",
       "apiVersion: security.istio.io/v1\nkind: authorizationpolicy\nmetadata:\n  name: r\n",
       "test.yaml:2:7: unsupported kind \"authorizationpolicy\" (security.istio.io/v1)" + msg_kind},
      {"unsupported apiVersion",
       "apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n"
       "  name: p\n",
       "test.yaml:1:13: unsupported apiVersion \"security.istio.io/v1alpha1\" for "
       "AuthorizationPolicy (use security.istio.io/v1 or security.istio.io/v1beta1)"},
      {"unsupported apiVersion for peer authentication",
       "apiVersion: authentication.istio.io/v1alpha1\nkind: PeerAuthentication\nmetadata:\n"
       "  name: p\n",
       "test.yaml:1:13: unsupported apiVersion \"authentication.istio.io/v1alpha1\" for "
       "PeerAuthentication (use security.istio.io/v1 or security.istio.io/v1beta1)"},
      {"list of another version", "apiVersion: v2\nkind: List\nitems: []\n",
       "test.yaml:2:7: unsupported kind \"List\" (v2)" + msg_kind},
      {"list items not a list", "apiVersion: v1\nkind: List\nitems: {}\n",
       "test.yaml:3:8: List.items must be a list"},
      {"list items null", "apiVersion: v1\nkind: List\nitems:\n",
       "test.yaml:3:1: List.items must be a list"},
      {"unknown field in list", "apiVersion: v1\nkind: List\nbogus: 1\nitems: []\n",
       "test.yaml:3:1: unknown field \"bogus\" in List"},
      {"list inside a list",
       "apiVersion: v1\n"
       "kind: List\n"
       "items:\n"
       "- apiVersion: v1\n"
       "  kind: List\n"
       "  items: []\n",
       "test.yaml:5:9: unsupported kind \"List\" (v1)" + msg_kind},
      {"error inside a list item",
       "apiVersion: v1\n"
       "kind: List\n"
       "items:\n"
       "- apiVersion: security.istio.io/v1\n"
       "  kind: AuthorizationPolicy\n"
       "  metadata:\n"
       "    name: p\n"
       "  spec:\n"
       "    bogus: 1\n",
       "test.yaml:9:5: unknown field \"bogus\" in AuthorizationPolicy.spec"},
      {"error in the second document",
       kApHead + "spec: {}\n---\n" + kApHead + "spec:\n  action: NOPE\n",
       "test.yaml:14:11: unknown action \"NOPE\" (expected ALLOW, DENY or AUDIT)"},
  });
}

TEST(LoaderTest, FileTooLarge) {
  LoadResult r = load(std::string(kMaxPolicyFileBytes + 1, '#'));
  EXPECT_EQ(errors(r), "test.yaml: file is larger than 8 MiB");
  EXPECT_TRUE(r.bundle.authorization_policies.empty());
}

// Aliases let a small file name millions of values; the budget counts every value walked.
TEST(LoaderTest, TooManyValuesIsRefused) {
  constexpr std::size_t kLabels = 10000;
  std::string labels;
  for (std::size_t i = 0; i < kLabels; ++i) {
    labels += (i ? ", k" : "k") + std::to_string(i) + ": v";
  }
  std::string yaml =
      "apiVersion: v1\n"
      "kind: List\n"
      "items:\n"
      "- &doc\n"
      "  apiVersion: security.istio.io/v1\n"
      "  kind: AuthorizationPolicy\n"
      "  metadata:\n"
      "    name: p\n"
      "    labels: {" +
      labels + "}\n";
  for (std::size_t i = 0; i < kMaxValuesPerFile / kLabels + 2; ++i) {
    yaml += "- *doc\n";
  }
  ASSERT_LT(yaml.size(), kMaxPolicyFileBytes);
  LoadResult r = load(yaml);
  EXPECT_EQ(errors(r), "test.yaml: more than " + std::to_string(kMaxValuesPerFile) +
                           " values in one file (aliases included); refusing it");
}

// --- metadata ----------------------------------------------------------------------------

TEST(LoaderTest, MetadataErrors) {
  const std::string tail = "spec: {}\n";
  const std::string head = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n";
  checkErrors({
      {"unknown field in metadata", head + "metadata:\n  name: p\n  bogus: x\n" + tail,
       "test.yaml:5:3: unknown field \"bogus\" in metadata"},
      {"duplicate name", head + "metadata:\n  name: p\n  name: q\n" + tail,
       "test.yaml:5:3: duplicate field \"name\" in metadata"},
      {"missing name", head + "metadata:\n  namespace: ns\n" + tail,
       "test.yaml:4:3: metadata.name is required"},
      {"empty name", head + "metadata:\n  name: \"\"\n" + tail,
       "test.yaml:4:3: metadata.name is required"},
      {"name not a string", head + "metadata:\n  name: [a]\n" + tail,
       "test.yaml:4:9: metadata.name must be a string\n"
       "test.yaml:4:3: metadata.name is required"},
      {"no metadata", head + tail, "test.yaml:1:1: AuthorizationPolicy has no metadata"},
      {"null metadata", head + "metadata:\n" + tail,
       "test.yaml:3:1: AuthorizationPolicy has no metadata"},
      {"metadata not a mapping", head + "metadata: [a]\n" + tail,
       "test.yaml:3:11: metadata must be a mapping"},
      {"namespace not a string", head + "metadata:\n  name: p\n  namespace: {}\n" + tail,
       "test.yaml:5:14: metadata.namespace must be a string"},
      {"annotations not a mapping", head + "metadata:\n  name: p\n  annotations: [a]\n" + tail,
       "test.yaml:5:16: metadata.annotations must be a mapping"},
      {"annotation value not a string",
       head + "metadata:\n  name: p\n  annotations:\n    a: [b]\n" + tail,
       "test.yaml:6:5: metadata.annotations must map strings to strings"},
      {"duplicate annotation",
       head + "metadata:\n  name: p\n  annotations:\n    a: x\n    a: y\n" + tail,
       "test.yaml:7:5: duplicate key \"a\" in metadata.annotations"},
      {"labels not strings", head + "metadata:\n  name: p\n  labels:\n    a: {b: c}\n" + tail,
       "test.yaml:6:5: metadata.labels must map strings to strings"},
      // Istio reads the annotation with Go's strconv.ParseBool.
      {"dry-run not a boolean",
       head + "metadata:\n  name: p\n  annotations:\n    istio.io/dry-run: maybe\n" + tail,
       "test.yaml:4:3: annotation istio.io/dry-run must be \"true\" or \"false\", got \"maybe\""},
      {"dry-run yes is not a Go boolean",
       head + "metadata:\n  name: p\n  annotations:\n    istio.io/dry-run: \"yes\"\n" + tail,
       "test.yaml:4:3: annotation istio.io/dry-run must be \"true\" or \"false\", got \"yes\""},
      {"dry-run empty",
       head + "metadata:\n  name: p\n  annotations:\n    istio.io/dry-run: \"\"\n" + tail,
       "test.yaml:4:3: annotation istio.io/dry-run must be \"true\" or \"false\", got \"\""},
  });
}

// --- AuthorizationPolicy spec ------------------------------------------------------------

TEST(LoaderTest, AuthorizationPolicySpecErrors) {
  const std::string a = kApHead;
  checkErrors({
      {"unknown top-level field", a + "spec: {}\nbogus: 1\n",
       "test.yaml:7:1: unknown field \"bogus\" in AuthorizationPolicy"},
      {"duplicate top-level field", a + "spec: {}\nspec: {}\n",
       "test.yaml:7:1: duplicate field \"spec\" in AuthorizationPolicy"},
      {"unknown spec field", a + "spec:\n  bogus: 1\n",
       "test.yaml:7:3: unknown field \"bogus\" in AuthorizationPolicy.spec"},
      {"duplicate spec field", a + "spec:\n  action: ALLOW\n  action: DENY\n",
       "test.yaml:8:3: duplicate field \"action\" in AuthorizationPolicy.spec"},
      {"non-scalar field name", a + "spec:\n  ? [a]\n  : 1\n",
       "test.yaml:7:5: expected a field name in AuthorizationPolicy.spec"},
      {"spec not a mapping", a + "spec: [a]\n", "test.yaml:6:7: spec must be a mapping"},
      {"action not a string", a + "spec:\n  action: [ALLOW]\n",
       "test.yaml:7:11: spec.action must be a string"},
      {"action null", a + "spec:\n  action:\n", "test.yaml:7:3: spec.action must be a string"},
      {"custom action",
       a + "spec:\n  action: CUSTOM\n  provider:\n    name: ext\n  rules:\n  - {}\n",
       "test.yaml:7:11: action CUSTOM is not supported (external authorization providers are "
       "not available in palisade)"},
      {"unknown action", a + "spec:\n  action: BLOCK\n",
       "test.yaml:7:11: unknown action \"BLOCK\" (expected ALLOW, DENY or AUDIT)"},
      {"lowercase action", a + "spec:\n  action: deny\n  rules:\n  - {}\n",
       "test.yaml:7:11: unknown action \"deny\" (expected ALLOW, DENY or AUDIT)"},
      {"provider with allow", a + "spec:\n  action: ALLOW\n  provider:\n    name: ext\n",
       "test.yaml:8:3: spec.provider is only valid with action CUSTOM, which palisade does not "
       "support"},
      {"provider without action", a + "spec:\n  provider:\n    name: ext\n",
       "test.yaml:7:3: spec.provider is only valid with action CUSTOM, which palisade does not "
       "support"},
      {"target ref", a + "spec:\n  targetRef:\n    kind: Gateway\n    name: gw\n",
       "test.yaml:7:3: spec.targetRef is not supported: palisade applies policies to workloads "
       "through spec.selector (waypoints and gateways by reference are not supported)"},
      {"target refs", a + "spec:\n  targetRefs:\n  - kind: Service\n    name: s\n",
       "test.yaml:7:3: spec.targetRefs is not supported: palisade applies policies to workloads "
       "through spec.selector (waypoints and gateways by reference are not supported)"},
      // "DENY action without `rules` is meaningless as it will never be triggered" (Istio).
      {"deny without rules", a + "spec:\n  action: DENY\n",
       "test.yaml:7:11: DENY action without rules is meaningless as it will never be triggered; "
       "add an empty rule {} to deny every request"},
      {"rules not a list", a + "spec:\n  rules: {}\n", "test.yaml:7:10: spec.rules must be a list"},
      {"null rule", a + "spec:\n  rules:\n  -\n", "test.yaml:7:3: spec.rules[0] must not be null"},
      {"rule not a mapping", a + "spec:\n  rules: [x]\n",
       "test.yaml:7:11: spec.rules[0] must be a mapping"},
      {"unknown rule field", a + "spec:\n  rules:\n  - bogus: 1\n",
       "test.yaml:8:5: unknown field \"bogus\" in spec.rules[0]"},
      {"unknown field in the second rule", a + "spec:\n  rules:\n  - {}\n  - bogus: 1\n",
       "test.yaml:9:5: unknown field \"bogus\" in spec.rules[1]"},
      {"selector unknown field",
       a + "spec:\n  selector:\n    matchLabels:\n      app: web\n    bogus: 1\n",
       "test.yaml:10:5: unknown field \"bogus\" in spec.selector"},
      {"selector not a mapping", a + "spec:\n  selector: [a]\n",
       "test.yaml:7:13: spec.selector must be a mapping"},
      {"match labels not a mapping", a + "spec:\n  selector:\n    matchLabels: [a]\n",
       "test.yaml:8:18: spec.selector.matchLabels must be a mapping"},
      {"selector wildcard value", a + "spec:\n  selector:\n    matchLabels:\n      app: \"web*\"\n",
       "test.yaml:8:5: wildcard is not supported in selector: \"app=web*\""},
      {"selector wildcard key", a + "spec:\n  selector:\n    matchLabels:\n      \"*\": web\n",
       "test.yaml:8:5: wildcard is not supported in selector: \"*=web\""},
      {"selector empty key", a + "spec:\n  selector:\n    matchLabels:\n      \"\": web\n",
       "test.yaml:8:5: empty key is not supported in selector: \"=web\""},
  });
}

// "DENY action without `rules`": Istio tests `in.Rules == nil`, so `rules:` with no value is
// still a DENY policy without rules (pkg/config/validation ValidateAuthorizationPolicy).
TEST(LoaderTest, DenyWithNullRulesIsRefused) {
  LoadResult r = load(kApHead + "spec:\n  action: DENY\n  rules:\n");
  EXPECT_EQ(errors(r),
            "test.yaml:7:11: DENY action without rules is meaningless as it will never be "
            "triggered; add an empty rule {} to deny every request");
}

// Rule heads used below: line 8 is the list item, line 9 the first field under it.
const std::string kRule = kApHead + "spec:\n  rules:\n";

TEST(LoaderTest, FromErrors) {
  const std::string src = kRule + "  - from:\n    - source:\n";  // fields on line 10
  checkErrors({
      {"from empty", kRule + "  - from: []\n",
       "test.yaml:8:11: spec.rules[0].from must not be empty"},
      {"from null", kRule + "  - from:\n", "test.yaml:8:5: spec.rules[0].from must not be empty"},
      {"from not a list", kRule + "  - from: x\n",
       "test.yaml:8:11: spec.rules[0].from must be a list"},
      {"from item null", kRule + "  - from:\n    -\n",
       "test.yaml:8:5: spec.rules[0].from[0] must be a mapping"},
      {"from item without source", kRule + "  - from:\n    - {}\n",
       "test.yaml:9:7: spec.rules[0].from[0].source must not be null"},
      {"unknown field in from item", src + "        principals: [\"a\"]\n      bogus: 1\n",
       "test.yaml:11:7: unknown field \"bogus\" in spec.rules[0].from[0]"},
      {"source null", kRule + "  - from:\n    - source:\n",
       "test.yaml:9:7: spec.rules[0].from[0].source must not be null"},
      {"source empty", kRule + "  - from:\n    - source: {}\n",
       "test.yaml:9:7: spec.rules[0].from[0].source must not be empty"},
      {"source not a mapping", kRule + "  - from:\n    - source: [a]\n",
       "test.yaml:9:15: spec.rules[0].from[0].source must be a mapping"},
      {"unknown source field", src + "        principals: [\"a\"]\n        bogus: 1\n",
       "test.yaml:11:9: unknown field \"bogus\" in spec.rules[0].from[0].source"},
      {"duplicate source field", src + "        principals: [\"a\"]\n        principals: [\"b\"]\n",
       "test.yaml:11:9: duplicate field \"principals\" in spec.rules[0].from[0].source"},
      {"empty principal", src + "        principals: [\"a\", \"\"]\n",
       "test.yaml:10:27: empty value not allowed in spec.rules[0].from[0].source.principals"},
      {"empty namespace", src + "        notNamespaces: [\"a\", \"\"]\n",
       "test.yaml:10:30: empty value not allowed in spec.rules[0].from[0].source.notNamespaces"},
      {"principals not a list", src + "        principals: a\n        namespaces: [\"ns\"]\n",
       "test.yaml:10:21: spec.rules[0].from[0].source.principals must be a list of strings"},
      {"null principal", src + "        principals: [\"a\", ~]\n",
       "test.yaml:10:9: spec.rules[0].from[0].source.principals must be a list of strings"},
      {"principal not a string", src + "        principals: [\"a\", [b]]\n",
       "test.yaml:10:27: spec.rules[0].from[0].source.principals must be a list of strings"},
      {"request principals", src + "        requestPrincipals: [\"iss/sub\"]\n",
       "test.yaml:10:9: spec.rules[0].from[0].source.requestPrincipals is not supported: request "
       "principals come from JWT authentication (RequestAuthentication), which palisade does "
       "not support yet"},
      {"not request principals", src + "        notRequestPrincipals: [\"*\"]\n",
       "test.yaml:10:9: spec.rules[0].from[0].source.notRequestPrincipals is not supported: "
       "request principals come from JWT authentication (RequestAuthentication), which "
       "palisade does not support yet"},
      {"bad ip block", src + "        ipBlocks: [\"10.0.0.0/33\"]\n",
       "test.yaml:10:20: ip: bad CIDR range \"10.0.0.0/33\" in "
       "spec.rules[0].from[0].source.ipBlocks"},
      {"bad not ip block", src + "        notIpBlocks: [\"1.2.3\"]\n",
       "test.yaml:10:23: ip: bad IP address \"1.2.3\" in spec.rules[0].from[0].source.notIpBlocks"},
      {"leading zero ip block", src + "        ipBlocks: [\"10.0.0.1\", \"010.0.0.1\"]\n",
       "test.yaml:10:32: ip: bad IP address \"010.0.0.1\" in "
       "spec.rules[0].from[0].source.ipBlocks"},
      {"bad remote ip block", src + "        remoteIpBlocks: [\"::1/129\"]\n",
       "test.yaml:10:26: ip: bad CIDR range \"::1/129\" in "
       "spec.rules[0].from[0].source.remoteIpBlocks"},
      {"bad not remote ip block", src + "        notRemoteIpBlocks: [\"fe80::1%eth0\"]\n",
       "test.yaml:10:29: ip: bad IP address \"fe80::1%eth0\" in "
       "spec.rules[0].from[0].source.notRemoteIpBlocks"},
      {"service accounts with principals",
       src + "        principals: [\"a\"]\n        serviceAccounts: [\"ns/sa\"]\n",
       "test.yaml:11:9: cannot set serviceAccounts with namespaces or principals in "
       "spec.rules[0].from[0].source"},
      {"not service accounts with namespaces",
       src + "        notServiceAccounts: [\"ns/sa\"]\n        namespaces: [\"ns\"]\n",
       "test.yaml:10:9: cannot set serviceAccounts with namespaces or principals in "
       "spec.rules[0].from[0].source"},
      {"service account with two slashes", src + "        serviceAccounts: [\"a/b/c\"]\n",
       "test.yaml:10:27: bad service account \"a/b/c\" in "
       "spec.rules[0].from[0].source.serviceAccounts (expected \"name\" or \"namespace/name\", "
       "no wildcards)"},
      {"service account wildcard", src + "        serviceAccounts: [\"ns/*\"]\n",
       "test.yaml:10:27: bad service account \"ns/*\" in "
       "spec.rules[0].from[0].source.serviceAccounts (expected \"name\" or \"namespace/name\", "
       "no wildcards)"},
      {"service account empty namespace", src + "        serviceAccounts: [\"/sa\"]\n",
       "test.yaml:10:27: bad service account \"/sa\" in "
       "spec.rules[0].from[0].source.serviceAccounts (expected \"name\" or \"namespace/name\", "
       "no wildcards)"},
      {"not service account empty name", src + "        notServiceAccounts: [\"ns/\"]\n",
       "test.yaml:10:30: bad service account \"ns/\" in "
       "spec.rules[0].from[0].source.notServiceAccounts (expected \"name\" or "
       "\"namespace/name\", no wildcards)"},
  });
}

TEST(LoaderTest, ToErrors) {
  const std::string op = kRule + "  - to:\n    - operation:\n";  // fields on line 10
  checkErrors({
      {"to empty", kRule + "  - to: []\n", "test.yaml:8:9: spec.rules[0].to must not be empty"},
      {"to null", kRule + "  - to:\n", "test.yaml:8:5: spec.rules[0].to must not be empty"},
      {"to item without operation", kRule + "  - to:\n    - {}\n",
       "test.yaml:9:7: spec.rules[0].to[0].operation must not be null"},
      {"unknown field in to item", op + "        methods: [\"GET\"]\n      bogus: 1\n",
       "test.yaml:11:7: unknown field \"bogus\" in spec.rules[0].to[0]"},
      {"operation null", kRule + "  - to:\n    - operation:\n",
       "test.yaml:9:7: spec.rules[0].to[0].operation must not be null"},
      {"operation empty", kRule + "  - to:\n    - operation: {}\n",
       "test.yaml:9:7: spec.rules[0].to[0].operation must not be empty"},
      {"operation not a mapping", kRule + "  - to:\n    - operation: x\n",
       "test.yaml:9:18: spec.rules[0].to[0].operation must be a mapping"},
      {"unknown operation field", op + "        methods: [\"GET\"]\n        bogus: 1\n",
       "test.yaml:11:9: unknown field \"bogus\" in spec.rules[0].to[0].operation"},
      {"empty method", op + "        methods: [\"GET\", \"\"]\n",
       "test.yaml:10:26: empty value not allowed in spec.rules[0].to[0].operation.methods"},
      {"port not a number", op + "        ports: [\"abc\"]\n",
       "test.yaml:10:17: bad port \"abc\" in spec.rules[0].to[0].operation.ports (expected "
       "0-65535)"},
      {"port too large", op + "        ports: [\"65536\"]\n",
       "test.yaml:10:17: bad port \"65536\" in spec.rules[0].to[0].operation.ports (expected "
       "0-65535)"},
      {"negative port", op + "        notPorts: [\"-1\"]\n",
       "test.yaml:10:20: bad port \"-1\" in spec.rules[0].to[0].operation.notPorts (expected "
       "0-65535)"},
      {"port with plus sign", op + "        ports: [\"+80\"]\n",
       "test.yaml:10:17: bad port \"+80\" in spec.rules[0].to[0].operation.ports (expected "
       "0-65535)"},
      {"port range", op + "        ports: [\"80-90\"]\n",
       "test.yaml:10:17: bad port \"80-90\" in spec.rules[0].to[0].operation.ports (expected "
       "0-65535)"},
      {"bad path template", op + "        paths: [\"/{name}/{*}\"]\n",
       "test.yaml:10:17: invalid or unsupported path template \"/{name}/{*}\": only {*} and {**} "
       "operators are supported in spec.rules[0].to[0].operation.paths"},
      {"bad not path template", op + "        notPaths: [\"/{**}/{*}\"]\n",
       "test.yaml:10:20: invalid path template \"/{**}/{*}\": {**} must be the last operator in "
       "spec.rules[0].to[0].operation.notPaths"},
  });
}

TEST(LoaderTest, WhenErrors) {
  const std::string cond = kRule + "  - when:\n    - key: ";  // the key is at 9:12
  const std::string unsupported_jwt =
      " is not supported: it needs JWT authentication (RequestAuthentication), which palisade "
      "does not support yet";
  checkErrors({
      {"when empty", kRule + "  - when: []\n",
       "test.yaml:8:11: spec.rules[0].when must not be empty"},
      {"when null", kRule + "  - when:\n", "test.yaml:8:5: spec.rules[0].when must not be empty"},
      {"unknown field in condition",
       cond + "source.namespace\n      values: [\"a\"]\n      bogus: 1\n",
       "test.yaml:11:7: unknown field \"bogus\" in spec.rules[0].when[0]"},
      {"condition without key", kRule + "  - when:\n    - values: [\"a\"]\n",
       "test.yaml:9:7: spec.rules[0].when[0].key must not be empty"},
      {"condition key not a string", cond + "[a]\n      values: [\"a\"]\n",
       "test.yaml:9:12: spec.rules[0].when[0].key must be a string\n"
       "test.yaml:9:7: spec.rules[0].when[0].key must not be empty"},
      {"condition without values", cond + "source.ip\n",
       "test.yaml:9:7: at least one of values or notValues must be set for key source.ip in "
       "spec.rules[0].when[0]"},
      {"empty condition value", cond + "source.namespace\n      values: [\"a\", \"\"]\n",
       "test.yaml:10:21: empty value not allowed in spec.rules[0].when[0].values"},
      {"request auth claims", cond + "request.auth.claims[iss]\n      values: [\"x\"]\n",
       "test.yaml:9:12: condition key \"request.auth.claims[iss]\" in spec.rules[0].when[0]" +
           unsupported_jwt},
      {"request auth principal", cond + "request.auth.principal\n      values: [\"x\"]\n",
       "test.yaml:9:12: condition key \"request.auth.principal\" in spec.rules[0].when[0]" +
           unsupported_jwt},
      {"request auth audiences", cond + "request.auth.audiences\n      notValues: [\"x\"]\n",
       "test.yaml:9:12: condition key \"request.auth.audiences\" in spec.rules[0].when[0]" +
           unsupported_jwt},
      {"envoy filter metadata",
       cond + "experimental.envoy.filters.network.mysql_proxy[db.table]\n      values: [\"x\"]\n",
       "test.yaml:9:12: condition key "
       "\"experimental.envoy.filters.network.mysql_proxy[db.table]\" in spec.rules[0].when[0] "
       "is not supported: it reads Envoy filter metadata"},
      {"destination namespace", cond + "destination.namespace\n      values: [\"x\"]\n",
       "test.yaml:9:12: attribute destination.namespace is replaced by metadata.namespace"},
      {"destination labels", cond + "destination.labels[app]\n      values: [\"x\"]\n",
       "test.yaml:9:12: attribute destination.labels is replaced by the workload selector"},
      {"destination name", cond + "destination.name\n      values: [\"x\"]\n",
       "test.yaml:9:12: deprecated attribute destination.name: only supported in v1alpha1"},
      {"destination user", cond + "destination.user\n      values: [\"x\"]\n",
       "test.yaml:9:12: deprecated attribute destination.user: only supported in v1alpha1"},
      {"experimental request key",
       cond + "request.experimental.inline.headers[x]\n      values: [\"x\"]\n",
       "test.yaml:9:12: condition key \"request.experimental.inline.headers[x]\" in "
       "spec.rules[0].when[0] is not supported"},
      {"bad source.serviceAccount", cond + "source.serviceAccount\n      values: [\"a/b/c\"]\n",
       "test.yaml:10:16: bad service account \"a/b/c\" in spec.rules[0].when[0].values "
       "(expected \"name\" or \"namespace/name\", no wildcards)"},
      {"unknown key", cond + "source.foo\n      values: [\"x\"]\n",
       "test.yaml:9:12: unknown condition key \"source.foo\" in spec.rules[0].when[0]"},
      {"keys are case-sensitive", cond + "Source.IP\n      values: [\"10.0.0.1\"]\n",
       "test.yaml:9:12: unknown condition key \"Source.IP\" in spec.rules[0].when[0]"},
      {"header key without a name", cond + "request.headers[]\n      values: [\"x\"]\n",
       "test.yaml:9:12: bad key \"request.headers[]\" in spec.rules[0].when[0]: should have the "
       "form request.headers[Name]"},
      {"header key without brackets", cond + "request.headers\n      values: [\"x\"]\n",
       "test.yaml:9:12: bad key \"request.headers\" in spec.rules[0].when[0]: should have the "
       "form request.headers[Name]"},
      {"header key unclosed", cond + "request.headers[x\n      values: [\"x\"]\n",
       "test.yaml:9:12: bad key \"request.headers[x\" in spec.rules[0].when[0]: should have the "
       "form request.headers[Name]"},
      {"bad source ip", cond + "source.ip\n      values: [\"300.1.1.1\"]\n",
       "test.yaml:10:16: ip: bad IP address \"300.1.1.1\" in spec.rules[0].when[0].values"},
      {"bad remote ip", cond + "remote.ip\n      values: [\"10.0.0.0/8\", \"x\"]\n",
       "test.yaml:10:30: ip: bad IP address \"x\" in spec.rules[0].when[0].values"},
      {"bad destination ip", cond + "destination.ip\n      notValues: [\"10.0.0.0/40\"]\n",
       "test.yaml:10:19: ip: bad CIDR range \"10.0.0.0/40\" in spec.rules[0].when[0].notValues"},
      {"bad destination port", cond + "destination.port\n      values: [\"65536\"]\n",
       "test.yaml:10:16: bad port \"65536\" in spec.rules[0].when[0].values (expected 0-65535)"},
      {"bad destination port in not values",
       cond + "destination.port\n      notValues: [\"http\"]\n",
       "test.yaml:10:19: bad port \"http\" in spec.rules[0].when[0].notValues (expected 0-65535)"},
      {"error in the second condition",
       cond + "source.namespace\n      values: [\"a\"]\n"
              "    - key: source.ip\n      values: [\"a\"]\n",
       "test.yaml:12:16: ip: bad IP address \"a\" in spec.rules[0].when[1].values"},
  });
}

// Istio's CheckServiceAccount (pkg/config/security/security.go) also bounds serviceAccounts:
// "may not have more than 16 values" and "value cannot exceed 320 characters".
TEST(LoaderTest, ServiceAccountBoundsAsIstio) {
  std::string many = kRule + "  - from:\n    - source:\n        serviceAccounts: [";
  for (int i = 0; i < 17; ++i) {
    many += (i ? ", " : "") + std::string("\"ns/sa") + std::to_string(i) + "\"";
  }
  many += "]\n";
  EXPECT_FALSE(load(many).ok()) << "17 serviceAccounts accepted";

  const std::string long_value = kRule +
                                 "  - from:\n    - source:\n        serviceAccounts: [\"ns/" +
                                 std::string(318, 'a') + "\"]\n";
  EXPECT_FALSE(load(long_value).ok()) << "a 321-character service account accepted";
}

// --- PeerAuthentication ------------------------------------------------------------------

TEST(LoaderTest, PeerAuthenticationErrors) {
  const std::string p = kPaHead;
  const std::string sel = p + "spec:\n  selector:\n    matchLabels:\n      app: web\n";
  const std::string modes = " (expected UNSET, DISABLE, PERMISSIVE or STRICT)";
  checkErrors({
      {"unknown top-level field", p + "spec: {}\nbogus: 1\n",
       "test.yaml:7:1: unknown field \"bogus\" in PeerAuthentication"},
      {"unknown spec field", p + "spec:\n  mtls:\n    mode: STRICT\n  bogus: 1\n",
       "test.yaml:9:3: unknown field \"bogus\" in PeerAuthentication.spec"},
      {"unknown mtls field", p + "spec:\n  mtls:\n    mode: STRICT\n    bogus: 1\n",
       "test.yaml:9:5: unknown field \"bogus\" in spec.mtls"},
      {"no metadata", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nspec: {}\n",
       "test.yaml:1:1: PeerAuthentication has no metadata"},
      {"missing name",
       "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
       "metadata:\n  namespace: ns\n",
       "test.yaml:4:3: metadata.name is required"},
      {"spec not a mapping", p + "spec: STRICT\n", "test.yaml:6:7: spec must be a mapping"},
      {"bad mtls mode", p + "spec:\n  mtls:\n    mode: STRICTER\n",
       "test.yaml:8:11: unknown mTLS mode \"STRICTER\" in spec.mtls.mode" + modes},
      {"lowercase mtls mode", p + "spec:\n  mtls:\n    mode: strict\n",
       "test.yaml:8:11: unknown mTLS mode \"strict\" in spec.mtls.mode" + modes},
      {"mtls not a mapping", p + "spec:\n  mtls: STRICT\n",
       "test.yaml:7:9: spec.mtls must be a mapping"},
      {"port level mtls without selector",
       p + "spec:\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n",
       "test.yaml:8:5: mesh/namespace peer authentication cannot have port level mTLS (add a "
       "selector)"},
      {"port level mtls with an empty selector",
       p + "spec:\n  selector: {}\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n",
       "test.yaml:9:5: mesh/namespace peer authentication cannot have port level mTLS (add a "
       "selector)"},
      {"port 0", sel + "  portLevelMtls:\n    0:\n      mode: DISABLE\n",
       "test.yaml:11:5: port \"0\" in spec.portLevelMtls must be in range 1..65535"},
      {"port 65536", sel + "  portLevelMtls:\n    65536:\n      mode: DISABLE\n",
       "test.yaml:11:5: port \"65536\" in spec.portLevelMtls must be in range 1..65535"},
      {"port -1", sel + "  portLevelMtls:\n    -1:\n      mode: DISABLE\n",
       "test.yaml:11:5: port \"-1\" in spec.portLevelMtls must be in range 1..65535"},
      {"port name", sel + "  portLevelMtls:\n    http:\n      mode: DISABLE\n",
       "test.yaml:11:5: port \"http\" in spec.portLevelMtls must be in range 1..65535"},
      {"port level mtls empty", sel + "  portLevelMtls: {}\n",
       "test.yaml:10:3: port level mTLS, if defined, must have at least one element"},
      {"port level mtls null", sel + "  portLevelMtls:\n",
       "test.yaml:10:3: port level mTLS, if defined, must have at least one element"},
      {"port level mtls not a mapping", sel + "  portLevelMtls: [8080]\n",
       "test.yaml:10:18: spec.portLevelMtls must be a mapping"},
      {"duplicate port",
       sel + "  portLevelMtls:\n    8080:\n      mode: DISABLE\n    8080:\n"
             "      mode: STRICT\n",
       "test.yaml:13:5: duplicate port 8080 in spec.portLevelMtls"},
      {"bad port mode", sel + "  portLevelMtls:\n    8080:\n      mode: OFF\n",
       "test.yaml:12:13: unknown mTLS mode \"OFF\" in spec.portLevelMtls[8080].mode" + modes},
      {"selector wildcard", p + "spec:\n  selector:\n    matchLabels:\n      app: \"*\"\n",
       "test.yaml:8:5: wildcard is not supported in selector: \"app=*\""},
      {"selector unknown field", p + "spec:\n  selector:\n    labels:\n      app: web\n",
       "test.yaml:8:5: unknown field \"labels\" in spec.selector"},
  });
}

// --- Many errors at once -----------------------------------------------------------------

TEST(LoaderTest, ReportsEveryErrorInAFile) {
  const std::string yaml = kApHead +
                           "spec:\n"                               // 6
                           "  action: NOPE\n"                      // 7
                           "  rules:\n"                            // 8
                           "  - from:\n"                           // 9
                           "    - source:\n"                       // 10
                           "        ipBlocks: [\"1.2.3.4/99\"]\n"  // 11
                           "        bogus: 1\n"                    // 12
                           "    to:\n"                             // 13
                           "    - operation:\n"                    // 14
                           "        ports: [\"http\"]\n"           // 15
                           "---\n"                                 // 16
                           "apiVersion: security.istio.io/v1\n"    // 17
                           "kind: Gateway\n"                       // 18
                           "---\n"                                 // 19
                           + kPaHead +                             // 20-24
                           "spec:\n"                               // 25
                           "  mtls:\n"                             // 26
                           "    mode: MAYBE\n";                    // 27
  LoadResult r = load(yaml);
  EXPECT_EQ(errors(r),
            "test.yaml:7:11: unknown action \"NOPE\" (expected ALLOW, DENY or AUDIT)\n"
            "test.yaml:11:20: ip: bad CIDR range \"1.2.3.4/99\" in "
            "spec.rules[0].from[0].source.ipBlocks\n"
            "test.yaml:12:9: unknown field \"bogus\" in spec.rules[0].from[0].source\n"
            "test.yaml:15:17: bad port \"http\" in spec.rules[0].to[0].operation.ports "
            "(expected 0-65535)\n"
            "test.yaml:18:7: unsupported kind \"Gateway\" (security.istio.io/v1): expected "
            "AuthorizationPolicy or PeerAuthentication (security.istio.io), ServiceEntry, "
            "WorkloadEntry, DestinationRule or VirtualService (networking.istio.io)\n"
            "test.yaml:27:11: unknown mTLS mode \"MAYBE\" in spec.mtls.mode (expected UNSET, "
            "DISABLE, PERMISSIVE or STRICT)");
}

// --- Successful loads --------------------------------------------------------------------

TEST(LoaderTest, LoadsAFullAuthorizationPolicy) {
  const std::string yaml =
      "apiVersion: security.istio.io/v1\n"                             // 1
      "kind: AuthorizationPolicy\n"                                    // 2
      "metadata:\n"                                                    // 3
      "  name: httpbin\n"                                              // 4
      "  namespace: foo\n"                                             // 5
      "spec:\n"                                                        // 6
      "  selector:\n"                                                  // 7
      "    matchLabels:\n"                                             // 8
      "      app: httpbin\n"                                           // 9
      "      version: v1\n"                                            // 10
      "  action: DENY\n"                                               // 11
      "  rules:\n"                                                     // 12
      "  - from:\n"                                                    // 13
      "    - source:\n"                                                // 14
      "        principals: [\"cluster.local/ns/default/sa/sleep\"]\n"  // 15
      "        notNamespaces: [\"dev\"]\n"                             // 16
      "    - source:\n"                                                // 17
      "        ipBlocks: [\"10.0.0.0/8\"]\n"                           // 18
      "    to:\n"                                                      // 19
      "    - operation:\n"                                             // 20
      "        methods: [\"GET\", \"HEAD\"]\n"                         // 21
      "        paths: [\"/info*\", \"/api/{*}/x\"]\n"                  // 22
      "        ports: [\"8080\", \"0\"]\n"                             // 23
      "    when:\n"                                                    // 24
      "    - key: request.headers[X-Token]\n"                          // 25
      "      notValues: [\"\\u0061bc\"]\n"                             // 26
      "    - key: destination.port\n"                                  // 27
      "      values: [\"65535\"]\n"                                    // 28
      "  - {}\n";                                                      // 29
  LoadResult r = load(yaml);
  ASSERT_TRUE(r.ok()) << r.errorText();
  ASSERT_EQ(r.bundle.authorization_policies.size(), 1u);
  EXPECT_TRUE(r.bundle.peer_authentications.empty());
  const AuthorizationPolicy& ap = r.bundle.authorization_policies[0];
  EXPECT_EQ(ap.api_version, "security.istio.io/v1");
  EXPECT_EQ(ap.metadata.name, "httpbin");
  EXPECT_EQ(ap.metadata.ns, "foo");
  EXPECT_EQ(formatMark(ap.mark), "test.yaml:1:1");
  EXPECT_EQ(formatMark(ap.metadata.mark), "test.yaml:4:3");
  ASSERT_TRUE(ap.selector.has_value());
  EXPECT_EQ(ap.selector->match_labels,
            (std::map<std::string, std::string>{{"app", "httpbin"}, {"version", "v1"}}));
  EXPECT_EQ(formatMark(ap.selector->mark), "test.yaml:7:3");
  EXPECT_EQ(ap.action, Action::kDeny);
  EXPECT_EQ(formatMark(ap.action_mark), "test.yaml:11:11");
  EXPECT_TRUE(ap.has_rules);
  EXPECT_FALSE(ap.dry_run);
  ASSERT_EQ(ap.rules.size(), 2u);

  const Rule& rule = ap.rules[0];
  EXPECT_EQ(formatMark(rule.mark), "test.yaml:13:5");
  ASSERT_EQ(rule.from.size(), 2u);
  ASSERT_EQ(rule.from[0].principals.values.size(), 1u);
  EXPECT_EQ(rule.from[0].principals.values[0].text, "cluster.local/ns/default/sa/sleep");
  EXPECT_EQ(formatMark(rule.from[0].principals.values[0].mark), "test.yaml:15:22");
  EXPECT_EQ(formatMark(rule.from[0].principals.mark), "test.yaml:15:9");
  EXPECT_TRUE(rule.from[0].principals.not_values.empty());
  ASSERT_EQ(rule.from[0].namespaces.not_values.size(), 1u);
  EXPECT_EQ(rule.from[0].namespaces.not_values[0].text, "dev");
  EXPECT_TRUE(rule.from[0].namespaces.values.empty());
  EXPECT_TRUE(rule.from[0].ip_blocks.empty());
  ASSERT_EQ(rule.from[1].ip_blocks.values.size(), 1u);
  EXPECT_EQ(rule.from[1].ip_blocks.values[0].text, "10.0.0.0/8");

  ASSERT_EQ(rule.to.size(), 1u);
  const Operation& op = rule.to[0];
  ASSERT_EQ(op.methods.values.size(), 2u);
  EXPECT_EQ(op.methods.values[1].text, "HEAD");
  ASSERT_EQ(op.paths.values.size(), 2u);
  EXPECT_EQ(op.paths.values[1].text, "/api/{*}/x");
  ASSERT_EQ(op.ports.values.size(), 2u);
  EXPECT_EQ(op.ports.values[1].text, "0");  // Istio allows [0, 65535]
  EXPECT_TRUE(op.hosts.empty());

  ASSERT_EQ(rule.when.size(), 2u);
  EXPECT_EQ(rule.when[0].key.text, "request.headers[X-Token]");
  EXPECT_EQ(formatMark(rule.when[0].key.mark), "test.yaml:25:12");
  ASSERT_EQ(rule.when[0].not_values.size(), 1u);
  EXPECT_EQ(rule.when[0].not_values[0].text, "abc");
  EXPECT_EQ(rule.when[1].key.text, "destination.port");
  ASSERT_EQ(rule.when[1].values.size(), 1u);
  EXPECT_EQ(rule.when[1].values[0].text, "65535");

  const Rule& empty_rule = ap.rules[1];
  EXPECT_TRUE(empty_rule.from.empty());
  EXPECT_TRUE(empty_rule.to.empty());
  EXPECT_TRUE(empty_rule.when.empty());
}

TEST(LoaderTest, LoadsPeerAuthentication) {
  const std::string yaml =
      "apiVersion: security.istio.io/v1beta1\n"
      "kind: PeerAuthentication\n"
      "metadata:\n"
      "  name: web\n"
      "  namespace: foo\n"
      "  creationTimestamp: \"2024-01-02T03:04:05Z\"\n"
      "spec:\n"
      "  selector:\n"
      "    matchLabels:\n"
      "      app: web\n"
      "  mtls:\n"
      "    mode: STRICT\n"
      "  portLevelMtls:\n"
      "    8080:\n"
      "      mode: DISABLE\n"
      "    9090:\n"
      "      mode: UNSET\n"
      "    9091:\n"
      "      mode: PERMISSIVE\n"
      "    65535: {}\n";
  LoadResult r = load(yaml);
  ASSERT_TRUE(r.ok()) << r.errorText();
  ASSERT_EQ(r.bundle.peer_authentications.size(), 1u);
  const PeerAuthentication& pa = r.bundle.peer_authentications[0];
  EXPECT_EQ(pa.api_version, "security.istio.io/v1beta1");
  EXPECT_EQ(pa.metadata.name, "web");
  EXPECT_EQ(pa.metadata.ns, "foo");
  EXPECT_EQ(pa.metadata.creation_timestamp, "2024-01-02T03:04:05Z");
  ASSERT_TRUE(pa.selector.has_value());
  EXPECT_EQ(pa.selector->match_labels.at("app"), "web");
  EXPECT_EQ(pa.mode, MtlsMode::kStrict);
  EXPECT_EQ(pa.port_level_mtls, (std::map<std::uint32_t, MtlsMode>{{8080, MtlsMode::kDisable},
                                                                   {9090, MtlsMode::kUnset},
                                                                   {9091, MtlsMode::kPermissive},
                                                                   {65535, MtlsMode::kUnset}}));
}

TEST(LoaderTest, PeerAuthenticationModes) {
  struct Row {
    std::string spec;
    MtlsMode want;
  };
  const Row rows[] = {
      {"spec: {}\n", MtlsMode::kUnset},
      {"spec:\n  mtls: {}\n", MtlsMode::kUnset},
      {"spec:\n  mtls:\n", MtlsMode::kUnset},
      {"spec:\n  mtls:\n    mode: UNSET\n", MtlsMode::kUnset},
      {"spec:\n  mtls:\n    mode: DISABLE\n", MtlsMode::kDisable},
      {"spec:\n  mtls:\n    mode: PERMISSIVE\n", MtlsMode::kPermissive},
      {"spec:\n  mtls:\n    mode: STRICT\n", MtlsMode::kStrict},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.spec);
    LoadResult r = load(kPaHead + row.spec);
    ASSERT_TRUE(r.ok()) << r.errorText();
    ASSERT_EQ(r.bundle.peer_authentications.size(), 1u);
    EXPECT_EQ(r.bundle.peer_authentications[0].mode, row.want);
    EXPECT_FALSE(r.bundle.peer_authentications[0].selector.has_value());
  }
}

TEST(LoaderTest, MultiDocumentFiles) {
  const std::string yaml = "---\n" + kApHead + "spec: {}\n---\n" + kPaHead +
                           "spec: {}\n---\n# only a comment\n---\n" + kApHead +
                           "spec:\n  action: AUDIT\n  rules:\n  - {}\n---\n";
  LoadResult r = load(yaml);
  ASSERT_TRUE(r.ok()) << r.errorText();
  ASSERT_EQ(r.bundle.authorization_policies.size(), 2u);
  ASSERT_EQ(r.bundle.peer_authentications.size(), 1u);
  EXPECT_EQ(r.bundle.authorization_policies[0].action, Action::kAllow);
  EXPECT_EQ(r.bundle.authorization_policies[1].action, Action::kAudit);
  EXPECT_EQ(formatMark(r.bundle.authorization_policies[1].mark), "test.yaml:18:1");
}

TEST(LoaderTest, EmptyFilesLoadNothing) {
  for (const char* text : {"", "\n", "# comment\n", "---\n", "---\n---\n", "...\n"}) {
    SCOPED_TRACE(text);
    LoadResult r = load(text);
    EXPECT_TRUE(r.ok()) << r.errorText();
    EXPECT_TRUE(r.diagnostics.empty());
    EXPECT_TRUE(r.bundle.authorization_policies.empty());
    EXPECT_TRUE(r.bundle.peer_authentications.empty());
  }
}

TEST(LoaderTest, KindList) {
  const std::string yaml =
      "apiVersion: v1\n"
      "kind: List\n"
      "metadata:\n"
      "  resourceVersion: \"\"\n"
      "items:\n"
      "- apiVersion: security.istio.io/v1\n"
      "  kind: AuthorizationPolicy\n"
      "  metadata:\n"
      "    name: a\n"
      "    namespace: ns\n"
      "  spec: {}\n"
      "- apiVersion: security.istio.io/v1beta1\n"
      "  kind: PeerAuthentication\n"
      "  metadata:\n"
      "    name: b\n"
      "  spec:\n"
      "    mtls:\n"
      "      mode: STRICT\n"
      "- apiVersion: security.istio.io/v1beta1\n"
      "  kind: AuthorizationPolicy\n"
      "  metadata:\n"
      "    name: c\n";
  LoadResult r = load(yaml);
  ASSERT_TRUE(r.ok()) << r.errorText();
  ASSERT_EQ(r.bundle.authorization_policies.size(), 2u);
  ASSERT_EQ(r.bundle.peer_authentications.size(), 1u);
  EXPECT_EQ(r.bundle.authorization_policies[0].metadata.name, "a");
  EXPECT_EQ(r.bundle.authorization_policies[1].metadata.name, "c");
  EXPECT_EQ(r.bundle.authorization_policies[1].api_version, "security.istio.io/v1beta1");
  EXPECT_EQ(formatMark(r.bundle.authorization_policies[1].mark), "test.yaml:19:3");
  EXPECT_EQ(r.bundle.peer_authentications[0].metadata.name, "b");
  EXPECT_EQ(r.bundle.peer_authentications[0].metadata.ns, "default");

  LoadResult empty = load("apiVersion: v1\nkind: List\nitems: []\n");
  EXPECT_TRUE(empty.ok()) << empty.errorText();
  EXPECT_TRUE(empty.bundle.authorization_policies.empty());
}

TEST(LoaderTest, BothApiVersions) {
  for (const char* api : {"security.istio.io/v1", "security.istio.io/v1beta1"}) {
    SCOPED_TRACE(api);
    LoadResult r = load(std::string("apiVersion: ") + api +
                        "\nkind: AuthorizationPolicy\nmetadata:\n  name: p\nspec: {}\n");
    ASSERT_TRUE(r.ok()) << r.errorText();
    ASSERT_EQ(r.bundle.authorization_policies.size(), 1u);
    EXPECT_EQ(r.bundle.authorization_policies[0].api_version, api);
  }
}

TEST(LoaderTest, AcceptsKubectlExportedObjects) {
  const std::string yaml =
      "apiVersion: security.istio.io/v1\n"
      "kind: AuthorizationPolicy\n"
      "metadata:\n"
      "  annotations:\n"
      "    kubectl.kubernetes.io/last-applied-configuration: |\n"
      "      {\"apiVersion\":\"security.istio.io/v1\",\"kind\":\"AuthorizationPolicy\"}\n"
      "  creationTimestamp: \"2024-05-01T10:00:00Z\"\n"
      "  generation: 3\n"
      "  labels:\n"
      "    team: web\n"
      "  managedFields:\n"
      "  - apiVersion: security.istio.io/v1\n"
      "    fieldsType: FieldsV1\n"
      "    fieldsV1:\n"
      "      f:spec: {}\n"
      "    manager: kubectl-client-side-apply\n"
      "    operation: Update\n"
      "    time: \"2024-05-01T10:00:00Z\"\n"
      "  name: allow-nothing\n"
      "  namespace: web\n"
      "  resourceVersion: \"123456\"\n"
      "  uid: 0b7a1f6e-1234-4c2d-9a8b-0123456789ab\n"
      "  finalizers: []\n"
      "  ownerReferences: []\n"
      "spec: {}\n"
      "status: {}\n";
  LoadResult r = load(yaml);
  ASSERT_TRUE(r.ok()) << r.errorText();
  EXPECT_TRUE(r.diagnostics.empty());
  ASSERT_EQ(r.bundle.authorization_policies.size(), 1u);
  const ObjectMeta& m = r.bundle.authorization_policies[0].metadata;
  EXPECT_EQ(m.name, "allow-nothing");
  EXPECT_EQ(m.ns, "web");
  EXPECT_EQ(m.creation_timestamp, "2024-05-01T10:00:00Z");
  EXPECT_EQ(m.annotations.count("kubectl.kubernetes.io/last-applied-configuration"), 1u);
}

TEST(LoaderTest, DefaultsAndEmptySpec) {
  // No namespace: "default". `spec: {}` and no spec at all: ALLOW with no rules.
  for (const char* spec : {"spec: {}\n", "spec:\n", ""}) {
    SCOPED_TRACE(spec);
    LoadResult r = load(std::string("apiVersion: security.istio.io/v1\n"
                                    "kind: AuthorizationPolicy\n"
                                    "metadata:\n"
                                    "  name: allow-nothing\n") +
                        spec);
    ASSERT_TRUE(r.ok()) << r.errorText();
    ASSERT_EQ(r.bundle.authorization_policies.size(), 1u);
    const AuthorizationPolicy& ap = r.bundle.authorization_policies[0];
    EXPECT_EQ(ap.metadata.ns, "default");
    EXPECT_EQ(ap.action, Action::kAllow);
    EXPECT_FALSE(ap.has_rules);
    EXPECT_TRUE(ap.rules.empty());
    EXPECT_FALSE(ap.selector.has_value());
    EXPECT_FALSE(ap.dry_run);
  }

  // `rules: []` is no rules (Istio's Rules == nil): an ALLOW policy that allows nothing.
  LoadResult empty_rules = load(kApHead + "spec:\n  rules: []\n");
  ASSERT_TRUE(empty_rules.ok()) << empty_rules.errorText();
  EXPECT_FALSE(empty_rules.bundle.authorization_policies[0].has_rules);
  EXPECT_TRUE(empty_rules.bundle.authorization_policies[0].rules.empty());

  LoadResult deny_all = load(kApHead + "spec:\n  action: DENY\n  rules:\n  - {}\n");
  ASSERT_TRUE(deny_all.ok()) << deny_all.errorText();
  EXPECT_EQ(deny_all.bundle.authorization_policies[0].action, Action::kDeny);
  EXPECT_EQ(deny_all.bundle.authorization_policies[0].rules.size(), 1u);
}

TEST(LoaderTest, DryRunAnnotation) {
  struct Row {
    std::string value;
    bool want;
  };
  // Go's strconv.ParseBool, which Istio uses.
  const Row rows[] = {
      {"\"true\"", true},   {"\"True\"", true}, {"\"TRUE\"", true},   {"\"t\"", true},
      {"\"T\"", true},      {"\"1\"", true},    {"\"false\"", false}, {"\"False\"", false},
      {"\"FALSE\"", false}, {"\"f\"", false},   {"\"F\"", false},     {"\"0\"", false},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.value);
    LoadResult r = load(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n"
        "  annotations:\n    istio.io/dry-run: " +
        row.value + "\nspec:\n  action: DENY\n  rules:\n  - {}\n");
    ASSERT_TRUE(r.ok()) << r.errorText();
    EXPECT_EQ(r.bundle.authorization_policies[0].dry_run, row.want);
  }
}

TEST(LoaderTest, Warnings) {
  struct Row {
    std::string name;
    std::string yaml;
    std::string want_warnings;
  };
  const Row rows[] = {
      {"selector without labels", kApHead + "spec:\n  selector: {}\n",
       "test.yaml:7:3: warning: workload selector specified without labels: it selects every "
       "workload"},
      {"null selector", kApHead + "spec:\n  selector:\n",
       "test.yaml:7:3: warning: workload selector specified without labels: it selects every "
       "workload"},
      {"empty match labels", kPaHead + "spec:\n  selector:\n    matchLabels: {}\n",
       "test.yaml:7:3: warning: workload selector specified without labels: it selects every "
       "workload"},
      {"dry-run on audit",
       "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n"
       "  annotations:\n    istio.io/dry-run: \"true\"\nspec:\n  action: AUDIT\n  rules:\n"
       "  - {}\n",
       "test.yaml:4:3: warning: istio.io/dry-run on an AUDIT policy turns it off: it records "
       "nothing (an AUDIT policy never changes a decision anyway)"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    LoadResult r = load(row.yaml);
    EXPECT_TRUE(r.ok()) << r.errorText();
    EXPECT_EQ(r.errorText(), "");
    EXPECT_EQ(warnings(r), row.want_warnings);
  }
}

// --- loadPath ----------------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("palisade_loader_test_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& relative, const std::string& text) const {
    std::filesystem::path p = path_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::filesystem::path path_;
};

std::string policyNamed(const std::string& name) {
  return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " + name +
         "\nspec: {}\n";
}

TEST(LoaderTest, LoadPathDirectoryRecursiveSorted) {
  TempDir dir;
  dir.write("b.yaml", policyNamed("b"));
  dir.write("a.yml", policyNamed("a"));
  dir.write("sub/c.yaml", policyNamed("c") + "---\n" + policyNamed("c2"));
  dir.write("sub/deeper/d.yml", policyNamed("d"));
  dir.write("aa/e.yaml", policyNamed("e"));
  // Other extensions are ignored, even when they hold broken YAML.
  dir.write("notes.txt", "not: [yaml");
  dir.write("x.json", "{");
  dir.write("b.yaml.bak", "not: [yaml");
  dir.write("sub/README", "not: [yaml");
  dir.write("yaml", "not: [yaml");

  LoadResult r = loadPath(dir.path().string());
  ASSERT_TRUE(r.ok()) << r.errorText();
  std::vector<std::string> names;
  for (const AuthorizationPolicy& ap : r.bundle.authorization_policies) {
    names.push_back(ap.metadata.name);
  }
  // Sorted by path: a.yml, aa/e.yaml, b.yaml, sub/c.yaml, sub/deeper/d.yml.
  EXPECT_EQ(names, (std::vector<std::string>{"a", "e", "b", "c", "c2", "d"}));
  ASSERT_EQ(r.bundle.authorization_policies.size(), 6u);
  EXPECT_EQ(r.bundle.authorization_policies[3].mark.file, (dir.path() / "sub/c.yaml").string());
  EXPECT_EQ(r.bundle.authorization_policies[4].mark.line, 7);
}

TEST(LoaderTest, LoadPathErrorsNameTheFile) {
  TempDir dir;
  const std::filesystem::path good = dir.write("a.yaml", policyNamed("a"));
  const std::filesystem::path bad = dir.write("b.yaml", policyNamed("b") + "bogus: 1\n");
  LoadResult r = loadPath(dir.path().string());
  EXPECT_EQ(errors(r), bad.string() + ":6:1: unknown field \"bogus\" in AuthorizationPolicy");
  EXPECT_EQ(r.bundle.authorization_policies.size(), 2u);

  LoadResult one = loadPath(good.string());
  ASSERT_TRUE(one.ok()) << one.errorText();
  ASSERT_EQ(one.bundle.authorization_policies.size(), 1u);
  EXPECT_EQ(one.bundle.authorization_policies[0].mark.file, good.string());

  // A single file is loaded whatever its extension.
  const std::filesystem::path txt = dir.write("policy.txt", policyNamed("t"));
  LoadResult by_name = loadPath(txt.string());
  ASSERT_TRUE(by_name.ok()) << by_name.errorText();
  EXPECT_EQ(by_name.bundle.authorization_policies.size(), 1u);
}

TEST(LoaderTest, LoadPathFileTooLarge) {
  TempDir dir;
  const std::filesystem::path big =
      dir.write("big.yaml", std::string(kMaxPolicyFileBytes + 1, '#'));
  LoadResult r = loadPath(dir.path().string());
  EXPECT_EQ(errors(r), big.string() + ": file is larger than 8 MiB");
}

TEST(LoaderTest, LoadPathMissing) {
  TempDir dir;
  const std::string missing = (dir.path() / "nope.yaml").string();
  LoadResult r = loadPath(missing);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(errors(r), missing + ": no such file or directory");

  LoadResult empty_dir = loadPath(dir.path().string());
  EXPECT_TRUE(empty_dir.ok()) << empty_dir.errorText();
  EXPECT_TRUE(empty_dir.bundle.authorization_policies.empty());
}

// A path that exists but cannot be opened for reading: a UNIX socket (open(2) gives ENXIO,
// whoever runs the test, root included).
TEST(LoaderTest, LoadPathUnreadableFile) {
  TempDir dir;
  const std::filesystem::path p = dir.path() / "socket.yaml";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(p.string().size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, p.c_str(), p.string().size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);

  LoadResult r = loadPath(p.string());
  EXPECT_EQ(errors(r), p.string() + ": cannot read file");

  // In a directory it is not a regular file, so it is skipped.
  LoadResult in_dir = loadPath(dir.path().string());
  EXPECT_TRUE(in_dir.ok()) << in_dir.errorText();
}

}  // namespace
}  // namespace palisade::policy
