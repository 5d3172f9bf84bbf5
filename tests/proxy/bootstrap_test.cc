#include "proxy/bootstrap.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// The sidecar's bootstrap file: its fields, its errors with file:line:col, and the check of
// everything it refers to (what `palisade-proxy --validate` will run).

namespace palisade::proxy {
namespace {

using common::test_certs::CertFactory;
using common::test_certs::leafSpec;
using common::test_certs::makeCredential;
using common::test_env::TempDir;

std::string errors(const policy::LoadResult& r) { return r.errorText(); }

class BootstrapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CertFactory factory("cluster.local");
    auto leaf =
        makeCredential(leafSpec("spiffe://cluster.local/ns/foo/sa/httpbin"), &factory.root());
    dir_.write("chain.pem", leaf.certPem());
    dir_.write("key.pem", leaf.keyPem());
    dir_.write("bundle.pem", factory.rootPem());
    std::filesystem::create_directories(dir_.file("services"));
    dir_.write("services/postgres.yaml",
               "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: pg, "
               "namespace: db}\nspec:\n  hosts: [postgres.db.svc.cluster.local]\n"
               "  ports: [{number: 5432, name: tcp}]\n");
    std::filesystem::create_directories(dir_.file("policies"));
  }

  std::string write(const std::string& yaml) { return dir_.write("bootstrap.yaml", yaml); }

  static constexpr const char* kIdentity =
      "identity:\n"
      "  certificateChain: chain.pem\n"
      "  privateKey: key.pem\n"
      "  trustBundles:\n"
      "  - file: bundle.pem\n";

  TempDir dir_;
};

TEST_F(BootstrapTest, ReadsEveryFieldAndResolvesPathsAgainstTheFile) {
  const std::string path = write(std::string(kIdentity) +
                                 "workload:\n"
                                 "  namespace: foo\n"
                                 "  labels: {app: httpbin, version: v1}\n"
                                 "rootNamespace: mesh-root\n"
                                 "policies: policies\n"
                                 "services: services\n"
                                 "inbound:\n"
                                 "  address: \"[::]:15006\"\n"
                                 "  ports:\n"
                                 "  - {port: 8000, targetPort: 8080, protocol: HTTP}\n"
                                 "  - {port: 9000, protocol: TCP, clientCertificateHeader: "
                                 "RFC9440}\n"
                                 "outbound:\n"
                                 "  transparent: 127.0.0.1:15001\n"
                                 "  listeners:\n"
                                 "  - {address: 127.0.0.1:15432, service: "
                                 "postgres.db.svc.cluster.local, port: 5432}\n"
                                 "  pooledHttp: true\n"
                                 "  loadBalancer: ROUND_ROBIN\n"
                                 "admin: 127.0.0.1:25000\n"
                                 "concurrency: 2\n");
  policy::LoadResult out;
  BootstrapConfig c = loadBootstrap(path, out);
  ASSERT_TRUE(out.ok()) << errors(out);
  EXPECT_EQ(c.certificate_chain, dir_.file("chain.pem"));
  EXPECT_EQ(c.services, dir_.file("services"));
  EXPECT_EQ(c.ns, "foo");
  EXPECT_EQ(c.labels.at("version"), "v1");
  EXPECT_EQ(c.root_namespace, "mesh-root");
  EXPECT_EQ(c.inbound_address.ip.family(), policy::IpAddress::Family::kV6);
  EXPECT_EQ(c.inbound_address.port, 15006);
  ASSERT_EQ(c.inbound_ports.size(), 2u);
  EXPECT_EQ(c.inbound_ports[0].target_port, 8080);
  EXPECT_EQ(c.inbound_ports[1].target_port, 9000) << "targetPort defaults to port";
  EXPECT_EQ(c.inbound_ports[1].protocol, InboundProtocol::kTcp);
  EXPECT_EQ(c.inbound_ports[1].client_cert_header, ClientCertHeader::kRfc9440);
  ASSERT_TRUE(c.transparent_outbound.has_value());
  EXPECT_EQ(c.transparent_outbound->port, 15001);
  ASSERT_EQ(c.outbound_listeners.size(), 1u);
  EXPECT_EQ(c.outbound_listeners[0].port, 5432);
  EXPECT_TRUE(c.outbound_pooled_http);
  EXPECT_EQ(c.outbound_load_balancer, LoadBalancer::kRoundRobin);
  EXPECT_EQ(c.admin.port, 25000);
  EXPECT_EQ(c.metrics.port, 15090) << "Istio's port by default";
  EXPECT_EQ(c.concurrency, 2u);

  policy::LoadResult refs;
  validateBootstrapReferences(c, refs);
  EXPECT_TRUE(refs.ok()) << errors(refs);
}

