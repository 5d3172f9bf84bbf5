// End-to-end tests of palisadectl: each test runs the built binary as a subprocess (no shell)
// and checks its exit status, stdout and stderr against DESIGN.md "Offline tool contract".
// Policy fixtures live in tests/testdata/cli/; rule indexes and line:col below refer to them.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "policy/spiffe_id.h"
#include "tests/cli/subprocess.h"

namespace palisade::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

// --- Fixtures and output helpers ------------------------------------------------------------

std::string fixture(const std::string& relative) {
  return std::string(PALISADE_TESTDATA_DIR) + "/cli/" + relative;
}

std::string examplesDir() { return std::string(PALISADE_SOURCE_DIR) + "/deploy/examples"; }

std::string firstLine(const std::string& text) {
  auto all = lines(text);
  return all.empty() ? std::string() : all.front();
}

// The first line of `text` that starts with `prefix`, or "" if none does.
std::string lineStartingWith(const std::string& text, const std::string& prefix) {
  for (const std::string& l : lines(text)) {
    if (l.starts_with(prefix)) {
      return l;
    }
  }
  return {};
}

// Lines of `text` shaped "FILE:LINE:COL: message" for the given file.
std::vector<std::string> diagnosticLines(const std::string& text, const std::string& file) {
  std::vector<std::string> out;
  for (const std::string& l : lines(text)) {
    if (l.starts_with(file + ":")) {
      out.push_back(l);
    }
  }
  return out;
}

bool isFileLineColLine(const std::string& line) {
  static const std::regex kShape(R"(^.+\.ya?ml:[1-9][0-9]*:[1-9][0-9]*: .+$)");
  return std::regex_match(line, kShape);
}

constexpr const char* kFrontend = "spiffe://cluster.local/ns/shop/sa/frontend";
constexpr const char* kOpsProm = "spiffe://cluster.local/ns/ops/sa/prom";

