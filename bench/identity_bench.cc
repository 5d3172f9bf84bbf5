// Identity on one core: CSR-to-certificate issuances per second with P-256 (issue 4's goal:
// at least 8,000/s; the crypto ceiling of the development machine is about 14,000/s), and
// X509-SVID chain verifications per second with and without the verified-chain cache.
//
//   build-bench/bin/identity_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_util.h"
#include "common/csr.h"
#include "common/x509_svid.h"
#include "control-plane/ca.h"

namespace palisade {
namespace {

using bench::must;

const policy::SpiffeId& workloadId() {
  static const policy::SpiffeId id =
      must(policy::SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web"));
  return id;
}

// CSRs made up front: the benchmark times what the CA does per request (verify the CSR's
// signature, build and sign the certificate), not the workload's key generation.
void BM_IssueFromCsr(benchmark::State& state) {
  cp::CaInitOptions init;
  init.trust_domain = "cluster.local";
  init.intermediate = state.range(0) != 0;
  auto ca = must(cp::CertificateAuthority::create(init));
  std::vector<common::EvpPkeyPtr> keys;
  std::vector<common::X509ReqPtr> csrs;
  for (int i = 0; i < 64; ++i) {
    keys.push_back(must(common::generateP256Key()));
    csrs.push_back(must(common::makeCsr(keys.back().get(), {std::string(workloadId().uri())}, {})));
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto cert = ca.sign(csrs[i++ % csrs.size()].get(), workloadId());
    if (!cert.ok()) {
      state.SkipWithError(cert.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(cert);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_IssueFromCsr)->Arg(0)->Arg(1)->ArgName("intermediate")->UseRealTime();

// The same with the CSR arriving as PEM text, parsed per request, as the control plane gets it.
void BM_IssueFromCsrPem(benchmark::State& state) {
  cp::CaInitOptions init;
  init.trust_domain = "cluster.local";
  auto ca = must(cp::CertificateAuthority::create(init));
  std::vector<std::string> pems;
  for (int i = 0; i < 64; ++i) {
    auto key = must(common::generateP256Key());
    auto csr = must(common::makeCsr(key.get(), {std::string(workloadId().uri())}, {}));
    pems.push_back(common::csrPem(csr.get()));
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto csr = must(common::parseCsrPem(pems[i++ % pems.size()]));
    auto cert = ca.sign(csr.get(), workloadId());
    if (!cert.ok()) {
      state.SkipWithError(cert.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(cert);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_IssueFromCsrPem)->UseRealTime();

struct Chain {
  common::BundleSet bundles;
  common::X509Ptr leaf;
  std::vector<common::X509Ptr> intermediates;
};

Chain makeChain() {
  cp::CaInitOptions init;
  init.trust_domain = "cluster.local";
  init.intermediate = true;
  auto ca = must(cp::CertificateAuthority::create(init));
  auto key = must(common::generateP256Key());
  auto csr = must(common::makeCsr(key.get(), {}, {}));
  auto issued = must(ca.sign(csr.get(), workloadId()));
  Chain chain;
  for (const auto& root : ca.roots()) {
    chain.bundles.add("cluster.local", common::share(root.get()));
  }
  chain.leaf = std::move(issued.certificate);
  chain.intermediates = std::move(issued.intermediates);
  return chain;
}

void BM_VerifySvid(benchmark::State& state) {
  Chain chain = makeChain();
  std::vector<X509*> intermediates;
  for (const auto& c : chain.intermediates) {
    intermediates.push_back(c.get());
  }
  for (auto _ : state) {
    auto verified = common::verifySvid(chain.leaf.get(), intermediates, chain.bundles);
    if (!verified.ok()) {
      state.SkipWithError(verified.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(verified);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_VerifySvid)->UseRealTime();

// A peer reconnecting with the SVID it used before: a SHA-256 of the leaf and a lookup.
void BM_VerifySvidCached(benchmark::State& state) {
  Chain chain = makeChain();
  std::vector<X509*> intermediates;
  for (const auto& c : chain.intermediates) {
    intermediates.push_back(c.get());
  }
  common::VerifiedChainCache cache(4096);
  const std::time_t now = std::time(nullptr);
  for (auto _ : state) {
    auto id = cache.find(chain.leaf.get(), now);
    if (!id) {
      auto verified = common::verifySvid(chain.leaf.get(), intermediates, chain.bundles);
      if (!verified.ok()) {
        state.SkipWithError(verified.error().message.c_str());
        return;
      }
      id = cache.insert(chain.leaf.get(), *verified);
    }
    benchmark::DoNotOptimize(id);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_VerifySvidCached)->UseRealTime();

}  // namespace
}  // namespace palisade

BENCHMARK_MAIN();
