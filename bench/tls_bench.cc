// Full mutual-TLS handshakes between two TlsContexts over an in-memory BIO pair, both sides on
// this thread (so a figure is client + server CPU). A baseline for issue 5's handshake goal;
// the per-server-core figure comes from the proxies under load.
//
//   build-bench/bin/tls_bench

#include <benchmark/benchmark.h>
#include <openssl/err.h>

#include "bench_util.h"
#include "common/csr.h"
#include "common/tls_context.h"
#include "control-plane/ca.h"
#include "tests/mocks/common/bio_pair.h"

namespace palisade {
namespace {

using bench::must;

common::Svid issue(const cp::CertificateAuthority& ca, const char* id) {
  common::Svid svid;
  svid.key = must(common::generateP256Key());
  auto csr = must(common::makeCsr(svid.key.get(), {}, {}));
  auto issued = must(ca.sign(csr.get(), must(policy::SpiffeId::parse(id))));
  svid.leaf = std::move(issued.certificate);
  svid.intermediates = std::move(issued.intermediates);
  return svid;
}

void BM_MutualTlsHandshake(benchmark::State& state) {
  cp::CaInitOptions init;
  init.trust_domain = "cluster.local";
  init.intermediate = true;
  auto ca = must(cp::CertificateAuthority::create(init));
  auto bundles = std::make_shared<common::BundleSet>();
  for (const auto& root : ca.roots()) {
    bundles->add("cluster.local", common::share(root.get()));
  }
  common::TlsOptions options;
  options.alpn = {"h2", "http/1.1"};
  auto server = must(common::TlsContext::server(issue(ca, "spiffe://cluster.local/ns/db/sa/server"),
                                                bundles, options));
  auto client = must(common::TlsContext::client(
      issue(ca, "spiffe://cluster.local/ns/web/sa/client"), bundles, options));
  for (auto _ : state) {
    common::SslPtr s = server->newSsl();
    common::SslPtr c = client->newSsl({"spiffe://cluster.local/ns/db/sa/server"});
    if (!common::test_tls::handshakeOverBioPair(c.get(), s.get())) {
      state.SkipWithError("handshake failed");
      return;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_MutualTlsHandshake)->UseRealTime();

}  // namespace
}  // namespace palisade

BENCHMARK_MAIN();
