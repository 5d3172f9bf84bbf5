#include "policy/peer_authn.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

// effectiveMtls against Istio's ComposePeerAuthentication
// (pilot/pkg/security/authn/policy_applier.go) and getConfigsForWorkload
// (pilot/pkg/model/authentication.go):
// - mesh level: root namespace, no selector (or no labels); namespace level: the workload's
//   namespace, no selector; workload level: "the one with selector and not in root namespace",
//   whose labels are a subset of the workload's.
// - "When there are more than one policy in the same scope ..., the oldest one win."
//   (creationTimestamp; equal times are ordered by name, as sortConfigByCreationTime does).
// - "UNSET will be replaced with the setting from the parent": mesh, then namespace, then
//   workload; an UNSET port inherits the workload's result. The default is PERMISSIVE.

namespace palisade::policy {
namespace {

constexpr const char* kRoot = "istio-system";

using Labels = std::map<std::string, std::string>;
using Ports = std::map<std::uint32_t, MtlsMode>;

PeerAuthentication pa(const std::string& ns, const std::string& name, MtlsMode mode,
                      std::optional<Labels> selector = std::nullopt, Ports ports = {},
                      const std::string& created = "2024-01-01T00:00:00Z") {
  PeerAuthentication p;
  p.api_version = "security.istio.io/v1";
  p.metadata.name = name;
  p.metadata.ns = ns;
  p.metadata.creation_timestamp = created;
  if (selector) {
    p.selector = WorkloadSelector{*selector, {}};
  }
  p.mode = mode;
  p.port_level_mtls = std::move(ports);
  return p;
}

struct Row {
  std::string name;
  std::vector<PeerAuthentication> policies;
  std::string ns;
  Labels labels;
  MtlsMode want_mode;
  Ports want_ports;
  // Names of the policies chosen at each level ("" for none).
  std::string want_mesh;
  std::string want_ns;
  std::string want_workload;
};

std::string nameOf(const PeerAuthentication* p) { return p ? p->metadata.name : ""; }

// Ports with readable modes, for failure messages.
std::map<std::uint32_t, std::string> modeNames(const Ports& ports) {
  std::map<std::uint32_t, std::string> out;
  for (const auto& [port, mode] : ports) {
    out[port] = mtlsModeName(mode);
  }
  return out;
}

void check(const Row& row) {
  SCOPED_TRACE(row.name);
  PolicyBundle bundle;
  bundle.peer_authentications = row.policies;
  EffectiveMtls got = effectiveMtls(bundle, row.ns, row.labels, kRoot);
  EXPECT_EQ(mtlsModeName(got.mode), std::string(mtlsModeName(row.want_mode)));
  EXPECT_EQ(modeNames(got.ports), modeNames(row.want_ports));
  EXPECT_EQ(nameOf(got.mesh), row.want_mesh);
  EXPECT_EQ(nameOf(got.ns), row.want_ns);
  EXPECT_EQ(nameOf(got.workload), row.want_workload);
}

const MtlsMode kUnset = MtlsMode::kUnset;
const MtlsMode kDisable = MtlsMode::kDisable;
const MtlsMode kPermissive = MtlsMode::kPermissive;
const MtlsMode kStrict = MtlsMode::kStrict;
const Labels kWeb = {{"app", "web"}};

TEST(PeerAuthnTest, Levels) {
  const std::vector<Row> rows = {
      {"no policies: permissive", {}, "foo", kWeb, kPermissive, {}, "", "", ""},
      {"mesh strict", {pa(kRoot, "mesh", kStrict)}, "foo", kWeb, kStrict, {}, "mesh", "", ""},
      {"mesh applies in the root namespace too",
       {pa(kRoot, "mesh", kStrict)},
       kRoot,
       kWeb,
       kStrict,
       {},
       "mesh",
       "",
       ""},
      {"namespace overrides mesh",
       {pa(kRoot, "mesh", kStrict), pa("foo", "ns", kDisable)},
       "foo",
       kWeb,
       kDisable,
       {},
       "mesh",
       "ns",
       ""},
      {"namespace policy of another namespace",
       {pa(kRoot, "mesh", kStrict), pa("bar", "ns", kDisable)},
       "foo",
       kWeb,
       kStrict,
       {},
       "mesh",
       "",
       ""},
      {"workload overrides namespace",
       {pa(kRoot, "mesh", kStrict), pa("foo", "ns", kDisable), pa("foo", "wl", kPermissive, kWeb)},
       "foo",
       kWeb,
       kPermissive,
       {},
       "mesh",
       "ns",
       "wl"},
      {"workload policy that does not select",
       {pa("foo", "ns", kStrict), pa("foo", "wl", kDisable, Labels{{"app", "api"}})},
       "foo",
       kWeb,
       kStrict,
       {},
       "",
       "ns",
       ""},
      {"workload policy of another namespace",
       {pa("foo", "ns", kStrict), pa("bar", "wl", kDisable, kWeb)},
       "foo",
       kWeb,
       kStrict,
       {},
       "",
       "ns",
       ""},
      {"selector labels are a subset of the workload's",
       {pa("foo", "wl", kStrict, kWeb)},
       "foo",
       Labels{{"app", "web"}, {"version", "v1"}},
       kStrict,
       {},
       "",
       "",
       "wl"},
      {"selector with a label the workload lacks",
       {pa("foo", "wl", kStrict, Labels{{"app", "web"}, {"version", "v2"}})},
       "foo",
       Labels{{"app", "web"}, {"version", "v1"}},
       kPermissive,
       {},
       "",
       "",
       ""},
      // An empty selector is namespace-wide ("spec.Selector == nil ||
      // len(spec.Selector.MatchLabels) == 0").
      {"empty selector is namespace level",
       {pa("foo", "ns", kStrict, Labels{})},
       "foo",
       kWeb,
       kStrict,
       {},
       "",
       "ns",
       ""},
      {"empty selector in the root namespace is mesh level",
       {pa(kRoot, "mesh", kStrict, Labels{})},
       "foo",
       kWeb,
       kStrict,
       {},
       "mesh",
       "",
       ""},
  };
  for (const Row& row : rows) {
    check(row);
  }
}

TEST(PeerAuthnTest, UnsetInherits) {
  const std::vector<Row> rows = {
      {"all unset: permissive",
       {pa(kRoot, "mesh", kUnset), pa("foo", "ns", kUnset), pa("foo", "wl", kUnset, kWeb)},
       "foo",
       kWeb,
       kPermissive,
       {},
       "mesh",
       "ns",
       "wl"},
      {"namespace unset inherits mesh",
       {pa(kRoot, "mesh", kStrict), pa("foo", "ns", kUnset)},
       "foo",
       kWeb,
       kStrict,
       {},
       "mesh",
       "ns",
       ""},
      {"workload unset inherits namespace",
       {pa(kRoot, "mesh", kStrict), pa("foo", "ns", kDisable), pa("foo", "wl", kUnset, kWeb)},
       "foo",
       kWeb,
       kDisable,
       {},
       "mesh",
       "ns",
       "wl"},
      {"workload unset skips an unset namespace up to mesh",
       {pa(kRoot, "mesh", kStrict), pa("foo", "ns", kUnset), pa("foo", "wl", kUnset, kWeb)},
       "foo",
       kWeb,
       kStrict,
       {},
       "mesh",
       "ns",
       "wl"},
      {"mesh unset, namespace permissive, workload strict",
       {pa(kRoot, "mesh", kUnset), pa("foo", "ns", kPermissive), pa("foo", "wl", kStrict, kWeb)},
       "foo",
       kWeb,
       kStrict,
       {},
       "mesh",
       "ns",
       "wl"},
  };
  for (const Row& row : rows) {
    check(row);
  }
}

TEST(PeerAuthnTest, PortLevelMtls) {
  const std::vector<Row> rows = {
      {"port overrides the workload mode",
       {pa("foo", "wl", kStrict, kWeb, Ports{{8080, kDisable}})},
       "foo",
       kWeb,
       kStrict,
       Ports{{8080, kDisable}},
       "",
       "",
       "wl"},
      {"unset port inherits the workload mode",
       {pa("foo", "wl", kStrict, kWeb, Ports{{8080, kUnset}, {9090, kPermissive}})},
       "foo",
       kWeb,
       kStrict,
       Ports{{8080, kStrict}, {9090, kPermissive}},
       "",
       "",
       "wl"},
      // "UNSET port-level config will be replaced with config from workload-level", which has
      // itself inherited from the namespace.
      {"unset port under an unset workload inherits the namespace",
       {pa(kRoot, "mesh", kStrict), pa("foo", "ns", kPermissive),
        pa("foo", "wl", kUnset, kWeb, Ports{{8080, kUnset}})},
       "foo",
       kWeb,
       kPermissive,
       Ports{{8080, kPermissive}},
       "mesh",
       "ns",
       "wl"},
      {"unset port with nothing above is permissive",
       {pa("foo", "wl", kUnset, kWeb, Ports{{8080, kUnset}})},
       "foo",
       kWeb,
       kPermissive,
       Ports{{8080, kPermissive}},
       "",
       "",
       "wl"},
      {"ports of a workload policy that does not select",
       {pa("foo", "ns", kStrict),
        pa("foo", "wl", kStrict, Labels{{"app", "api"}}, Ports{{8080, kDisable}})},
       "foo",
       kWeb,
       kStrict,
       {},
       "",
       "ns",
       ""},
  };
  for (const Row& row : rows) {
    check(row);
  }

  PolicyBundle bundle;
  bundle.peer_authentications = {
      pa("foo", "ns", kPermissive),
      pa("foo", "wl", kStrict, kWeb, Ports{{8080, kDisable}, {8443, kUnset}})};
  EffectiveMtls got = effectiveMtls(bundle, "foo", kWeb, kRoot);
  EXPECT_EQ(got.forPort(8080), kDisable);
  EXPECT_EQ(got.forPort(8443), kStrict);
  EXPECT_EQ(got.forPort(9000), kStrict);
  EXPECT_EQ(got.forPort(0), kStrict);
}

TEST(PeerAuthnTest, OldestWins) {
  const std::string older = "2023-06-01T00:00:00Z";
  const std::string newer = "2024-06-01T00:00:00Z";
  const std::vector<Row> rows = {
      {"mesh: oldest first in the list",
       {pa(kRoot, "old", kStrict, std::nullopt, {}, older),
        pa(kRoot, "new", kDisable, std::nullopt, {}, newer)},
       "foo",
       kWeb,
       kStrict,
       {},
       "old",
       "",
       ""},
      {"mesh: oldest last in the list",
       {pa(kRoot, "new", kDisable, std::nullopt, {}, newer),
        pa(kRoot, "old", kStrict, std::nullopt, {}, older)},
       "foo",
       kWeb,
       kStrict,
       {},
       "old",
       "",
       ""},
      {"namespace: oldest wins",
       {pa("foo", "new", kStrict, std::nullopt, {}, newer),
        pa("foo", "old", kDisable, std::nullopt, {}, older)},
       "foo",
       kWeb,
       kDisable,
       {},
       "",
       "old",
       ""},
      {"workload: oldest wins even with narrower labels",
       {pa("foo", "new", kStrict, Labels{{"app", "web"}, {"tier", "front"}}, {}, newer),
        pa("foo", "old", kDisable, kWeb, {}, older)},
       "foo",
       Labels{{"app", "web"}, {"tier", "front"}},
       kDisable,
       {},
       "",
       "",
       "old"},
      {"workload: the oldest's ports, not the newer's",
       {pa("foo", "new", kStrict, kWeb, Ports{{80, kStrict}}, newer),
        pa("foo", "old", kStrict, kWeb, Ports{{81, kDisable}}, older)},
       "foo",
       kWeb,
       kStrict,
       Ports{{81, kDisable}},
       "",
       "",
       "old"},
      {"oldest unset still wins and inherits",
       {pa(kRoot, "mesh", kStrict), pa("foo", "new", kDisable, std::nullopt, {}, newer),
        pa("foo", "old", kUnset, std::nullopt, {}, older)},
       "foo",
       kWeb,
       kStrict,
       {},
       "mesh",
       "old",
       ""},
      {"same time: by name",
       {pa("foo", "b", kStrict, std::nullopt, {}, older),
        pa("foo", "a", kDisable, std::nullopt, {}, older)},
       "foo",
       kWeb,
       kDisable,
       {},
       "",
       "a",
       ""},
  };
  for (const Row& row : rows) {
    check(row);
  }
}

// ComposePeerAuthentication keeps a selector policy only "else if cfg.Namespace !=
// rootNamespace": a PeerAuthentication with a selector in the root namespace is never a
// workload-level policy, not for workloads elsewhere and not for workloads in the root
// namespace ("Workload-level configs should not be in root namespace ... they will be safely
// ignored in this function").
TEST(PeerAuthnTest, RootNamespaceSelectorPolicyIsIgnored) {
  const std::vector<Row> rows = {
      {"workload in another namespace",
       {pa(kRoot, "mesh", kStrict), pa(kRoot, "root-wl", kDisable, kWeb)},
       "foo",
       kWeb,
       kStrict,
       {},
       "mesh",
       "",
       ""},
      {"workload in the root namespace",
       {pa(kRoot, "mesh", kStrict), pa(kRoot, "root-wl", kDisable, kWeb, Ports{{80, kDisable}})},
       kRoot,
       kWeb,
       kStrict,
       {},
       "mesh",
       "",
       ""},
  };
  for (const Row& row : rows) {
    check(row);
  }
}

TEST(PeerAuthnTest, RootNamespaceIsAParameter) {
  PolicyBundle bundle;
  bundle.peer_authentications = {pa("mesh-root", "mesh", kStrict), pa(kRoot, "x", kDisable)};
  EffectiveMtls got = effectiveMtls(bundle, "foo", kWeb, "mesh-root");
  EXPECT_EQ(got.mode, kStrict);
  EXPECT_EQ(nameOf(got.mesh), "mesh");
  EXPECT_EQ(got.ns, nullptr);
}

}  // namespace
}  // namespace palisade::policy