// `authz check` against tests/testdata/cli/shop for the web workload, plus `extra`.
std::vector<std::string> shopCheck(std::vector<std::string> extra) {
  std::vector<std::string> args = {"authz",
                                   "check",
                                   "--policies",
                                   fixture("shop"),
                                   "--workload-namespace",
                                   "shop",
                                   "--workload-labels",
                                   "app=web"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> examplesCheck(std::vector<std::string> extra) {
  std::vector<std::string> args = {"authz", "check", "--policies", examplesDir()};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Parses stdout as JSON; fails the test and returns null if it is not JSON.
Json parseJson(const RunResult& r) {
  Json j = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ADD_FAILURE() << "stdout is not JSON\n" << r.dump();
    return Json();
  }
  return j;
}

// A unique directory under the system temp dir, removed with everything in it at the end.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "palisadectl_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string writeFile(const std::string& name, const std::string& text) {
    std::filesystem::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::filesystem::path dir_;
};

// --- spiffe parse ---------------------------------------------------------------------------

TEST(PalisadectlTest, SpiffeParse_ValidIdWithPath_PrintsTrustDomainAndPath) {
  RunResult r = run({"spiffe", "parse", "spiffe://example.org/ns/default/sa/sleep"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.out, "trust_domain=example.org path=/ns/default/sa/sleep\n");
  EXPECT_EQ(r.err, "");
}

TEST(PalisadectlTest, SpiffeParse_TrustDomainOnly_PrintsEmptyPath) {
  RunResult r = run({"spiffe", "parse", "spiffe://example.org"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.out, "trust_domain=example.org path=\n");
  EXPECT_EQ(r.err, "");
}

TEST(PalisadectlTest, SpiffeParse_AllowedPunctuation_PrintsIdUnchanged) {
  RunResult r = run({"spiffe", "parse", "spiffe://td-1.example_x/A.b/c-D_e/0"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.out, "trust_domain=td-1.example_x path=/A.b/c-D_e/0\n");
  EXPECT_EQ(r.err, "");
}

struct InvalidIdCase {
  std::string name;
  std::string id;
  std::string_view reason;
};

class SpiffeParseInvalidTest : public ::testing::TestWithParam<InvalidIdCase> {};

TEST_P(SpiffeParseInvalidTest, SpiffeParse_InvalidId_ExitsOneWithReasonOnStderr) {
  RunResult r = run({"spiffe", "parse", GetParam().id});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(r.out, "") << "nothing on stdout for an invalid ID";
  EXPECT_THAT(r.err, HasSubstr(std::string(GetParam().reason))) << r.dump();
}

INSTANTIATE_TEST_SUITE_P(
    PalisadectlTest, SpiffeParseInvalidTest,
    ::testing::Values(
        InvalidIdCase{"Empty", "", policy::kSpiffeEmpty},
        InvalidIdCase{"HttpScheme", "http://example.org/x", policy::kSpiffeWrongScheme},
        InvalidIdCase{"UppercaseScheme", "SPIFFE://example.org/x", policy::kSpiffeWrongScheme},
        InvalidIdCase{"NoScheme", "example.org/x", policy::kSpiffeWrongScheme},
        InvalidIdCase{"MissingTrustDomain", "spiffe:///x", policy::kSpiffeMissingTrustDomain},
        InvalidIdCase{"SchemeOnly", "spiffe://", policy::kSpiffeMissingTrustDomain},
        InvalidIdCase{"UppercaseTrustDomain", "spiffe://Example.org/x",
                      policy::kSpiffeTrustDomainChars},
        InvalidIdCase{"Port", "spiffe://example.org:8443/x", policy::kSpiffePort},
        InvalidIdCase{"Userinfo", "spiffe://user@example.org/x", policy::kSpiffeUserinfo},
        InvalidIdCase{"EmptySegment", "spiffe://example.org/a//b", policy::kSpiffeEmptySegment},
        InvalidIdCase{"DotSegment", "spiffe://example.org/a/./b", policy::kSpiffeDotSegment},
        InvalidIdCase{"DotDotSegment", "spiffe://example.org/a/../b", policy::kSpiffeDotSegment},
        InvalidIdCase{"TrailingSlash", "spiffe://example.org/a/", policy::kSpiffeTrailingSlash},
        InvalidIdCase{"Query", "spiffe://example.org/a?x=1", policy::kSpiffeQuery},
        InvalidIdCase{"Fragment", "spiffe://example.org/a#frag", policy::kSpiffeFragment},
        InvalidIdCase{"PercentEncoded", "spiffe://example.org/a%20b", policy::kSpiffePercent},
        InvalidIdCase{"BadPathChar", "spiffe://example.org/a+b", policy::kSpiffePathChars},
        InvalidIdCase{"TooLong", "spiffe://example.org/" + std::string(2030, 'a'),
                      policy::kSpiffeTooLong},
        InvalidIdCase{"TrustDomainTooLong", "spiffe://" + std::string(256, 'a') + "/x",
                      policy::kSpiffeTrustDomainTooLong}),
    [](const ::testing::TestParamInfo<InvalidIdCase>& info) { return info.param.name; });

TEST(PalisadectlTest, SpiffeParse_NoArgument_ExitsTwo) {
  RunResult r = run({"spiffe", "parse"});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("expected exactly one SPIFFE ID"));
}

TEST(PalisadectlTest, SpiffeParse_TwoArguments_ExitsTwo) {
  RunResult r = run({"spiffe", "parse", "spiffe://a.org/x", "spiffe://b.org/y"});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("expected exactly one SPIFFE ID"));
}

TEST(PalisadectlTest, SpiffeParse_UnknownFlag_ExitsTwo) {
  RunResult r = run({"spiffe", "parse", "spiffe://example.org/x", "--bogus"});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("unknown flag: --bogus"));
}

// --- authz check: decisions (text output) ---------------------------------------------------

TEST(PalisadectlTest, AuthzCheck_AllowedByAllowRule_ExitsZeroAndNamesPolicyAndRule) {
  RunResult r = run(shopCheck(
      {"--source", kFrontend, "--method", "GET", "--path", "/api/items", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  auto out = lines(r.out);
  ASSERT_GE(out.size(), 2u) << r.dump();
  EXPECT_EQ(out[0], "ALLOW");
  EXPECT_THAT(out[1], HasSubstr("ALLOW policy shop/web-allow, rule 0"));
  EXPECT_THAT(out[1], HasSubstr(fixture("shop/allow.yaml") + ":15:5"));
  EXPECT_EQ(r.err, "");
}

TEST(PalisadectlTest, AuthzCheck_DeniedByDenyPolicy_ExitsOne) {
  RunResult r = run(shopCheck({"--source", kFrontend, "--path", "/admin/users", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  auto out = lines(r.out);
  ASSERT_GE(out.size(), 2u) << r.dump();
  EXPECT_EQ(out[0], "DENY");
  EXPECT_THAT(out[1], HasSubstr("DENY policy shop/web-deny-admin, rule 1"));
  EXPECT_THAT(out[1], HasSubstr(fixture("shop/deny.yaml") + ":17:5"));
  EXPECT_EQ(r.err, "");
}

TEST(PalisadectlTest, AuthzCheck_DenyPolicyOnOtherPort_DoesNotDeny) {
  // web-deny-admin only covers port 8080; on 9090 the ops namespace rule allows.
  RunResult r = run(shopCheck({"--source", kOpsProm, "--path", "/admin/users", "--port", "9090"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("shop/web-allow, rule 1"));
}

TEST(PalisadectlTest, AuthzCheck_NoAllowRuleMatches_ExitsOneAndNamesAllowPolicies) {
  // Rule 0 allows the frontend GET only.
  RunResult r = run(shopCheck(
      {"--source", kFrontend, "--method", "POST", "--path", "/api/items", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  auto out = lines(r.out);
  ASSERT_GE(out.size(), 2u) << r.dump();
  EXPECT_EQ(out[0], "DENY");
  EXPECT_THAT(out[1], HasSubstr("no ALLOW policy matched"));
  EXPECT_THAT(out[1], HasSubstr("shop/web-allow"));
}

TEST(PalisadectlTest, AuthzCheck_NoPolicySelectsNamespace_ExitsZero) {
  RunResult r = run({"authz", "check", "--policies", fixture("shop"), "--workload-namespace",
                     "elsewhere", "--source", kFrontend});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  auto out = lines(r.out);
  ASSERT_GE(out.size(), 2u) << r.dump();
  EXPECT_EQ(out[0], "ALLOW");
  EXPECT_THAT(out[1], HasSubstr("no ALLOW policy selects workload"));
}

TEST(PalisadectlTest, AuthzCheck_WorkloadLabelsNotSelected_AllowPolicyIgnored) {
  // The shop policies select app=web; app=db in the same namespace has no policy at all.
  RunResult r =
      run({"authz", "check", "--policies", fixture("shop"), "--workload-namespace", "shop",
           "--workload-labels", "app=db,tier=data", "--path", "/admin/x", "--port", "8080"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("no ALLOW policy selects workload"));
}

TEST(PalisadectlTest, AuthzCheck_ExtraWorkloadLabels_StillSelected) {
  RunResult r = run({"authz", "check", "--policies", fixture("shop"), "--workload-namespace",
                     "shop", "--workload-labels", "version=v2,app=web", "--source", kFrontend,
                     "--path", "/api/items", "--port", "8080"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("shop/web-allow, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_PlaintextPeer_PrincipalRuleDoesNotMatch) {
  // Same request as the frontend's allowed one, without --source: no principal to match.
  RunResult r = run(shopCheck({"--method", "GET", "--path", "/api/items", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("no ALLOW policy matched"));
}

TEST(PalisadectlTest, AuthzCheck_OtherPrincipal_ExitsOne) {
  RunResult r = run(shopCheck({"--source", "spiffe://cluster.local/ns/shop/sa/backend", "--path",
                               "/api/items", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

TEST(PalisadectlTest, AuthzCheck_PrincipalFromOtherTrustDomain_ExitsOne) {
  RunResult r = run(shopCheck({"--source", "spiffe://other.example/ns/shop/sa/frontend", "--path",
                               "/api/items", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

TEST(PalisadectlTest, AuthzCheck_SourceNamespaceOnRulePort_AllowedByRuleOne) {
  RunResult r = run(shopCheck({"--source", kOpsProm, "--path", "/metrics", "--port", "9090"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("shop/web-allow, rule 1"));
}

TEST(PalisadectlTest, AuthzCheck_SourceNamespaceOnOtherPort_ExitsOne) {
  RunResult r = run(shopCheck({"--source", kOpsProm, "--path", "/metrics", "--port", "9091"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

TEST(PalisadectlTest, AuthzCheck_RepeatedHeader_ValuesJoinedAllowedByRuleTwo) {
  RunResult r = run(shopCheck({"--header", "x-tenant: a", "--header", "X-Tenant: b"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("shop/web-allow, rule 2"));
}

TEST(PalisadectlTest, AuthzCheck_SingleHeader_NotEnoughForJoinedValue_ExitsOne) {
  RunResult r = run(shopCheck({"--header", "x-tenant: a"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

TEST(PalisadectlTest, AuthzCheck_SourceIpInBlock_AllowedByRuleThree) {
  RunResult r = run(shopCheck({"--source-ip", "192.0.2.7"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("shop/web-allow, rule 3"));
}

TEST(PalisadectlTest, AuthzCheck_SourceIpOutsideBlock_ExitsOne) {
  RunResult r = run(shopCheck({"--source-ip", "198.51.100.7"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

TEST(PalisadectlTest, AuthzCheck_HostWithPortMatchesWildcardPort_AllowedByRuleFour) {
  RunResult r = run(shopCheck({"--host", "api.shop.example:8443", "--path", "/public"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("shop/web-allow, rule 4"));
}

TEST(PalisadectlTest, AuthzCheck_OtherHost_ExitsOne) {
  RunResult r = run(shopCheck({"--host", "www.shop.example:8443", "--path", "/public"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

TEST(PalisadectlTest, AuthzCheck_DryRunPolicyWouldDeny_ReportedButNotEnforced) {
  RunResult r = run(shopCheck({"--source", kFrontend, "--path", "/api/orders", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("shop/web-allow, rule 0"));
  std::string dry = lineStartingWith(r.out, "dry-run:");
  ASSERT_NE(dry, "") << r.dump();
  EXPECT_THAT(dry, HasSubstr("DENY"));
  EXPECT_THAT(dry, HasSubstr("shop/web-deny-orders, rule 0"));
  EXPECT_THAT(dry, HasSubstr(fixture("shop/dry_run.yaml") + ":15:5"));
}

TEST(PalisadectlTest, AuthzCheck_AuditPolicyMatched_ReportedWithoutChangingDecision) {
  RunResult r = run(shopCheck({"--source", kFrontend, "--path", "/api/items", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  std::string audit = lineStartingWith(r.out, "audit:");
  ASSERT_NE(audit, "") << r.dump();
  EXPECT_THAT(audit, HasSubstr("AUDIT policy shop/web-audit-api, rule 0"));
  EXPECT_THAT(audit, HasSubstr(fixture("shop/audit.yaml") + ":13:5"));
}

TEST(PalisadectlTest, AuthzCheck_AuditPolicyNotMatched_NoAuditLine) {
  RunResult r = run(shopCheck({"--source", kOpsProm, "--path", "/metrics", "--port", "9090"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(lineStartingWith(r.out, "audit:"), "") << r.dump();
}

TEST(PalisadectlTest, AuthzCheck_AuditMatchedOnDeniedRequest_StillDenied) {
  RunResult r = run(shopCheck({"--path", "/api/items", "--port", "8080"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(lineStartingWith(r.out, "audit:"), HasSubstr("shop/web-audit-api"));
}

// --- authz check: peer authentication -------------------------------------------------------

TEST(PalisadectlTest, AuthzCheck_MeshStrictPlaintextPeer_DeniedByPeerAuthentication) {
  RunResult r =
      run({"authz", "check", "--policies", fixture("mtls.yaml"), "--workload-namespace", "secure"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  auto out = lines(r.out);
  ASSERT_GE(out.size(), 2u) << r.dump();
  EXPECT_EQ(out[0], "DENY");
  EXPECT_THAT(out[1], HasSubstr("PeerAuthentication istio-system/default"));
  EXPECT_THAT(out[1], HasSubstr("STRICT"));
  EXPECT_THAT(out[1], HasSubstr(fixture("mtls.yaml") + ":3:1"));
}

TEST(PalisadectlTest, AuthzCheck_MeshStrictWithSource_ExitsZero) {
  RunResult r = run({"authz", "check", "--policies", fixture("mtls.yaml"), "--workload-namespace",
                     "secure", "--source", "spiffe://cluster.local/ns/any/sa/client"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
}

TEST(PalisadectlTest, AuthzCheck_NamespacePermissiveOverridesMeshStrict_PlaintextAllowed) {
  RunResult r =
      run({"authz", "check", "--policies", fixture("mtls.yaml"), "--workload-namespace", "legacy"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
}

TEST(PalisadectlTest, AuthzCheck_CustomRootNamespace_MeshStrictNotApplied) {
  // With mesh-root as root namespace, istio-system's PeerAuthentication is not mesh-wide.
  RunResult r = run({"authz", "check", "--policies", fixture("mtls.yaml"), "--workload-namespace",
                     "secure", "--root-namespace", "mesh-root"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
}

TEST(PalisadectlTest, AuthzCheck_PortLevelPermissive_PlaintextReachesAuthorization) {
  // deploy/examples/postgres.yaml: STRICT, PERMISSIVE on 9187; only web/api may connect.
  RunResult r = run(examplesCheck({"--workload-namespace", "db", "--workload-labels",
                                   "app=postgres", "--tcp", "--port", "9187", "--output", "json"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  Json j = parseJson(r);
  EXPECT_EQ(j.value("decision", ""), "DENY");
  EXPECT_EQ(j.value("mtlsMode", ""), "PERMISSIVE");
  EXPECT_EQ(j.value("reason", ""), "no ALLOW policy matched");
}

TEST(PalisadectlTest, AuthzCheck_PortLevelStrictPort_PlaintextRefused) {
  RunResult r = run(examplesCheck({"--workload-namespace", "db", "--workload-labels",
                                   "app=postgres", "--tcp", "--port", "5432"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("PeerAuthentication db/postgres"));
}

// --- authz check: root namespace ------------------------------------------------------------

TEST(PalisadectlTest, AuthzCheck_RootNamespaceFlag_AppliesPolicyMeshWide) {
  RunResult r =
      run({"authz", "check", "--policies", fixture("root_namespace.yaml"), "--workload-namespace",
           "shop", "--root-namespace", "mesh-root", "--path", "/debug/pprof", "--port", "8080"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("DENY policy mesh-root/deny-debug, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_DefaultRootNamespace_OtherNamespacePolicyNotMeshWide) {
  RunResult r = run({"authz", "check", "--policies", fixture("root_namespace.yaml"),
                     "--workload-namespace", "shop", "--path", "/debug/pprof", "--port", "8080"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
}

// --- authz check: TCP -----------------------------------------------------------------------

TEST(PalisadectlTest, AuthzCheck_TcpWithHttpOnlyAllowRules_Denies) {
  RunResult r = run({"authz", "check", "--policies", fixture("tcp.yaml"), "--workload-namespace",
                     "cache", "--workload-labels", "app=redis", "--tcp", "--source",
                     "spiffe://cluster.local/ns/web/sa/api", "--port", "6379"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("cache/redis-http-only"));
  EXPECT_THAT(r.out, HasSubstr("HTTP-only"));
}

TEST(PalisadectlTest, AuthzCheck_HttpRequestSameRule_Allowed) {
  RunResult r = run({"authz", "check", "--policies", fixture("tcp.yaml"), "--workload-namespace",
                     "cache", "--workload-labels", "app=redis", "--source",
                     "spiffe://cluster.local/ns/web/sa/api", "--method", "GET", "--port", "6379"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("cache/redis-http-only, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_TcpSniMatches_Allowed) {
  RunResult r = run({"authz", "check", "--policies", fixture("tcp.yaml"), "--workload-namespace",
                     "edge", "--tcp", "--sni", "db.edge.example"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("edge/edge-sni, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_TcpSniDoesNotMatch_Denied) {
  RunResult r = run({"authz", "check", "--policies", fixture("tcp.yaml"), "--workload-namespace",
                     "edge", "--tcp", "--sni", "db.other.example"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

TEST(PalisadectlTest, AuthzCheck_TcpDenyRuleWithHttpOnlyFields_DeniesConnection) {
  // warnings.yaml: lint/deny-delete denies DELETE with no ports; on TCP it denies everything.
  RunResult r =
      run({"authz", "check", "--policies", fixture("warnings.yaml"), "--workload-namespace", "lint",
           "--tcp", "--source", "spiffe://cluster.local/ns/lint/sa/client", "--port", "8080"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("lint/deny-delete, rule 0"));
}

// --- authz check: deploy/examples ------------------------------------------------------------

TEST(PalisadectlTest, AuthzCheck_ExamplesSleepReadsHeaders_Allowed) {
  RunResult r =
      run(examplesCheck({"--workload-namespace", "foo", "--workload-labels", "app=httpbin",
                         "--source", "spiffe://cluster.local/ns/foo/sa/sleep", "--method", "GET",
                         "--path", "/headers", "--port", "8000"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("foo/httpbin, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_ExamplesDeleteFromOtherNamespace_DeniedByDenyPolicy) {
  RunResult r = run(examplesCheck({"--workload-namespace", "foo", "--workload-labels",
                                   "app=httpbin", "--source", "spiffe://cluster.local/ns/bar/sa/x",
                                   "--method", "DELETE", "--path", "/headers", "--port", "8000"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("DENY policy foo/deny-delete-from-other-namespaces, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_ExamplesGatewayPostWithHeader_AllowedByRuleOneAndAudited) {
  RunResult r = run(examplesCheck(
      {"--workload-namespace", "foo", "--workload-labels", "app=httpbin", "--source",
       "spiffe://cluster.local/ns/istio-system/sa/ingress-gateway", "--method", "POST", "--path",
       "/post", "--port", "8000", "--header", "x-api-version: v2.1"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("foo/httpbin, rule 1"));
  EXPECT_THAT(lineStartingWith(r.out, "audit:"), HasSubstr("foo/audit-posts"));
}

TEST(PalisadectlTest, AuthzCheck_ExamplesMeshWideDebugDeny_Denied) {
  RunResult r = run(examplesCheck(
      {"--workload-namespace", "foo", "--workload-labels", "app=httpbin", "--source",
       "spiffe://cluster.local/ns/foo/sa/sleep", "--path", "/debug/vars", "--port", "8000"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("DENY policy istio-system/deny-debug, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_ExamplesPostgresFromPodNetwork_Allowed) {
  RunResult r = run(examplesCheck(
      {"--workload-namespace", "db", "--workload-labels", "app=postgres", "--tcp", "--source",
       "spiffe://cluster.local/ns/web/sa/api", "--source-ip", "10.244.3.9", "--port", "5432"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(firstLine(r.out), "ALLOW");
  EXPECT_THAT(r.out, HasSubstr("db/postgres, rule 0"));
}

TEST(PalisadectlTest, AuthzCheck_ExamplesPostgresFromOutsidePodNetwork_Denied) {
  RunResult r = run(examplesCheck(
      {"--workload-namespace", "db", "--workload-labels", "app=postgres", "--tcp", "--source",
       "spiffe://cluster.local/ns/web/sa/api", "--source-ip", "172.16.0.9", "--port", "5432"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
}

// --- authz check --output json --------------------------------------------------------------

TEST(PalisadectlTest, AuthzCheckJson_AllowedWithAuditAndDryRun_HasAllFields) {
  RunResult r = run(shopCheck(
      {"--source", kFrontend, "--path", "/api/orders", "--port", "8080", "--output", "json"}));
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  Json j = parseJson(r);
  ASSERT_TRUE(j.is_object()) << r.dump();
  for (const char* field : {"decision", "reason", "policy", "audit", "dryRun", "mtlsMode"}) {
    EXPECT_TRUE(j.contains(field)) << "missing field " << field << "\n" << r.dump();
  }
  EXPECT_EQ(j.value("decision", ""), "ALLOW");
  EXPECT_TRUE(j["reason"].is_string());
  EXPECT_EQ(j.value("mtlsMode", ""), "PERMISSIVE");  // no PeerAuthentication: Istio default

  const Json& p = j["policy"];
  ASSERT_TRUE(p.is_object()) << r.dump();
  EXPECT_EQ(p.value("namespace", ""), "shop");
  EXPECT_EQ(p.value("name", ""), "web-allow");
  EXPECT_EQ(p.value("action", ""), "ALLOW");
  EXPECT_EQ(p.value("rule", -1), 0);
  EXPECT_EQ(p.value("location", ""), fixture("shop/allow.yaml") + ":15:5");

  const Json& a = j["audit"];
  ASSERT_TRUE(a.is_object()) << r.dump();
  EXPECT_EQ(a.value("namespace", ""), "shop");
  EXPECT_EQ(a.value("name", ""), "web-audit-api");
  EXPECT_EQ(a.value("action", ""), "AUDIT");
  EXPECT_EQ(a.value("rule", -1), 0);
  EXPECT_EQ(a.value("location", ""), fixture("shop/audit.yaml") + ":13:5");

  const Json& d = j["dryRun"];
  ASSERT_TRUE(d.is_object()) << r.dump();
  EXPECT_EQ(d.value("decision", ""), "DENY");
  EXPECT_EQ(d.value("changesDecision", false), true);
  ASSERT_TRUE(d["policy"].is_object()) << r.dump();
  EXPECT_EQ(d["policy"].value("name", ""), "web-deny-orders");
  EXPECT_EQ(d["policy"].value("action", ""), "DENY");
  EXPECT_EQ(d["policy"].value("dryRun", false), true);
  EXPECT_EQ(d["policy"].value("location", ""), fixture("shop/dry_run.yaml") + ":15:5");
  EXPECT_EQ(r.err, "");
}

TEST(PalisadectlTest, AuthzCheckJson_DeniedByDenyPolicy_ExitsOne) {
  RunResult r = run(shopCheck(
      {"--source", kFrontend, "--path", "/admin/x", "--port", "8080", "--output", "json"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  Json j = parseJson(r);
  ASSERT_TRUE(j.is_object()) << r.dump();
  EXPECT_EQ(j.value("decision", ""), "DENY");
  ASSERT_TRUE(j["policy"].is_object()) << r.dump();
  EXPECT_EQ(j["policy"].value("namespace", ""), "shop");
  EXPECT_EQ(j["policy"].value("name", ""), "web-deny-admin");
  EXPECT_EQ(j["policy"].value("action", ""), "DENY");
  EXPECT_EQ(j["policy"].value("rule", -1), 1);
  EXPECT_EQ(j["policy"].value("location", ""), fixture("shop/deny.yaml") + ":17:5");
}

TEST(PalisadectlTest, AuthzCheckJson_NoPolicyDecided_PolicyAuditAndDryRunNull) {
  RunResult r = run({"authz", "check", "--policies", fixture("root_namespace.yaml"),
                     "--workload-namespace", "shop", "--output", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  Json j = parseJson(r);
  ASSERT_TRUE(j.is_object()) << r.dump();
  EXPECT_EQ(j.value("decision", ""), "ALLOW");
  EXPECT_TRUE(j.contains("policy") && j["policy"].is_null()) << r.dump();
  EXPECT_TRUE(j.contains("audit") && j["audit"].is_null()) << r.dump();
  EXPECT_TRUE(j.contains("dryRun") && j["dryRun"].is_null()) << r.dump();
}

TEST(PalisadectlTest, AuthzCheckJson_MeshStrictPlaintextPeer_DenyWithStrictMode) {
  RunResult r = run({"authz", "check", "--policies", fixture("mtls.yaml"), "--workload-namespace",
                     "secure", "--output", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  Json j = parseJson(r);
  ASSERT_TRUE(j.is_object()) << r.dump();
  EXPECT_EQ(j.value("decision", ""), "DENY");
  EXPECT_EQ(j.value("mtlsMode", ""), "STRICT");
  EXPECT_THAT(j.value("reason", ""), HasSubstr("STRICT"));
  EXPECT_TRUE(j["policy"].is_null()) << r.dump();
}

TEST(PalisadectlTest, AuthzCheckJson_RefusedBeforeAuthorization_NoAuditOrDryRunReported) {
  // A plaintext POST to httpbin never reaches authorization (mesh STRICT), as the text output
  // says; the JSON output must not report AUDIT or dry-run matches for it either.
  RunResult text =
      run(examplesCheck({"--workload-namespace", "foo", "--workload-labels", "app=httpbin",
                         "--method", "POST", "--path", "/ip", "--port", "8000"}));
  EXPECT_EQ(text.exit_code, 1) << text.dump();
  EXPECT_THAT(text.out, HasSubstr("refused before authorization"));
  EXPECT_EQ(lineStartingWith(text.out, "audit:"), "") << text.dump();
  EXPECT_EQ(lineStartingWith(text.out, "dry-run:"), "") << text.dump();

  RunResult r = run(
      examplesCheck({"--workload-namespace", "foo", "--workload-labels", "app=httpbin", "--method",
                     "POST", "--path", "/ip", "--port", "8000", "--output", "json"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  Json j = parseJson(r);
  ASSERT_TRUE(j.is_object()) << r.dump();
  EXPECT_EQ(j.value("decision", ""), "DENY");
  EXPECT_TRUE(j["audit"].is_null()) << "audit reported for a refused request\n" << r.dump();
  EXPECT_TRUE(j["dryRun"].is_null()) << "dry-run reported for a refused request\n" << r.dump();
}

TEST(PalisadectlTest, AuthzCheckJson_TcpDeny_ParsesAndExitsOne) {
  RunResult r = run({"authz", "check", "--policies", fixture("tcp.yaml"), "--workload-namespace",
                     "cache", "--workload-labels", "app=redis", "--tcp", "--source",
                     "spiffe://cluster.local/ns/web/sa/api", "--port", "6379", "--output", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  Json j = parseJson(r);
  ASSERT_TRUE(j.is_object()) << r.dump();
  EXPECT_EQ(j.value("decision", ""), "DENY");
  EXPECT_EQ(j.value("reason", ""), "no ALLOW policy matched");
}

TEST(PalisadectlTest, AuthzCheckJson_BadInput_ExitsTwoWithNothingOnStdout) {
  RunResult r = run(shopCheck({"--port", "70000", "--output", "json"}));
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("--port"));
}

// --- authz check: bad policies --------------------------------------------------------------

// tests/testdata/cli/invalid/errors.yaml: every error, its line:col and a piece of its text.
struct ExpectedDiagnostic {
  std::string line_col;
  std::string text;
};

const std::vector<ExpectedDiagnostic>& errorsYamlDiagnostics() {
  static const std::vector<ExpectedDiagnostic> kAll = {
      {"13:9", "unknown field \"colour\""},
      {"16:17", "bad port \"70000\""},
      {"20:20", "10.0.0.0/33"},
      {"28:11", "CUSTOM"},
      {"37:11", "STRICTEST"},
  };
  return kAll;
}

void expectEveryErrorsYamlDiagnostic(const RunResult& r) {
  const std::string file = fixture("invalid/errors.yaml");
  auto found = diagnosticLines(r.err, file);
  EXPECT_EQ(found.size(), errorsYamlDiagnostics().size()) << r.dump();
  for (const ExpectedDiagnostic& want : errorsYamlDiagnostics()) {
    std::string line = lineStartingWith(r.err, file + ":" + want.line_col + ": ");
    EXPECT_NE(line, "") << "no error at " << want.line_col << "\n" << r.dump();
    EXPECT_THAT(line, HasSubstr(want.text));
  }
}

TEST(PalisadectlTest, AuthzCheck_BadPolicyFile_ExitsTwoWithEveryErrorAsFileLineCol) {
  RunResult r = run({"authz", "check", "--policies", fixture("invalid/errors.yaml"),
                     "--workload-namespace", "shop", "--source", kFrontend});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "") << "no decision for a bad policy file";
  expectEveryErrorsYamlDiagnostic(r);
  for (const std::string& l : lines(r.err)) {
    EXPECT_TRUE(isFileLineColLine(l)) << "not file:line:col: message: " << l;
  }
}

TEST(PalisadectlTest, AuthzCheck_BadPolicyInDirectory_ExitsTwo) {
  RunResult r =
      run({"authz", "check", "--policies", fixture("invalid"), "--workload-namespace", "shop"});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  expectEveryErrorsYamlDiagnostic(r);
  EXPECT_EQ(diagnosticLines(r.err, fixture("invalid/syntax.yaml")).size(), 1u) << r.dump();
}

TEST(PalisadectlTest, AuthzCheck_PolicyPathMissing_ExitsTwo) {
  const std::string missing = fixture("does-not-exist.yaml");
  RunResult r = run({"authz", "check", "--policies", missing, "--workload-namespace", "shop"});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr(missing));
}

// --- authz check: bad flags -----------------------------------------------------------------

struct BadFlagCase {
  std::string name;
  std::vector<std::string> args;  // after "authz check"
  std::string message;            // expected in stderr
};

std::vector<std::string> withShop(std::vector<std::string> extra) {
  std::vector<std::string> args = {"--policies", fixture("shop"), "--workload-namespace", "shop"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

class AuthzCheckBadFlagTest : public ::testing::TestWithParam<BadFlagCase> {};

TEST_P(AuthzCheckBadFlagTest, AuthzCheck_BadFlag_ExitsTwoWithMessage) {
  std::vector<std::string> args = {"authz", "check"};
  args.insert(args.end(), GetParam().args.begin(), GetParam().args.end());
  RunResult r = run(args);
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "") << "no decision on bad input";
  EXPECT_THAT(r.err, HasSubstr(GetParam().message)) << r.dump();
}

INSTANTIATE_TEST_SUITE_P(
    PalisadectlTest, AuthzCheckBadFlagTest,
    ::testing::Values(
        BadFlagCase{"SourceTrailingSlash",
                    withShop({"--source", "spiffe://cluster.local/ns/shop/sa/"}), "--source"},
        BadFlagCase{"SourceWithoutScheme",
                    withShop({"--source", "cluster.local/ns/shop/sa/frontend"}), "--source"},
        BadFlagCase{"SourceEmpty", withShop({"--source", ""}), "--source"},
        BadFlagCase{"SourceIpOutOfRange", withShop({"--source-ip", "999.1.1.1"}), "--source-ip"},
        BadFlagCase{"SourceIpCidr", withShop({"--source-ip", "10.0.0.0/8"}), "--source-ip"},
        BadFlagCase{"SourceIpHostname", withShop({"--source-ip", "localhost"}), "--source-ip"},
        BadFlagCase{"PortTooLarge", withShop({"--port", "70000"}), "--port"},
        BadFlagCase{"Port65536", withShop({"--port", "65536"}), "--port"},
        BadFlagCase{"PortNegative", withShop({"--port", "-1"}), "--port"},
        BadFlagCase{"PortNotANumber", withShop({"--port", "http"}), "--port"},
        BadFlagCase{"PortEmpty", withShop({"--port", ""}), "--port"},
        BadFlagCase{"PortWithoutValue", withShop({"--port"}), "--port"},
        BadFlagCase{"UnknownFlag", withShop({"--bogus", "x"}), "unknown flag: --bogus"},
        BadFlagCase{"MissingPolicies", {"--workload-namespace", "shop"}, "--policies"},
        BadFlagCase{
            "MissingWorkloadNamespace", {"--policies", fixture("shop")}, "--workload-namespace"},
        BadFlagCase{"NoFlags", {}, "--policies"},
        BadFlagCase{"TcpWithMethod", withShop({"--tcp", "--method", "GET"}), "--method"},
        BadFlagCase{"TcpWithPath", withShop({"--tcp", "--path", "/x"}), "--path"},
        BadFlagCase{"TcpWithHost", withShop({"--tcp", "--host", "a.example"}), "--host"},
        BadFlagCase{"TcpWithHeader", withShop({"--tcp", "--header", "a: b"}), "--header"},
        BadFlagCase{"TcpWithValue", withShop({"--tcp=yes"}), "--tcp"},
        BadFlagCase{"HeaderWithoutColon", withShop({"--header", "x-tenant a"}), "--header"},
        BadFlagCase{"HeaderWithoutName", withShop({"--header", ": a"}), "--header"},
        BadFlagCase{"OutputYaml", withShop({"--output", "yaml"}), "--output"},
        BadFlagCase{"LabelsWithoutValue", withShop({"--workload-labels", "app"}),
                    "--workload-labels"},
        BadFlagCase{"RepeatedPort", withShop({"--port", "80", "--port", "81"}), "--port"},
        BadFlagCase{"UnexpectedArgument", withShop({"extra"}), "extra"}),
    [](const ::testing::TestParamInfo<BadFlagCase>& info) { return info.param.name; });

// --- authz validate -------------------------------------------------------------------------

TEST(PalisadectlTest, AuthzValidate_ExamplesDirectory_ExitsZero) {
  RunResult r = run({"authz", "validate", examplesDir()});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_THAT(r.out, HasSubstr("valid"));
  for (const std::string& l : lines(r.err)) {
    EXPECT_THAT(l, HasSubstr(": warning: ")) << "only warnings allowed: " << l;
  }
}

TEST(PalisadectlTest, AuthzValidate_CleanDirectory_ExitsZeroWithoutWarnings) {
  RunResult r = run({"authz", "validate", fixture("shop")});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_THAT(r.out, HasSubstr(fixture("shop")));
  EXPECT_THAT(r.out, HasSubstr("valid"));
  EXPECT_EQ(r.err, "");
}

TEST(PalisadectlTest, AuthzValidate_ValidFile_ExitsZero) {
  for (const char* name : {"mtls.yaml", "root_namespace.yaml", "tcp.yaml"}) {
    SCOPED_TRACE(name);
    RunResult r = run({"authz", "validate", fixture(name)});
    EXPECT_EQ(r.exit_code, 0) << r.dump();
    EXPECT_THAT(r.out, HasSubstr("valid"));
  }
}

TEST(PalisadectlTest, AuthzValidate_FileWithSeveralErrors_ReportsEachWithLineAndColumn) {
  RunResult r = run({"authz", "validate", fixture("invalid/errors.yaml")});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_THAT(r.out, Not(HasSubstr(": valid")));
  EXPECT_THAT(r.out, HasSubstr("errors.yaml: 5 error(s), 0 warning(s)\n"));
  expectEveryErrorsYamlDiagnostic(r);
}

TEST(PalisadectlTest, AuthzValidate_YamlSyntaxError_ReportedAsFileLineCol) {
  const std::string file = fixture("invalid/syntax.yaml");
  RunResult r = run({"authz", "validate", file});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  auto found = diagnosticLines(r.err, file);
  ASSERT_EQ(found.size(), 1u) << r.dump();
  EXPECT_TRUE(isFileLineColLine(found[0])) << found[0];
  EXPECT_THAT(found[0], HasSubstr("yaml"));
}

TEST(PalisadectlTest, AuthzValidate_DirectoryWithErrorsInSeveralFiles_ReportsAll) {
  RunResult r = run({"authz", "validate", fixture("invalid")});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  expectEveryErrorsYamlDiagnostic(r);
  EXPECT_EQ(diagnosticLines(r.err, fixture("invalid/syntax.yaml")).size(), 1u) << r.dump();
}

TEST(PalisadectlTest, AuthzValidate_MissingPath_ExitsTwo) {
  const std::string missing = fixture("does-not-exist");
  RunResult r = run({"authz", "validate", missing});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_THAT(r.err, HasSubstr(missing));
}

TEST(PalisadectlTest, AuthzValidate_NoArgument_ExitsTwo) {
  RunResult r = run({"authz", "validate"});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("FILE_OR_DIR"));
}

TEST(PalisadectlTest, AuthzValidate_TwoArguments_ExitsTwo) {
  RunResult r = run({"authz", "validate", fixture("shop"), fixture("mtls.yaml")});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
}

// warnings.yaml holds four valid policies, each with one trap; warnings keep exit 0.
class AuthzValidateWarningsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    result_ = new RunResult(run({"authz", "validate", fixture("warnings.yaml")}));
  }
  static void TearDownTestSuite() {
    delete result_;
    result_ = nullptr;
  }
  static std::string warningAt(const std::string& line_col) {
    return lineStartingWith(result_->err,
                            fixture("warnings.yaml") + ":" + line_col + ": warning: ");
  }
  static RunResult* result_;
};

RunResult* AuthzValidateWarningsTest::result_ = nullptr;

TEST_F(AuthzValidateWarningsTest, AuthzValidate_WarningsOnly_ExitsZeroAndReportsEveryOne) {
  EXPECT_EQ(result_->exit_code, 0) << result_->dump();
  EXPECT_THAT(result_->out, HasSubstr("valid"));
  auto found = diagnosticLines(result_->err, fixture("warnings.yaml"));
  EXPECT_EQ(found.size(), 4u) << result_->dump();
  for (const std::string& l : found) {
    EXPECT_TRUE(isFileLineColLine(l)) << l;
    EXPECT_THAT(l, HasSubstr(": warning: "));
  }
}

TEST_F(AuthzValidateWarningsTest, AuthzValidate_PrincipalWithSpiffeScheme_Warns) {
  std::string w = warningAt("12:22");
  EXPECT_THAT(w, HasSubstr("spiffe://cluster.local/ns/lint/sa/client")) << result_->dump();
}

TEST_F(AuthzValidateWarningsTest, AuthzValidate_DenyRuleWithOnlyHttpFields_Warns) {
  std::string w = warningAt("27:9");
  EXPECT_THAT(w, HasSubstr("lint/deny-delete")) << result_->dump();
  EXPECT_THAT(w, HasSubstr("methods"));
}

TEST_F(AuthzValidateWarningsTest, AuthzValidate_HostWithoutPortWildcard_Warns) {
  std::string w = warningAt("39:17");
  EXPECT_THAT(w, HasSubstr("api.lint.example")) << result_->dump();
  EXPECT_THAT(w, HasSubstr("api.lint.example:*"));
}

TEST_F(AuthzValidateWarningsTest, AuthzValidate_AllowPolicyWithOnlyHttpRules_Warns) {
  std::string w = warningAt("47:3");
  EXPECT_THAT(w, HasSubstr("lint/http-only-allow")) << result_->dump();
  EXPECT_THAT(w, HasSubstr("TCP"));
}

TEST_F(AuthzValidateWarningsTest, AuthzValidate_AllowPolicyWithOneTcpRule_NoAllowWarning) {
  // lint/host-without-port also has a namespaces-only rule, so TCP is still allowed.
  EXPECT_THAT(result_->err, Not(HasSubstr("ALLOW policy lint/host-without-port")))
      << result_->dump();
}

using AuthzValidateTempTest = TempDirTest;

TEST_F(AuthzValidateTempTest, AuthzValidate_HostAlsoListedWithPortWildcard_NoHostWarning) {
  const std::string file = writeFile("hosts.yaml", R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: hosts
  namespace: web
spec:
  action: ALLOW
  rules:
  - to:
    - operation:
        hosts: ["api.web.example", "api.web.example:*"]
        ports: ["8080"]
  - from:
    - source:
        namespaces: ["web"]
)");
  RunResult r = run({"authz", "validate", file});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_THAT(r.err, Not(HasSubstr("host \"api.web.example\""))) << r.dump();
}

TEST_F(AuthzValidateTempTest, AuthzValidate_DenyRuleRestrictedByPort_NoWarning) {
  const std::string file = writeFile("deny.yaml", R"(apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: deny-delete
  namespace: web
spec:
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["DELETE"]
        ports: ["8080"]
)");
  RunResult r = run({"authz", "validate", file});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.err, "");
}

TEST_F(AuthzValidateTempTest, AuthzValidate_ErrorsAndWarningsTogether_ExitsTwo) {
  const std::string file = writeFile("mixed.yaml", R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: mixed
  namespace: web
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["spiffe://cluster.local/ns/web/sa/a"]
        ipBlocks: ["not-an-ip"]
)");
  RunResult r = run({"authz", "validate", file});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_NE(lineStartingWith(r.err, file + ":12:20: "), "") << r.dump();
}

TEST_F(AuthzValidateTempTest, AuthzValidate_DirectoryReadsYamlAndYmlOnly) {
  writeFile("a.yaml", R"(apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: a
spec:
  mtls:
    mode: STRICT
)");
  writeFile("b.yml", R"(apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: b
spec:
  mtls:
    mode: PERMISSIVE
)");
  writeFile("notes.txt", "this: [is not: a policy\n");
  RunResult r = run({"authz", "validate", dir_.string()});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_THAT(r.out, HasSubstr("2 PeerAuthentication"));
  EXPECT_EQ(r.err, "");
}

// --- help and command dispatch --------------------------------------------------------------

struct HelpCase {
  std::string name;
  std::vector<std::string> command;  // the command words, without --help
  std::string usage;                 // a line of the Usage: section
  std::vector<std::string> flags;    // in the Flags: section
  std::vector<std::string> subcommands;
};

class HelpTest : public ::testing::TestWithParam<HelpCase> {};

TEST_P(HelpTest, Help_Command_ExitsZeroWithUsageAndFlags) {
  for (const char* help_flag : {"--help", "-h"}) {
    SCOPED_TRACE(help_flag);
    std::vector<std::string> args = GetParam().command;
    args.emplace_back(help_flag);
    RunResult r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.dump();
    EXPECT_EQ(r.err, "");
    EXPECT_THAT(r.out, HasSubstr("Usage:\n  " + GetParam().usage)) << r.dump();
    EXPECT_THAT(r.out, HasSubstr("Flags:\n"));
    EXPECT_THAT(r.out, HasSubstr("-h, --help"));
    for (const std::string& f : GetParam().flags) {
      EXPECT_THAT(r.out, HasSubstr(f)) << "flag missing from help";
    }
    for (const std::string& c : GetParam().subcommands) {
      EXPECT_THAT(r.out, HasSubstr("\n  " + c + " ")) << "subcommand missing from help";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    PalisadectlTest, HelpTest,
    ::testing::Values(
        HelpCase{"Root", {}, "palisadectl [command]", {}, {"authz", "spiffe"}},
        HelpCase{"Authz", {"authz"}, "palisadectl authz [command]", {}, {"check", "validate"}},
        HelpCase{
            "AuthzCheck",
            {"authz", "check"},
            "palisadectl authz check --policies FILE_OR_DIR --workload-namespace NS",
            {"--policies FILE_OR_DIR", "--workload-namespace NS", "--workload-labels",
             "--root-namespace NS", "--source SPIFFE_ID", "--source-ip IP", "--port N", "--host H",
             "--method M", "--path P", "--header 'Name: value'", "--sni S", "--tcp", "--output"},
            {}},
        HelpCase{"AuthzValidate",
                 {"authz", "validate"},
                 "palisadectl authz validate FILE_OR_DIR",
                 {},
                 {}},
        HelpCase{"Spiffe", {"spiffe"}, "palisadectl spiffe [command]", {}, {"parse"}},
        HelpCase{"SpiffeParse", {"spiffe", "parse"}, "palisadectl spiffe parse ID", {}, {}}),
    [](const ::testing::TestParamInfo<HelpCase>& info) { return info.param.name; });

TEST(PalisadectlTest, Help_HelpWordBeforeCommand_SameAsHelpFlag) {
  const std::vector<std::vector<std::string>> commands = {
      {}, {"authz"}, {"authz", "check"}, {"authz", "validate"}, {"spiffe", "parse"}};
  for (const auto& command : commands) {
    std::vector<std::string> with_word = {"help"};
    with_word.insert(with_word.end(), command.begin(), command.end());
    std::vector<std::string> with_flag = command;
    with_flag.emplace_back("--help");
    SCOPED_TRACE(::testing::PrintToString(with_word));
    RunResult word = run(with_word);
    RunResult flag = run(with_flag);
    EXPECT_EQ(word.exit_code, 0) << word.dump();
    EXPECT_THAT(word.out, HasSubstr("Usage:"));
    EXPECT_EQ(word.out, flag.out);
  }
}

TEST(PalisadectlTest, Help_GroupWithoutSubcommand_PrintsHelp) {
  RunResult r = run({"authz"});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_THAT(r.out, HasSubstr("Usage:"));
}

struct UnknownCommandCase {
  std::string name;
  std::vector<std::string> args;
};

class UnknownCommandTest : public ::testing::TestWithParam<UnknownCommandCase> {};

TEST_P(UnknownCommandTest, UnknownCommand_ExitsTwo) {
  RunResult r = run(GetParam().args);
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("unknown command \"bogus\""));
}

INSTANTIATE_TEST_SUITE_P(PalisadectlTest, UnknownCommandTest,
                         ::testing::Values(UnknownCommandCase{"Root", {"bogus"}},
                                           UnknownCommandCase{"UnderAuthz", {"authz", "bogus"}},
                                           UnknownCommandCase{"UnderSpiffe", {"spiffe", "bogus"}},
                                           UnknownCommandCase{"AfterHelpWord", {"help", "bogus"}}),
                         [](const ::testing::TestParamInfo<UnknownCommandCase>& info) {
                           return info.param.name;
                         });

TEST(PalisadectlTest, UnknownRootFlag_ExitsTwo) {
  RunResult r = run({"--bogus"});
  EXPECT_EQ(r.exit_code, 2) << r.dump();
  EXPECT_THAT(r.err, HasSubstr("unknown flag: --bogus"));
}

}  // namespace
}  // namespace palisade::cli

namespace palisade::cli {
namespace {

// "Why was this denied?": with no ALLOW policy matching, every ALLOW rule is listed with the
// fields the request failed, as the policy names them.
TEST(PalisadectlTest, AuthzCheck_NoAllowMatched_ExplainsEachRule) {
  RunResult r =
      run(examplesCheck({"--workload-namespace", "foo", "--workload-labels", "app=httpbin",
                         "--source", "spiffe://cluster.local/ns/foo/sa/sleep", "--method", "POST",
                         "--path", "/post", "--port", "8000"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  EXPECT_EQ(firstLine(r.out), "DENY");
  EXPECT_THAT(r.out, HasSubstr("decided by: no ALLOW policy matched (foo/httpbin)"));
  EXPECT_THAT(r.out, HasSubstr("foo/httpbin rule 0 (" + std::string(PALISADE_SOURCE_DIR) +
                               "/deploy/examples/httpbin.yaml:13:5): not matched: "
                               "to[0].operation.methods, to[0].operation.paths\n"));
  EXPECT_THAT(r.out, HasSubstr("foo/httpbin rule 1 (" + std::string(PALISADE_SOURCE_DIR) +
                               "/deploy/examples/httpbin.yaml:20:5): not matched: "
                               "from[0].source.principals, when[0] "
                               "(request.headers[x-api-version])\n"));
}

TEST(PalisadectlTest, AuthzCheckJson_NoAllowMatched_ListsMismatchesAndTcpDrops) {
  RunResult r = run(examplesCheck(
      {"--workload-namespace", "foo", "--workload-labels", "app=httpbin", "--source",
       "spiffe://cluster.local/ns/foo/sa/sleep", "--tcp", "--port", "9000", "--output", "json"}));
  EXPECT_EQ(r.exit_code, 1) << r.dump();
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("allowRulesNotMatched")) << r.out;
  const auto& rules = j["allowRulesNotMatched"];
  ASSERT_EQ(rules.size(), 2u) << r.out;
  for (const auto& rule : rules) {
    EXPECT_EQ(rule["name"], "httpbin");
    EXPECT_EQ(rule["droppedOnTcp"], true);
    EXPECT_TRUE(rule["mismatches"].empty());
  }
}

}  // namespace
}  // namespace palisade::cli

namespace palisade::cli {
namespace {

TEST(PalisadectlTest, Help_HelpWordBetweenCommands_SameAsHelpFlag) {
  RunResult word = run({"spiffe", "help", "parse"});
  RunResult flag = run({"spiffe", "parse", "--help"});
  EXPECT_EQ(word.exit_code, 0) << word.dump();
  EXPECT_EQ(word.out, flag.out);
}

TEST(PalisadectlTest, AuthzCheck_MissingRequiredFlag_NamesIt) {
  RunResult no_ns = run({"authz", "check", "--policies", "x.yaml"});
  EXPECT_EQ(no_ns.exit_code, 2) << no_ns.dump();
  EXPECT_THAT(no_ns.err, HasSubstr("required flag --workload-namespace is missing"));
  RunResult no_policies = run({"authz", "check", "--workload-namespace", "foo"});
  EXPECT_EQ(no_policies.exit_code, 2) << no_policies.dump();
  EXPECT_THAT(no_policies.err, HasSubstr("required flag --policies is missing"));
}

}  // namespace
}  // namespace palisade::cli

namespace palisade::cli {
namespace {

TEST(PalisadectlTest, AuthzValidate_ServiceEntriesAndWorkloadEntries_CountedAndValid) {
  const std::string dir = std::string(PALISADE_TESTDATA_DIR) + "/cli/services";
  RunResult r = run({"authz", "validate", dir});
  EXPECT_EQ(r.exit_code, 0) << r.dump();
  EXPECT_EQ(r.out, dir +
                       ": 0 AuthorizationPolicy, 0 PeerAuthentication, 1 ServiceEntry, 1 "
                       "WorkloadEntry: valid\n");
  EXPECT_EQ(r.err, "");
}

}  // namespace
}  // namespace palisade::cli
