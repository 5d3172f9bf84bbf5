#include "policy/service_entry_loader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/loader.h"

// ServiceEntry and WorkloadEntry manifests: what loads into the model, and every refusal with
// file:line:col, following Istio's ValidateServiceEntry / ValidateWorkloadEntry.

namespace palisade::policy {
namespace {

LoadResult load(const std::string& yaml) {
  LoadResult r;
  loadYaml(yaml, "svc.yaml", r);
  return r;
}

std::string errors(const LoadResult& r) { return r.errorText(); }

// Lines 1-5; "spec:" on line 6.
const std::string kSeHead =
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata:\n"
    "  name: postgres\n"
    "  namespace: db\n";

TEST(ServiceEntryLoaderTest, LoadsAMeshInternalServiceWithEndpoints) {
  LoadResult r = load(kSeHead +
                      "spec:\n"
                      "  hosts: [postgres.db.svc.cluster.local]\n"
                      "  addresses: [10.96.0.10]\n"
                      "  location: MESH_INTERNAL\n"
                      "  resolution: STATIC\n"
                      "  ports:\n"
                      "  - {number: 5432, name: tcp-pg, protocol: tcp, targetPort: 15432}\n"
                      "  subjectAltNames: [spiffe://cluster.local/ns/db/sa/postgres]\n"
                      "  endpoints:\n"
                      "  - address: 127.0.0.1\n"
                      "    ports: {tcp-pg: 25432}\n"
                      "    labels: {app: postgres}\n"
                      "    serviceAccount: postgres\n"
                      "    weight: 3\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  ASSERT_EQ(r.bundle.service_entries.size(), 1u);
  const ServiceEntry& se = r.bundle.service_entries[0];
  EXPECT_EQ(se.metadata.ns, "db");
  EXPECT_EQ(se.hosts, std::vector<std::string>{"postgres.db.svc.cluster.local"});
  EXPECT_EQ(se.location, ServiceLocation::kMeshInternal);
  EXPECT_EQ(se.resolution, Resolution::kStatic);
  ASSERT_EQ(se.ports.size(), 1u);
  EXPECT_EQ(se.ports[0].number, 5432u);
  EXPECT_EQ(se.ports[0].protocol, "TCP") << "protocols are case-insensitive, kept upper case";
  EXPECT_EQ(se.ports[0].target_port, 15432u);
  EXPECT_EQ(se.subject_alt_names,
            std::vector<std::string>{"spiffe://cluster.local/ns/db/sa/postgres"});
  ASSERT_EQ(se.endpoints.size(), 1u);
  EXPECT_EQ(se.endpoints[0].address, "127.0.0.1");
  EXPECT_EQ(se.endpoints[0].ports.at("tcp-pg"), 25432u);
  EXPECT_EQ(se.endpoints[0].labels.at("app"), "postgres");
  EXPECT_EQ(se.endpoints[0].service_account, "postgres");
  EXPECT_EQ(se.endpoints[0].weight, 3u);
}

TEST(ServiceEntryLoaderTest, LoadsAWorkloadEntryAndOtherApiVersions) {
  LoadResult r = load(
      "apiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\nmetadata:\n  name: vm-1\n"
      "  namespace: db\nspec:\n  address: 10.0.0.7\n  labels: {app: postgres}\n"
      "  serviceAccount: postgres\n  ports: {tcp-pg: 5432}\n"
      "---\napiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\nmetadata:\n"
      "  name: api\nspec:\n  hosts: [api.example.com]\n  resolution: DNS\n"
      "  ports: [{number: 443, name: https, protocol: TLS}]\n");
  ASSERT_TRUE(r.ok()) << errors(r);
  ASSERT_EQ(r.bundle.workload_entries.size(), 1u);
  EXPECT_EQ(r.bundle.workload_entries[0].spec.address, "10.0.0.7");
  EXPECT_EQ(r.bundle.workload_entries[0].spec.ports.at("tcp-pg"), 5432u);
  ASSERT_EQ(r.bundle.service_entries.size(), 1u);
  EXPECT_EQ(r.bundle.service_entries[0].location, ServiceLocation::kMeshExternal)
      << "Istio's default location";
  EXPECT_EQ(r.bundle.service_entries[0].resolution, Resolution::kDns);
}

TEST(ServiceEntryLoaderTest, Refusals) {
  struct Row {
    std::string name;
    std::string spec;  // from line 6
    std::string want;
  };
  const std::string ports = "  ports: [{number: 80, name: http}]\n";
  const std::vector<Row> rows = {
      {"no hosts", "spec:\n  resolution: NONE\n",
       "svc.yaml:1:1: ServiceEntry postgres: spec.hosts must not be empty\n"},
      {"bad host", "spec:\n  hosts: [\"bad host\"]\n",
       "svc.yaml:7:11: bad host \"bad host\" in spec.hosts\n"},
      {"bad address", "spec:\n  hosts: [a.b]\n  addresses: [10.0.0.300]\n",
       "svc.yaml:8:15: bad address \"10.0.0.300\" in spec.addresses (IP or CIDR)\n"},
      {"unknown field", "spec:\n  hosts: [a.b]\n  trafficPolicy: {}\n",
       "svc.yaml:8:3: unknown field \"trafficPolicy\" in ServiceEntry.spec\n"},
      {"port out of range", "spec:\n  hosts: [a.b]\n  ports: [{number: 70000, name: x}]\n",
       "svc.yaml:8:20: spec.ports[0].number must be a port number in 1..65535, got \"70000\"\n"},
      {"port without number", "spec:\n  hosts: [a.b]\n  ports: [{name: x}]\n",
       "svc.yaml:8:11: spec.ports[0].number is required\n"},
      {"unknown protocol", "spec:\n  hosts: [a.b]\n  ports: [{number: 80, protocol: SPDY}]\n",
       "svc.yaml:8:34: unknown protocol \"SPDY\" in spec.ports[0].protocol\n"},
      {"duplicate port number",
       "spec:\n  hosts: [a.b]\n  ports:\n  - {number: 80, name: a}\n  - {number: 80, name: b}\n",
       "svc.yaml:10:5: duplicate port number 80 in spec.ports\n"},
      {"unknown resolution", "spec:\n  hosts: [a.b]\n  resolution: MAGIC\n" + ports,
       "svc.yaml:8:15: unknown resolution \"MAGIC\" in spec.resolution (NONE, STATIC, DNS or "
       "DNS_ROUND_ROBIN)\n"},
      {"static without endpoints", "spec:\n  hosts: [a.b]\n  resolution: STATIC\n" + ports,
       "svc.yaml:1:1: ServiceEntry postgres: resolution STATIC needs spec.endpoints or "
       "spec.workloadSelector\n"},
      {"static with a host name endpoint",
       "spec:\n  hosts: [a.b]\n  resolution: STATIC\n" + ports +
           "  endpoints: [{address: db.example.com}]\n",
       "svc.yaml:10:15: spec.endpoints[0].address \"db.example.com\" must be an IP address (or "
       "unix://) with resolution STATIC\n"},
      {"endpoint port not a service port",
       "spec:\n  hosts: [a.b]\n  resolution: STATIC\n" + ports +
           "  endpoints: [{address: 10.0.0.1, ports: {grpc: 9000}}]\n",
       "svc.yaml:10:15: spec.endpoints[0].ports names \"grpc\", which is not a port of the "
       "service\n"},
      {"selector and endpoints",
       "spec:\n  hosts: [a.b]\n  workloadSelector: {labels: {app: a}}\n  endpoints: "
       "[{address: 10.0.0.1}]\n",
       "svc.yaml:1:1: ServiceEntry postgres: only one of spec.workloadSelector and "
       "spec.endpoints can be set\n"},
      {"subject alt name not a SPIFFE ID",
       "spec:\n  hosts: [a.b]\n  subjectAltNames: [db.example.com]\n",
       "svc.yaml:8:21: spec.subjectAltNames: \"db.example.com\" is not a SPIFFE ID: "
       "spiffe_id: scheme is missing or invalid (must be \"spiffe://\")\n"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(errors(load(kSeHead + row.spec)), row.want);
  }
}

TEST(ServiceEntryLoaderTest, WorkloadEntryRefusals) {
  const std::string head =
      "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: vm\n";
  EXPECT_EQ(errors(load(head + "spec:\n  labels: {app: a}\n")),
            "svc.yaml:6:3: spec.address is required\n");
  EXPECT_EQ(errors(load(head + "spec:\n  address: 10.0.0.1\n  weight: heavy\n")),
            "svc.yaml:7:11: spec.weight must be a non-negative integer\n");
  EXPECT_EQ(errors(load("apiVersion: networking.istio.io/v2\nkind: WorkloadEntry\n")),
            "svc.yaml:1:13: unsupported apiVersion \"networking.istio.io/v2\" for WorkloadEntry "
            "(use networking.istio.io/v1, v1beta1 or v1alpha3)\n");
}

}  // namespace
}  // namespace palisade::policy

namespace palisade::policy {
namespace {

// Found by the fuzzer: a WorkloadEntry without spec reported an error with no place.
TEST(ServiceEntryLoaderTest, WorkloadEntryWithoutSpec_ErrorPointsAtTheDocument) {
  LoadResult r = load("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n"
                      "  name: vm\n");
  EXPECT_EQ(errors(r), "svc.yaml:1:1: spec.address is required\n");
}

}  // namespace
}  // namespace palisade::policy
