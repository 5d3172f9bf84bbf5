// Tests for proxy/upstream_pool.cc: which endpoint a request or TCP connection goes to,
// outlier ejection and return, and what the pool keeps about endpoints that left the config.
// The random source is injected, so the two choices of least request are known; nothing
// connects here (TCP connections are only counted, as the outbound listener reports them).

#include "proxy/upstream_pool.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

namespace palisade::proxy {
namespace {

std::shared_ptr<Snapshot> snapshotWith(std::size_t endpoints, std::uint64_t version = 1,
                                       TrafficSettings traffic = {}) {
  auto services = std::make_shared<Services>();
  services->version = version;
  ServiceRoute r;
  r.host = "httpbin.foo.svc.cluster.local";
  r.port = 8000;
  r.sni = outboundSni(r.port, r.host);
  r.cluster = "outbound|8000||" + r.host;
  r.key = 1;
  r.traffic = traffic;
  for (std::size_t i = 0; i < endpoints; ++i) {
    Endpoint e;
    e.text = "127.0.0.1:" + std::to_string(15006 + i);
    e.key = 100 + i;
    r.endpoints.push_back(e);
  }
  services->routes.push_back(std::move(r));
  auto s = std::make_shared<Snapshot>();
  s->services = services;
  return s;
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

  // A TCP connection to endpoint `i` of the snapshot's route that fails to connect.
  void failConnect(const Snapshot& s, std::size_t i) {
    const ServiceRoute& r = s.services->routes[0];
    pool_.tcpStart(s, r, r.endpoints[i]);
    pool_.tcpDone(r.endpoints[i], false, true);
  }

  const EndpointView* view(std::size_t i) {
    views_ = pool_.views();
    if (views_.empty()) {
      return nullptr;
    }
    for (const EndpointView& e : views_[0].endpoints) {
      if (e.address == "127.0.0.1:" + std::to_string(15006 + i)) {
        return &e;
      }
    }
    return nullptr;
  }

  event_base* base_;
  WorkerStats stats_;
  std::deque<std::uint32_t> draws_;
  std::vector<ClusterView> views_;
  UpstreamPool pool_;
};

TrafficSettings roundRobin() {
  TrafficSettings t;
  t.load_balancer = LoadBalancer::kRoundRobin;
  return t;
}

TEST_F(UpstreamPoolTest, OneEndpointNeedsNoChoice) {
  auto s = snapshotWith(1);
  EXPECT_EQ(pool_.pick(*s, s->services->routes[0]), 0u);
  EXPECT_TRUE(draws_.empty());
}

TEST_F(UpstreamPoolTest, RoundRobinCyclesThroughEveryEndpoint) {
  auto s = snapshotWith(3, 1, roundRobin());
  std::vector<std::size_t> got;
  for (int i = 0; i < 7; ++i) {
    got.push_back(pool_.pick(*s, s->services->routes[0]));
  }
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST_F(UpstreamPoolTest, LeastRequestDrawsTwoDistinctEndpointsAndKeepsTheFirstOnATie) {
  auto s = snapshotWith(3);
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
    EXPECT_EQ(pool_.pick(*s, s->services->routes[0]), row.want);
    EXPECT_TRUE(draws_.empty());
  }
  EXPECT_EQ(pool_.connections(), 0u) << "choosing connects nothing";
}

TEST_F(UpstreamPoolTest, LeastRequestPrefersTheEndpointWithFewerInFlight) {
  auto s = snapshotWith(2);
  const ServiceRoute& r = s->services->routes[0];
  pool_.tcpStart(*s, r, r.endpoints[0]);  // endpoint 0 has one connection in flight
  draws_ = {0, 0};                        // candidates 0 and 1
  EXPECT_EQ(pool_.tcpPick(*s, r), 1u);
  pool_.tcpDone(r.endpoints[0], true, false);
  draws_ = {0, 0};
  EXPECT_EQ(pool_.tcpPick(*s, r), 0u) << "a tie keeps the first";
}

TEST_F(UpstreamPoolTest, ConsecutiveGatewayErrorsEjectAndRoundRobinSkipsTheEjected) {
  TrafficSettings t = roundRobin();
  t.consecutive_gateway = 3;
  t.max_ejection_percent = 50;
  auto s = snapshotWith(3, 1, t);
  failConnect(*s, 1);
  failConnect(*s, 1);
  ASSERT_NE(view(1), nullptr);
  EXPECT_FALSE(view(1)->ejected) << "two errors are under the threshold of three";
  failConnect(*s, 1);
  ASSERT_NE(view(1), nullptr);
  EXPECT_TRUE(view(1)->ejected);
  EXPECT_EQ(view(1)->ejections, 1u);
  EXPECT_EQ(stats_.outlier_ejections.load(), 1u);
  std::vector<std::size_t> got;
  for (int i = 0; i < 4; ++i) {
    got.push_back(pool_.pick(*s, s->services->routes[0]));
  }
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 2, 0, 2}));
  EXPECT_NE(renderClusters(pool_.views())
                .find("outbound|8000||httpbin.foo.svc.cluster.local::"
                      "127.0.0.1:15007::health_flags::/failed_outlier_"
                      "check\n"),
            std::string::npos);
}

TEST_F(UpstreamPoolTest, ASuccessInBetweenResetsTheCount) {
  TrafficSettings t = roundRobin();
  t.consecutive_gateway = 2;
  t.max_ejection_percent = 100;
  auto s = snapshotWith(2, 1, t);
  const ServiceRoute& r = s->services->routes[0];
  failConnect(*s, 0);
  pool_.tcpStart(*s, r, r.endpoints[0]);
  pool_.tcpConnected(r.endpoints[0]);
  pool_.tcpDone(r.endpoints[0], true, false);
  failConnect(*s, 0);
  EXPECT_FALSE(view(0)->ejected);
  failConnect(*s, 0);
  EXPECT_TRUE(view(0)->ejected);
}

