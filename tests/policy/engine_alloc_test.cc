// DESIGN.md "Performance rules": no per-request allocation in policy evaluation. This file
// replaces the global operator new and delete of the whole policy_tests binary with counting
// versions; only the count taken around evaluate() is ever checked.

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy/compiler.h"
#include "policy/engine.h"
#include "policy/loader.h"
#include "policy/request_view.h"
#include "policy/spiffe_id.h"

namespace {

std::atomic<std::size_t> g_allocations{0};

void* countedAlloc(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}

void* countedAlignedAlloc(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(align);
  // aligned_alloc wants a size that is a multiple of the alignment.
  const std::size_t rounded = ((size == 0 ? 1 : size) + a - 1) / a * a;
  return std::aligned_alloc(a, rounded);
}

}  // namespace

void* operator new(std::size_t size) {
  if (void* p = countedAlloc(size)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = countedAlloc(size)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return countedAlloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return countedAlloc(size);
}
void* operator new(std::size_t size, std::align_val_t align) {
  if (void* p = countedAlignedAlloc(size, align)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) {
  if (void* p = countedAlignedAlloc(size, align)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return countedAlignedAlloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return countedAlignedAlloc(size, align);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace palisade::policy {
namespace {

// Policies that exercise every matcher: principals (hash set and patterns), namespaces (exact
// and glob), service accounts, IP blocks, ports, hosts, methods, paths and path templates,
// every condition key, AUDIT, dry-run, and rules dropped or widened for TCP.
constexpr const char* kPolicies = R"(
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules:
  - from: [{source: {notNamespaces: ["foo", "b*"]}}]
    to: [{operation: {paths: ["/admin/{**}"], methods: ["POST", "P*"]}}]
  - when:
    - {key: "request.headers[X-Debug]", values: ["*"]}
    - {key: remote.ip, notValues: ["192.168.0.0/16", "2001:db8::/32"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-sleep, namespace: foo}
spec:
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/foo/sa/sleep", "cluster.local/ns/bar/sa/a",
                     "cluster.local/ns/bar/sa/b", "*/sa/batch", "cluster.local/ns/ops/*"]
    - source: {serviceAccounts: ["client", "bar/client"]}
    - source: {ipBlocks: ["10.1.0.0/16"], notIpBlocks: ["10.1.9.0/24"]}
    to:
    - operation:
        hosts: ["web.foo.svc", "*.example.com", "WEB*"]
        notPaths: ["/internal/*"]
        methods: ["GET", "HEAD"]
    - operation: {ports: ["8080", "9090"], paths: ["/api/{*}/items", "*.json", "*"]}
    when:
    - {key: "request.headers[x-tenant]", values: ["acme", "beta*", "*-prod"]}
    - {key: source.ip, values: ["10.0.0.0/8"]}
    - {key: destination.ip, values: ["10.2.0.0/16"]}
    - {key: destination.port, notValues: ["22"]}
    - {key: source.namespace, values: ["foo", "bar"]}
    - {key: source.principal, notValues: ["cluster.local/ns/foo/sa/evil"]}
    - {key: connection.sni, values: ["*.foo.svc", "web*"]}
  - to: [{operation: {ports: ["15000"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-all, namespace: istio-system}
spec:
  action: AUDIT
  rules: [{to: [{operation: {methods: ["DELETE"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-deny
  namespace: foo
  annotations: {"istio.io/dry-run": "true"}
spec:
  action: DENY
  rules: [{from: [{source: {namespaces: ["*"]}}], to: [{operation: {notPorts: ["8080"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-allow
  namespace: istio-system
  annotations: {"istio.io/dry-run": "true"}
spec:
  rules: [{from: [{source: {principals: ["*"]}}]}]
)";

struct Request {
  Protocol protocol;
  std::string peer;
  std::string source;
  std::string remote;
  std::uint16_t port;
  std::string sni;
  std::string host;
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The RequestView of a Request, built before any counting starts.
struct Built {
  std::optional<SpiffeId> peer;
  std::vector<HeaderView> headers;
  RequestView view;
};

IpAddress ip(const std::string& text) {
  if (text.empty()) {
    return IpAddress();
  }
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return parsed.ok() ? *parsed : IpAddress();
}

void build(const Request& r, Built& out) {
  if (!r.peer.empty()) {
    auto id = SpiffeId::parse(r.peer);
    ASSERT_TRUE(id.ok()) << r.peer;
    out.peer.emplace(std::move(id).value());
  }
  for (const auto& [name, value] : r.headers) {
    out.headers.push_back(HeaderView{name, value});
  }
  out.view.protocol = r.protocol;
  out.view.peer = out.peer ? &*out.peer : nullptr;
  out.view.source_ip = ip(r.source);
  out.view.remote_ip = ip(r.remote);
  out.view.destination_ip = ip("10.2.0.7");
  out.view.destination_port = r.port;
  out.view.sni = r.sni;
  out.view.host = r.host;
  out.view.method = r.method;
  out.view.path = r.path;
  out.view.headers = out.headers;
}

TEST(EngineAllocTest, EvaluateDoesNotAllocate) {
  LoadResult loaded;
  loadYaml(kPolicies, "alloc.yaml", loaded);
  ASSERT_TRUE(loaded.ok()) << loaded.errorText();
  auto set = PolicySet::compile(loaded.bundle, {"istio-system"});
  WorkloadAuthz authz(set, Workload{"foo", {{"app", "web"}}});
  ASSERT_EQ(authz.deny().size(), 1u);
  ASSERT_EQ(authz.allow().size(), 1u);
  ASSERT_EQ(authz.audit().size(), 1u);
  ASSERT_EQ(authz.dryRunDeny().size(), 1u);
  ASSERT_EQ(authz.dryRunAllow().size(), 1u);

  const std::vector<Request> requests = {
      {Protocol::kHttp,
       "spiffe://cluster.local/ns/foo/sa/sleep",
       "10.1.0.5",
       "",
       8080,
       "web.foo.svc",
       "web.foo.svc",
       "GET",
       "/api/v1/items?page=2",
       {{"X-Tenant", "acme"}, {"Accept", "*/*"}, {"User-Agent", "curl/8"}}},
      {Protocol::kHttp,
       "spiffe://cluster.local/ns/bar/sa/client",
       "10.1.9.5",
       "192.168.1.1",
       8080,
       "",
       "API.EXAMPLE.COM",
       "POST",
       "/admin/users/1",
       {{"x-debug", "1"}}},
      {Protocol::kHttp, "", "203.0.113.7", "", 9090, "", "web.foo.svc", "DELETE", "/x.json#f", {}},
      {Protocol::kHttp,
       "spiffe://example.org/ns/ops/sa/batch",
       "10.1.0.9",
       "2001:db8::1",
       15000,
       "webhook",
       "webhook",
       "PATCH",
       "/internal/state",
       {{"x-tenant", "team-prod"}}},
      {Protocol::kTcp,
       "spiffe://cluster.local/ns/foo/sa/sleep",
       "10.1.0.5",
       "",
       8080,
       "web.foo.svc",
       "",
       "",
       "",
       {}},
      {Protocol::kTcp, "", "10.1.9.9", "", 22, "", "", "", "", {}},
      {Protocol::kTcp,
       "spiffe://cluster.local/ns/baz/sa/x",
       "2001:db8::5",
       "",
       15000,
       "",
       "",
       "",
       "",
       {}},
  };
  std::vector<Built> built(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    build(requests[i], built[i]);
  }
  // Warm up once, outside the count (first-use statics, lazy library state).
  for (const Built& b : built) {
    (void)authz.evaluate(b.view);
  }

  constexpr int kRounds = 200;
  int denied = 0;
  int audited = 0;
  int dry_run = 0;
  const std::size_t before = g_allocations.load(std::memory_order_relaxed);
  for (int round = 0; round < kRounds; ++round) {
    for (const Built& b : built) {
      const Decision d = authz.evaluate(b.view);
      denied += d.verdict == Verdict::kDeny ? 1 : 0;
      audited += d.audit ? 1 : 0;
      dry_run += d.has_dry_run ? 1 : 0;
    }
  }
  const std::size_t after = g_allocations.load(std::memory_order_relaxed);
  EXPECT_EQ(after - before, 0u) << "evaluate() allocated";

  // The requests did take different paths through the engine.
  EXPECT_GT(denied, 0);
  EXPECT_LT(denied, kRounds * static_cast<int>(built.size()));
  EXPECT_GT(audited, 0);
  EXPECT_EQ(dry_run, kRounds * static_cast<int>(built.size()));
}

TEST(EngineAllocTest, CounterSeesAllocations) {
  // The replacement is in effect. The pointer goes through a volatile so that the pair cannot
  // be optimized away.
  const std::size_t before = g_allocations.load(std::memory_order_relaxed);
  void* volatile p = ::operator new(64);
  const std::size_t after = g_allocations.load(std::memory_order_relaxed);
  ::operator delete(p);
  EXPECT_EQ(after - before, 1u);
}

}  // namespace
}  // namespace palisade::policy
