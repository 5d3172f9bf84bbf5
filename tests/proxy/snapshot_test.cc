#include "proxy/snapshot.h"

#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "proxy/socket_util.h"
#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// What a worker serves from: our own SVID checked against our own bundles, the policies that
// select this workload with its PeerAuthentication mode, and the outbound routes built from
// ServiceEntry and WorkloadEntry (ports, endpoints, secure naming, lookup by destination).

namespace palisade::proxy {
namespace {

using common::test_certs::aroundNow;
using common::test_certs::caSpec;
using common::test_certs::CertSpec;
using common::test_certs::Credential;
using common::test_certs::kDay;
using common::test_certs::kHour;
using common::test_certs::leafSpec;
using common::test_certs::makeCredential;
using common::test_env::TempDir;

policy::IpAddress ip(const char* text) {
  auto r = policy::IpAddress::parse(text);
  EXPECT_TRUE(r.ok()) << text;
  return r.ok() ? *r : policy::IpAddress();
}

std::vector<std::string> endpointTexts(const ServiceRoute& r) {
  std::vector<std::string> out;
  for (const Endpoint& e : r.endpoints) {
    out.push_back(e.text);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Identity. loadIdentity verifies at the wall clock (it has no clock to inject), so these
// certificates are valid around the real now rather than the fixtures' kNow.

class IdentityTest : public ::testing::Test {
 protected:
  static constexpr const char* kId = "spiffe://example.org/ns/foo/sa/web";

  void SetUp() override {
    root_ =
        makeCredential(aroundNow(caSpec("example.org", "example.org root"), kDay, kDay), nullptr);
    dir_.write("bundle.pem", root_.certPem());
    config_.trust_bundles.push_back({dir_.file("bundle.pem"), std::nullopt, {}});
  }

  // Writes chain.pem (the leaf, then `chain`) and key.pem, and points the config at them.
  void useSvid(const Credential& leaf, const std::vector<const Credential*>& chain = {}) {
    std::string pem = leaf.certPem();
    for (const Credential* c : chain) {
      pem += c->certPem();
    }
    config_.certificate_chain = dir_.write("chain.pem", pem);
    config_.private_key = dir_.write("key.pem", leaf.keyPem());
  }

  TempDir dir_;
  Credential root_;
  BootstrapConfig config_;
};

TEST_F(IdentityTest, AcceptsAGoodSvidAndReportsIt) {
  const CertSpec spec = aroundNow(leafSpec(kId), kHour, kHour);
  Credential leaf = makeCredential(spec, &root_);
  useSvid(leaf);
  auto id = loadIdentity(config_, 7);
  ASSERT_TRUE(id.ok()) << id.error().message;
  const Identity& got = **id;
  EXPECT_EQ(got.version, 7u);
  ASSERT_NE(got.id, nullptr);
  EXPECT_EQ(got.id->uri(), kId);
  EXPECT_EQ(got.serial, common::serialHex(leaf.cert.get()));
  EXPECT_FALSE(got.serial.empty());
  EXPECT_EQ(got.not_before, spec.not_before);
  EXPECT_EQ(got.not_after, spec.not_after);
  EXPECT_EQ(got.trust_domains, std::vector<std::string>{"example.org"});
  EXPECT_TRUE(got.chain_serials.empty());
  EXPECT_NE(got.server, nullptr);
  EXPECT_NE(got.client, nullptr);
}

TEST_F(IdentityTest, ReportsTheIntermediatesSentWithTheLeaf) {
  CertSpec ca = aroundNow(caSpec("example.org", "example.org intermediate"), kDay, kDay);
  Credential intermediate = makeCredential(ca, &root_);
  Credential leaf = makeCredential(aroundNow(leafSpec(kId), kHour, kHour), &intermediate);
  useSvid(leaf, {&intermediate});
  auto id = loadIdentity(config_, 1);
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ((*id)->chain_serials,
            std::vector<std::string>{common::serialHex(intermediate.cert.get())});
}

TEST_F(IdentityTest, RefusesAKeyThatDoesNotMatch) {
  Credential leaf = makeCredential(aroundNow(leafSpec(kId), kHour, kHour), &root_);
  Credential other = makeCredential(aroundNow(leafSpec(kId), kHour, kHour), &root_);
  config_.certificate_chain = dir_.write("chain.pem", leaf.certPem());
  config_.private_key = dir_.write("key.pem", other.keyPem());
  auto id = loadIdentity(config_, 1);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message.find("the key does not match"), std::string::npos)
      << id.error().message;
}

TEST_F(IdentityTest, RefusesAnSvidOfAnotherCa) {
  // Same trust domain and subject, another key: a CA we do not trust.
  Credential stranger =
      makeCredential(aroundNow(caSpec("example.org", "example.org root"), kDay, kDay), nullptr);
  useSvid(makeCredential(aroundNow(leafSpec(kId), kHour, kHour), &stranger));
  auto id = loadIdentity(config_, 1);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message.find("does not verify against our trust bundles"), std::string::npos)
      << id.error().message;
  EXPECT_NE(id.error().message.find(config_.certificate_chain), std::string::npos)
      << id.error().message;
}

TEST_F(IdentityTest, RefusesAnExpiredSvid) {
  useSvid(makeCredential(aroundNow(leafSpec(kId), 2 * kHour, -kHour), &root_));
  auto id = loadIdentity(config_, 1);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message.find("does not verify"), std::string::npos) << id.error().message;
}

TEST_F(IdentityTest, AnUnreadableBundleIsNamed) {
  useSvid(makeCredential(aroundNow(leafSpec(kId), kHour, kHour), &root_));
  config_.trust_bundles.push_back({dir_.file("missing.pem"), std::nullopt, {}});
  auto id = loadIdentity(config_, 1);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message.rfind(dir_.file("missing.pem") + ": ", 0), 0u) << id.error().message;
}