TEST_F(UpstreamPoolTest, MaxEjectionPercentKeepsEndpointsInButAtLeastOneCanGo) {
  TrafficSettings t = roundRobin();
  t.consecutive_gateway = 1;
  t.max_ejection_percent = 10;  // 10 % of 3 is 0: one may still be ejected
  auto s = snapshotWith(3, 1, t);
  failConnect(*s, 0);
  failConnect(*s, 1);
  EXPECT_TRUE(view(0)->ejected);
  EXPECT_FALSE(view(1)->ejected) << "a second ejection would pass maxEjectionPercent";
}

TEST_F(UpstreamPoolTest, EveryEndpointEjectedMeansAllAreUsed) {
  TrafficSettings t = roundRobin();
  t.consecutive_gateway = 1;
  t.max_ejection_percent = 100;
  auto s = snapshotWith(2, 1, t);
  failConnect(*s, 0);
  failConnect(*s, 1);
  ASSERT_TRUE(view(0)->ejected && view(1)->ejected);
  std::vector<std::size_t> got;
  for (int i = 0; i < 2; ++i) {
    got.push_back(pool_.pick(*s, s->services->routes[0]));
  }
  EXPECT_EQ(got.size(), 2u);
  EXPECT_NE(got[0], got[1]) << "panic: round robin over all of them";
}

TEST_F(UpstreamPoolTest, AnEjectedEndpointReturnsAfterTheEjectionTimeAndWarmsUp) {
  TrafficSettings t = roundRobin();
  t.consecutive_gateway = 1;
  t.max_ejection_percent = 100;
  t.base_ejection_time = std::chrono::milliseconds(20);
  t.warmup = std::chrono::milliseconds(60'000);
  auto s = snapshotWith(2, 1, t);
  failConnect(*s, 1);
  ASSERT_TRUE(view(1)->ejected);
  pool_.onTick(*s);
  EXPECT_TRUE(view(1)->ejected) << "20 ms have not passed";
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  pool_.onTick(*s);
  ASSERT_FALSE(view(1)->ejected);
  EXPECT_TRUE(view(1)->warming);
  // At the start of a minute's warm-up it loses nearly every draw (999 of 1000 here).
  for (int i = 0; i < 4; ++i) {
    draws_ = {999};
    EXPECT_EQ(pool_.pick(*s, s->services->routes[0]), 0u);
  }
}

TEST_F(UpstreamPoolTest, EjectionTimeGrowsWithEachEjection) {
  TrafficSettings t = roundRobin();
  t.consecutive_gateway = 1;
  t.max_ejection_percent = 100;
  t.base_ejection_time = std::chrono::milliseconds(200);
  t.warmup = std::chrono::milliseconds(0);
  t.interval = std::chrono::milliseconds(600'000);
  auto s = snapshotWith(2, 1, t);
  failConnect(*s, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  pool_.onTick(*s);
  ASSERT_FALSE(view(1)->ejected);
  failConnect(*s, 1);  // second ejection: 2 x 200 ms
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  pool_.onTick(*s);
  EXPECT_TRUE(view(1)->ejected) << "the second ejection lasts 400 ms";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  pool_.onTick(*s);
  EXPECT_FALSE(view(1)->ejected);
  EXPECT_EQ(view(1)->ejections, 2u);
}

TEST_F(UpstreamPoolTest, AnEndpointThatLeftTheConfigIsForgottenOnceUnused) {
  auto s1 = snapshotWith(2, 1);
  const ServiceRoute& r = s1->services->routes[0];
  pool_.tcpStart(*s1, r, r.endpoints[1]);  // a connection still open to endpoint 1
  auto s2 = snapshotWith(1, 2);            // endpoint 1 removed
  pool_.onTick(*s2);
  EXPECT_NE(view(1), nullptr) << "kept while a connection uses it";
  pool_.tcpDone(r.endpoints[1], true, false);
  pool_.onTick(*s2);
  EXPECT_EQ(view(1), nullptr);
  EXPECT_NE(view(0), nullptr);
  auto s3 = std::make_shared<Snapshot>();
  auto none = std::make_shared<Services>();
  none->version = 3;
  s3->services = none;
  pool_.onTick(*s3);  // the service is gone
  EXPECT_TRUE(pool_.views().empty());
}

TEST(RenderClustersTest, EnvoyStyleLinesAndMergedCounts) {
  ClusterView a;
  a.name = "outbound|80||web";
  a.load_balancer = "ROUND_ROBIN";
  a.max_requests = 7;
  a.rq_retry = 1;
  a.endpoints.push_back({"10.0.0.1:80", 1, 5, 0, 1, 1, 0, 0, false, false});
  ClusterView b = a;
  b.rq_retry = 2;
  b.endpoints[0].rq_total = 3;
  b.endpoints[0].ejected = true;
  a.merge(b);
  const std::string text = renderClusters({a});
  EXPECT_NE(text.find("outbound|80||web::default_priority::max_requests::7\n"), std::string::npos);
  EXPECT_NE(text.find("outbound|80||web::lb_policy::ROUND_ROBIN\n"), std::string::npos);
  EXPECT_NE(text.find("outbound|80||web::upstream_rq_retry::3\n"), std::string::npos);
  EXPECT_NE(text.find("outbound|80||web::10.0.0.1:80::rq_total::8\n"), std::string::npos);
  EXPECT_NE(text.find("outbound|80||web::10.0.0.1:80::health_flags::/failed_outlier_check\n"),
            std::string::npos);
}

}  // namespace
}  // namespace palisade::proxy
