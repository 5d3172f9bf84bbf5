// Fuzz target: the YAML policy loader, then the compiler, lint, one evaluation and the
// traffic resolution of what loaded. Any input must give either diagnostics with a place, or
// policies that evaluate.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/compiler.h"
#include "policy/engine.h"
#include "policy/lint.h"
#include "policy/loader.h"
#include "policy/peer_authn.h"
#include "policy/traffic_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace palisade::policy;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  LoadResult loaded;
  loadYaml(text, "fuzz.yaml", loaded);
  for (const Diagnostic& d : loaded.diagnostics) {
    if (d.message.empty() || d.mark.file != "fuzz.yaml") {
      std::abort();
    }
  }
  if (!loaded.ok()) {
    return 0;
  }
  lint(loaded.bundle);
  auto set = PolicySet::compile(loaded.bundle);
  static const auto peer = SpiffeId::parse("spiffe://cluster.local/ns/foo/sa/sleep");
  for (const auto& ap : loaded.bundle.authorization_policies) {
    WorkloadAuthz authz(set, Workload{ap.metadata.ns, {{"app", "x"}}});
    HeaderView headers[] = {{"x-user", "alice"}};
    RequestView req;
    req.protocol = Protocol::kHttp;
    req.peer = &*peer;
    req.source_ip = *IpAddress::parse("10.0.0.1");
    req.destination_port = 8080;
    req.host = "example.com:8080";
    req.method = "GET";
    req.path = "/api/v1/items?x=1";
    req.headers = headers;
    authz.evaluate(req);
    req.protocol = Protocol::kTcp;
    authz.evaluate(req);
    effectiveMtls(loaded.bundle, ap.metadata.ns, {}, "istio-system");
  }
  for (const auto& dr : loaded.bundle.destination_rules) {
    resolveTraffic(loaded.bundle, qualifyHost(dr.host, dr.metadata.ns), 8080);
  }
  for (const auto& vs : loaded.bundle.virtual_services) {
    for (const auto& host : vs.hosts) {
      resolveTraffic(loaded.bundle, qualifyHost(host, vs.metadata.ns), 80);
    }
  }
  return 0;
}