// ---------------------------------------------------------------------------------------------
// Policies

constexpr const char* kPolicies =
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: allow-web, namespace: foo}\n"
    "spec:\n"
    "  selector: {matchLabels: {app: web}}\n"
    "  action: ALLOW\n"
    "  rules: [{from: [{source: {namespaces: [bar]}}]}]\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: deny-all-foo, namespace: foo}\n"
    "spec:\n"
    "  action: DENY\n"
    "  rules: [{to: [{operation: {paths: [/admin]}}]}]\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: other-app, namespace: foo}\n"
    "spec:\n"
    "  selector: {matchLabels: {app: db}}\n"
    "  action: ALLOW\n"
    "  rules: [{}]\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: other-ns, namespace: bar}\n"
    "spec:\n"
    "  action: ALLOW\n"
    "  rules: [{}]\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: PeerAuthentication\n"
    "metadata: {name: mesh, namespace: istio-system}\n"
    "spec: {mtls: {mode: PERMISSIVE}}\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: PeerAuthentication\n"
    "metadata: {name: foo-strict, namespace: foo}\n"
    "spec: {mtls: {mode: STRICT}}\n";

BootstrapConfig workloadConfig() {
  BootstrapConfig c;
  c.ns = "foo";
  c.labels = {{"app", "web"}, {"version", "v1"}};
  return c;
}

TEST(PoliciesTest, SelectsThePoliciesOfTheWorkloadAndItsMtlsMode) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("policies"));
  dir.write("policies/all.yaml", kPolicies);
  BootstrapConfig c = workloadConfig();
  c.policies = dir.file("policies");
  policy::LoadResult out;
  auto p = loadPolicies(c, 4, out);
  ASSERT_NE(p, nullptr) << out.errorText();
  EXPECT_EQ(p->version, 4u);
  EXPECT_EQ(p->set->size(), 4u);
  EXPECT_EQ(p->selected, 2u) << "allow-web and deny-all-foo; not other-app nor other-ns";
  ASSERT_EQ(p->authz->allow().size(), 1u);
  EXPECT_EQ(p->authz->allow()[0]->name, "allow-web");
  ASSERT_EQ(p->authz->deny().size(), 1u);
  EXPECT_EQ(p->authz->deny()[0]->name, "deny-all-foo");
  EXPECT_EQ(p->mtls.mode, policy::MtlsMode::kStrict) << "the namespace policy overrides the mesh";
  ASSERT_NE(p->mtls.ns, nullptr);
  EXPECT_EQ(p->mtls.ns->metadata.name, "foo-strict");
  ASSERT_NE(p->mtls.mesh, nullptr);
  EXPECT_EQ(p->mtls.mesh->metadata.name, "mesh");
}