TEST_F(BootstrapTest, FileErrorsCarryLineAndColumn) {
  struct Row {
    std::string name;
    std::string yaml;  // after the 5 identity lines
    std::string want;  // "LINE:COL: message"
  };
  const std::vector<Row> rows = {
      {"unknown field", "bogus: 1\n", "6:1: unknown field \"bogus\" in bootstrap"},
      {"bad address", "admin: localhost:15000\n",
       "6:8: admin: bad address \"localhost:15000\" (IP:PORT or [IPv6]:PORT)"},
      {"bad inbound port", "inbound:\n  ports:\n  - {port: 0}\n",
       "8:12: inbound.ports[].port must be a port number in 1..65535"},
      {"bad protocol", "inbound:\n  ports:\n  - {port: 80, protocol: SPDY}\n",
       "8:26: inbound.ports[].protocol must be HTTP, HTTP2, GRPC or TCP, got \"SPDY\""},
      {"port listed twice", "inbound:\n  ports:\n  - {port: 80}\n  - {port: 80}\n",
       "9:5: inbound.ports: port 80 is listed twice"},
      {"listener without service", "outbound:\n  listeners:\n  - {address: 127.0.0.1:1, port: 2}\n",
       "8:5: outbound.listeners[].service is required"},
      {"bad pooledHttp", "outbound:\n  pooledHttp: yes\n",
       "7:15: outbound.pooledHttp must be true or false"},
      {"bad loadBalancer", "outbound:\n  loadBalancer: LEAST_CONNECTIONS\n",
       "7:17: outbound.loadBalancer must be LEAST_REQUEST, ROUND_ROBIN or RANDOM"},
      {"bad concurrency", "concurrency: many\n",
       "6:14: concurrency must be 0 (one worker per core) to 256"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const std::string path = write(std::string(kIdentity) + row.yaml);
    policy::LoadResult out;
    loadBootstrap(path, out);
    EXPECT_EQ(errors(out), path + ":" + row.want + "\n");
  }
}

TEST_F(BootstrapTest, MissingIdentityIsAnError) {
  const std::string path = write("workload: {namespace: foo}\n");
  policy::LoadResult out;
  loadBootstrap(path, out);
  EXPECT_FALSE(out.ok());
  EXPECT_NE(errors(out).find("identity"), std::string::npos) << errors(out);
}

TEST_F(BootstrapTest, ReferencesAreChecked) {
  dir_.write("policies/bad.yaml",
             "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
             "p}\nspec:\n  action: MAYBE\n");
  dir_.write("other-key.pem",
             makeCredential(leafSpec("spiffe://cluster.local/ns/x/sa/y"), nullptr).keyPem());
  const std::string path = write(
      "identity:\n  certificateChain: chain.pem\n  privateKey: other-key.pem\n"
      "  trustBundles:\n  - file: missing-bundle.pem\n"
      "policies: policies\nservices: services\n"
      "outbound:\n  listeners:\n"
      "  - {address: 127.0.0.1:1, service: nowhere.example, port: 80}\n");
  policy::LoadResult out;
  BootstrapConfig c = loadBootstrap(path, out);
  ASSERT_TRUE(out.ok()) << errors(out);
  policy::LoadResult refs;
  validateBootstrapReferences(c, refs);
  const std::string text = errors(refs);
  EXPECT_NE(text.find("the key does not match"), std::string::npos) << text;
  EXPECT_NE(text.find("missing-bundle.pem: cannot read"), std::string::npos) << text;
  EXPECT_NE(text.find(dir_.file("policies/bad.yaml") + ":5:11: unknown action \"MAYBE\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(path + ":10:5: outbound.listeners[].service \"nowhere.example\" is not a "
                             "host of any ServiceEntry"),
            std::string::npos)
      << text;
}

TEST(SocketAddressTest, Parses) {
  EXPECT_TRUE(parseSocketAddress("0.0.0.0:15006").has_value());
  EXPECT_TRUE(parseSocketAddress("[::1]:15000").has_value());
  EXPECT_FALSE(parseSocketAddress("::1:15000").has_value()) << "IPv6 needs brackets";
  EXPECT_FALSE(parseSocketAddress("127.0.0.1").has_value());
  EXPECT_FALSE(parseSocketAddress("127.0.0.1:65536").has_value());
  EXPECT_FALSE(parseSocketAddress("host:80").has_value());
}

}  // namespace
}  // namespace palisade::proxy
