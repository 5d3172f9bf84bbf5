// Tests for proxy/upstream_pool.cc: which endpoint a request goes to. The random source is
// injected, so the two choices of least request are known; nothing connects here.

#include "proxy/upstream_pool.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace palisade::proxy {
namespace {

ServiceRoute routeWith(std::size_t endpoints) {
  ServiceRoute r;
  r.host = "httpbin.foo.svc.cluster.local";
  r.port = 8000;
  r.sni = outboundSni(r.port, r.host);
  for (std::size_t i = 0; i < endpoints; ++i) {
    Endpoint e;
    e.text = "127.0.0.1:" + std::to_string(15006 + i);
    r.endpoints.push_back(e);
  }
  return r;
}

class UpstreamPoolTest : public ::testing::Test {
 protected:
  UpstreamPoolTest()
      : base_(event_base_new()), pool_(base_, stats_, {}, [this] { return draw(); }) {}
  ~UpstreamPoolTest() override {
    pool_.closeAll();
    event_base_free(base_);
  }

  std::uint32_t draw() {
    EXPECT_FALSE(draws_.empty()) << "more random draws than the test planned";
    if (draws_.empty()) {
      return 0;
    }
    std::uint32_t v = draws_.front();
    draws_.pop_front();
    return v;
  }

  event_base* base_;
  WorkerStats stats_;
  std::deque<std::uint32_t> draws_;
  UpstreamPool pool_;
};

TEST_F(UpstreamPoolTest, OneEndpointNeedsNoChoice) {
  ServiceRoute r = routeWith(1);
  EXPECT_EQ(pool_.pick(r, LoadBalancer::kLeastRequest), 0u);
  EXPECT_EQ(pool_.pick(r, LoadBalancer::kRoundRobin), 0u);
  EXPECT_TRUE(draws_.empty());
}

TEST_F(UpstreamPoolTest, RoundRobinCyclesThroughEveryEndpoint) {
  ServiceRoute r = routeWith(3);
  std::vector<std::size_t> got;
  for (int i = 0; i < 7; ++i) {
    got.push_back(pool_.pick(r, LoadBalancer::kRoundRobin));
  }
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST_F(UpstreamPoolTest, LeastRequestDrawsTwoDistinctEndpointsAndKeepsTheFirstOnATie) {
  ServiceRoute r = routeWith(3);
  struct Row {
    const char* name;
    std::uint32_t first, second;
    std::size_t want;
  };
  const Row rows[] = {
      {"first 0, second skips over it", 0, 0, 0},
      {"first 2", 2, 0, 2},
      {"draws wrap modulo the endpoint count", 4, 1, 1},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    draws_ = {row.first, row.second};
    EXPECT_EQ(pool_.pick(r, LoadBalancer::kLeastRequest), row.want);
    EXPECT_TRUE(draws_.empty());
  }
  EXPECT_EQ(pool_.connections(), 0u) << "choosing connects nothing";
  EXPECT_EQ(pool_.activeRequests(r, r.endpoints[1]), 0u);
}

}  // namespace
}  // namespace palisade::proxy