TEST(PoliciesTest, AnotherWorkloadGetsOtherPolicies) {
  TempDir dir;
  BootstrapConfig c = workloadConfig();
  c.ns = "bar";
  c.policies = dir.write("all.yaml", kPolicies);
  policy::LoadResult out;
  auto p = loadPolicies(c, 1, out);
  ASSERT_NE(p, nullptr) << out.errorText();
  ASSERT_EQ(p->selected, 1u);
  EXPECT_EQ(p->authz->allow()[0]->name, "other-ns");
  EXPECT_EQ(p->mtls.mode, policy::MtlsMode::kPermissive) << "only the mesh policy applies";
  EXPECT_EQ(p->mtls.ns, nullptr);
}

TEST(PoliciesTest, NoPoliciesConfiguredIsAnEmptySet) {
  BootstrapConfig c = workloadConfig();
  policy::LoadResult out;
  auto p = loadPolicies(c, 1, out);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->selected, 0u);
  EXPECT_EQ(p->set->size(), 0u);
  EXPECT_EQ(p->mtls.mode, policy::MtlsMode::kPermissive);
}

TEST(PoliciesTest, ABadPolicyIsRefusedWithItsPlace) {
  TempDir dir;
  BootstrapConfig c = workloadConfig();
  c.policies = dir.write("bad.yaml",
                         "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                         "metadata: {name: p, namespace: foo}\nspec:\n  action: MAYBE\n");
  policy::LoadResult out;
  EXPECT_EQ(loadPolicies(c, 1, out), nullptr);
  EXPECT_EQ(out.errorText(), c.policies +
                                 ":5:11: unknown action \"MAYBE\" (expected ALLOW, DENY or "
                                 "AUDIT)\n");
}

// ---------------------------------------------------------------------------------------------
// Services

constexpr const char* kHttpbin =
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: httpbin, namespace: foo}\n"
    "spec:\n"
    "  hosts: [httpbin.foo.svc.cluster.local, httpbin.example.com]\n"
    "  addresses: [10.96.0.0/16, \"2001:db8::10\"]\n"
    "  location: MESH_INTERNAL\n"
    "  resolution: STATIC\n"
    "  ports:\n"
    "  - {number: 8000, name: http, protocol: HTTP, targetPort: 8080}\n"
    "  - {number: 9000, name: tcp-raw, protocol: tcp}\n"
    "  subjectAltNames: [spiffe://cluster.local/ns/foo/sa/legacy]\n"
    "  endpoints:\n"
    "  - {address: 127.0.0.1, serviceAccount: httpbin, ports: {tcp-raw: 19000}}\n"
    "  - {address: 127.0.0.2}\n";

constexpr const char* kPostgres =
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: postgres, namespace: db}\n"
    "spec:\n"
    "  hosts: [postgres.db.svc.cluster.local]\n"
    "  location: MESH_INTERNAL\n"
    "  resolution: STATIC\n"
    "  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]\n"
    "  workloadSelector: {labels: {app: postgres}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: WorkloadEntry\n"
    "metadata: {name: vm-1, namespace: db}\n"
    "spec:\n"
    "  address: 10.0.0.7\n"
    "  labels: {app: postgres, zone: a}\n"
    "  serviceAccount: pg\n"
    "  ports: {tcp-pg: 15432}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: WorkloadEntry\n"
    "metadata: {name: vm-elsewhere, namespace: other}\n"
    "spec: {address: 10.0.0.8, labels: {app: postgres}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: WorkloadEntry\n"
    "metadata: {name: vm-mysql, namespace: db}\n"
    "spec: {address: 10.0.0.9, labels: {app: mysql}}\n";

