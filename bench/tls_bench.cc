// Full mutual-TLS handshakes between two TlsContexts over an in-memory BIO pair, both sides on
// this thread (so a figure is client + server CPU). A baseline for issue 5's handshake goal;
// the per-server-core figure comes from the proxies under load.
//
//   build-bench/bin/tls_bench

#include <benchmark/benchmark.h>
#include <openssl/err.h>

#include <cstdio>
#include <cstdlib>

#include "common/csr.h"
#include "common/tls_context.h"
#include "control-plane/ca.h"

namespace palisade {
namespace {

template <typename T>
T must(Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.error().message.c_str());
    std::abort();
  }
  return std::move(r).value();
}

common::Svid issue(const cp::CertificateAuthority& ca, const char* id) {
  common::Svid svid;
  svid.key = must(common::generateP256Key());
  auto csr = must(common::makeCsr(svid.key.get(), {}, {}));
  auto issued = must(ca.sign(csr.get(), must(policy::SpiffeId::parse(id))));
  svid.leaf = std::move(issued.certificate);
  svid.intermediates = std::move(issued.intermediates);
  return svid;
}

bool handshake(SSL* client, SSL* server) {
  BIO* c = nullptr;
  BIO* s = nullptr;
  BIO_new_bio_pair(&c, 0, &s, 0);
  SSL_set_bio(client, c, c);
  SSL_set_bio(server, s, s);
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    for (auto [ssl, done] : {std::pair{client, &client_done}, std::pair{server, &server_done}}) {
      if (*done) {
        continue;
      }
      int rc = SSL_do_handshake(ssl);
      if (rc == 1) {
        *done = true;
      } else if (int e = SSL_get_error(ssl, rc); e != SSL_ERROR_WANT_READ &&
                                                  e != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return false;
      }
    }
  }
  return client_done && server_done;
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
  auto server = must(common::TlsContext::server(
      issue(ca, "spiffe://cluster.local/ns/db/sa/server"), bundles, options));
  auto client = must(common::TlsContext::client(
      issue(ca, "spiffe://cluster.local/ns/web/sa/client"), bundles, options));
  for (auto _ : state) {
    common::SslPtr s = server->newSsl();
    common::SslPtr c = client->newSsl({"spiffe://cluster.local/ns/db/sa/server"});
    if (!handshake(c.get(), s.get())) {
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