class ServicesTest : public ::testing::Test {
 protected:
  std::shared_ptr<const Services> load(const std::string& trust_domain = "example.org") {
    BootstrapConfig c;
    c.services = dir_.file("services");
    out_ = {};
    return loadServices(c, trust_domain, 9, out_);
  }
  void write(const std::string& name, const std::string& yaml) {
    std::filesystem::create_directories(dir_.file("services"));
    dir_.write("services/" + name, yaml);
  }

  TempDir dir_;
  policy::LoadResult out_;
};

TEST_F(ServicesTest, TwoHostsTimesTwoPortsAreFourRoutes) {
  write("httpbin.yaml", kHttpbin);
  auto s = load();
  ASSERT_NE(s, nullptr) << out_.errorText();
  EXPECT_EQ(s->version, 9u);
  ASSERT_EQ(s->routes.size(), 4u);
  struct Want {
    std::string host;
    std::uint16_t port;
    std::string protocol;
    bool opaque;
    std::vector<std::string> endpoints;
  };
  // Endpoint ports: the endpoint's own port for the port's name, else targetPort, else the
  // service port.
  const std::vector<Want> want = {
      {"httpbin.foo.svc.cluster.local", 8000, "HTTP", false, {"127.0.0.1:8080", "127.0.0.2:8080"}},
      {"httpbin.example.com", 8000, "HTTP", false, {"127.0.0.1:8080", "127.0.0.2:8080"}},
      {"httpbin.foo.svc.cluster.local", 9000, "TCP", true, {"127.0.0.1:19000", "127.0.0.2:9000"}},
      {"httpbin.example.com", 9000, "TCP", true, {"127.0.0.1:19000", "127.0.0.2:9000"}},
  };
  for (const Want& w : want) {
    SCOPED_TRACE(w.host + ":" + std::to_string(w.port));
    const ServiceRoute* r = s->find(w.host, w.port);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->host, w.host);
    EXPECT_EQ(r->port, w.port);
    EXPECT_EQ(r->protocol, w.protocol);
    EXPECT_EQ(r->opaque, w.opaque);
    EXPECT_EQ(r->sni, "outbound_." + std::to_string(w.port) + "_._." + w.host);
    EXPECT_EQ(r->vips.size(), 2u);
    EXPECT_EQ(endpointTexts(*r), w.endpoints);
    for (const Endpoint& e : r->endpoints) {
      const Sockaddr a = fromSockaddr(reinterpret_cast<const sockaddr*>(&e.address), e.address_len);
      EXPECT_EQ(a.toString(), e.text) << "the address is the one the text names";
    }
  }
  EXPECT_EQ(s->find("httpbin.example.com", 8080), nullptr) << "targetPort is no service port";
  EXPECT_EQ(s->find("httpbin", 8000), nullptr);
}

TEST_F(ServicesTest, SubjectAltNamesAndServiceAccountAreBothAllowed) {
  write("httpbin.yaml", kHttpbin);
  auto s = load("example.org");
  ASSERT_NE(s, nullptr) << out_.errorText();
  const ServiceRoute* r = s->find("httpbin.foo.svc.cluster.local", 8000);
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->endpoints.size(), 2u);
  EXPECT_EQ(r->endpoints[0].allowed_ids,
            (std::vector<std::string>{"spiffe://cluster.local/ns/foo/sa/legacy",
                                      "spiffe://example.org/ns/foo/sa/httpbin"}))
      << "the service account in the service's namespace and our trust domain";
  EXPECT_EQ(r->endpoints[1].allowed_ids,
            std::vector<std::string>{"spiffe://cluster.local/ns/foo/sa/legacy"})
      << "no service account: only the subjectAltNames";
}

TEST_F(ServicesTest, WorkloadEntriesSelectedByLabelsInTheSameNamespace) {
  write("postgres.yaml", kPostgres);
  auto s = load("cluster.local");
  ASSERT_NE(s, nullptr) << out_.errorText();
  ASSERT_EQ(s->routes.size(), 1u);
  const ServiceRoute& r = s->routes[0];
  EXPECT_EQ(r.host, "postgres.db.svc.cluster.local");
  EXPECT_TRUE(r.opaque);
  EXPECT_TRUE(r.vips.empty());
  EXPECT_EQ(endpointTexts(r), std::vector<std::string>{"10.0.0.7:15432"})
      << "vm-elsewhere is in another namespace, vm-mysql has other labels";
  ASSERT_EQ(r.endpoints.size(), 1u);
  EXPECT_EQ(r.endpoints[0].allowed_ids,
            std::vector<std::string>{"spiffe://cluster.local/ns/db/sa/pg"});
}

TEST_F(ServicesTest, OpaqueProtocolsAreTheServerFirstOnes) {
  struct Row {
    std::string protocol;  // as written
    bool opaque;
  };
  const std::vector<Row> rows = {
      {"TCP", true},   {"TLS", true},   {"MONGO", true},  {"MYSQL", true}, {"REDIS", true},
      {"redis", true}, {"HTTP", false}, {"HTTP2", false}, {"GRPC", false}, {"", false},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.protocol);
    const std::string protocol = row.protocol.empty() ? "" : ", protocol: " + row.protocol;
    write("svc.yaml",
          "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
          "metadata: {name: s, namespace: ns}\nspec:\n  hosts: [s.example.com]\n"
          "  ports: [{number: 7000, name: p" +
              protocol + "}]\n");
    auto s = load();
    ASSERT_NE(s, nullptr) << out_.errorText();
    ASSERT_EQ(s->routes.size(), 1u);
    EXPECT_EQ(s->routes[0].opaque, row.opaque);
  }
}

TEST_F(ServicesTest, FindByDestination) {
  write("httpbin.yaml", kHttpbin);
  write("postgres.yaml", kPostgres);
  auto s = load();
  ASSERT_NE(s, nullptr) << out_.errorText();
  struct Row {
    std::string name;
    const char* ip;
    std::uint16_t port;
    std::string want_host;  // "" for none
    std::uint16_t want_port;
  };
  const std::vector<Row> rows = {
      {"VIP in the CIDR", "10.96.3.4", 8000, "httpbin.foo.svc.cluster.local", 8000},
      {"VIP, other service port", "10.96.0.1", 9000, "httpbin.foo.svc.cluster.local", 9000},
      {"IPv6 VIP", "2001:db8::10", 9000, "httpbin.foo.svc.cluster.local", 9000},
      {"VIP on a port the service lacks", "10.96.3.4", 7000, "", 0},
      {"outside the CIDR", "10.97.0.1", 8000, "", 0},
      {"endpoint by its named port", "127.0.0.1", 19000, "httpbin.foo.svc.cluster.local", 9000},
      {"endpoint by targetPort", "127.0.0.2", 8080, "httpbin.foo.svc.cluster.local", 8000},
      {"workload entry", "10.0.0.7", 15432, "postgres.db.svc.cluster.local", 5432},
      {"endpoint address, wrong port", "10.0.0.7", 5432, "", 0},
      {"unselected workload entry", "10.0.0.8", 5432, "", 0},
      {"unknown", "192.0.2.1", 80, "", 0},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const ServiceRoute* r = s->findByDestination(ip(row.ip), row.port);
    if (row.want_host.empty()) {
      EXPECT_EQ(r, nullptr) << r->host << ":" << r->port;
      continue;
    }
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->host, row.want_host);
    EXPECT_EQ(r->port, row.want_port);
  }
}

TEST_F(ServicesTest, NoServicesConfiguredIsAnEmptyTable) {
  BootstrapConfig c;
  auto s = loadServices(c, "example.org", 3, out_);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->routes.empty());
  EXPECT_EQ(s->findByDestination(ip("10.0.0.1"), 80), nullptr);
}

TEST_F(ServicesTest, ABadServicesFileIsRefusedWithItsPlace) {
  write("bad.yaml",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: s, namespace: ns}\nspec:\n  hosts: [s.example.com]\n"
        "  ports: [{number: 0, name: p}]\n");
  EXPECT_EQ(load(), nullptr);
  EXPECT_EQ(out_.errorText(), dir_.file("services/bad.yaml") +
                                  ":6:20: spec.ports[0].number must be a port number in "
                                  "1..65535, got \"0\"\n");
}

}  // namespace
}  // namespace palisade::proxy
