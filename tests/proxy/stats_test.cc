#include "proxy/stats.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

// The per-worker counters folded into one Prometheus text page.

namespace palisade::proxy {
namespace {

std::size_t idx(InboundResult r) { return static_cast<std::size_t>(r); }
std::size_t idx(common::HandshakeFailure f) { return static_cast<std::size_t>(f); }

// Every sample line "name{labels} value", keyed by "name{labels}".
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

// The text exposition format (prometheus.io/docs/instrumenting/exposition_formats): HELP and
// TYPE lines, then samples of that family; names and labels of the allowed characters; label
// values quoted; a numeric value; a newline at the end.
void expectExpositionFormat(const std::string& text) {
  static const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex kType(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge))");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")"
      R"((,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?))");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream in(text);
  std::string line;
  std::string typed;  // the family the last TYPE line declared
  std::set<std::string> families;
  int n = 0;
  while (std::getline(in, line)) {
    SCOPED_TRACE("line " + std::to_string(++n) + ": " + line);
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      continue;
    }
    if (std::regex_match(line, m, kType)) {
      typed = m[1];
      EXPECT_TRUE(families.insert(typed).second) << "a family declared twice";
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, m, kSample)) << "not a sample";
    EXPECT_EQ(m[1], typed) << "a sample outside its family";
  }
}

TEST(StatsTest, WorkersAreSummed) {
  WorkerStats a;
  WorkerStats b;
  inc(a.inbound[idx(InboundResult::kAccepted)], 3);
  inc(b.inbound[idx(InboundResult::kAccepted)], 4);
  inc(b.inbound[idx(InboundResult::kDenied)]);
  inc(a.inbound_handshake_failures[idx(common::HandshakeFailure::kUntrusted)], 2);
  inc(b.inbound_handshake_failures[idx(common::HandshakeFailure::kUntrusted)], 5);
  inc(b.outbound_handshake_failures[idx(common::HandshakeFailure::kSecureNaming)]);
  inc(a.http_allowed, 10);
  inc(b.http_allowed, 20);
  inc(b.http_denied, 2);
  inc(a.closed_by_policy);
  inc(b.closed_cert_expired, 3);
  inc(a.outbound_connections, 6);
  inc(b.outbound_connect_failures);
  inc(b.outbound_passthrough, 2);
  inc(a.active_connections, 5);
  inc(b.active_connections, 2);
  dec(b.active_connections);
  inc(a.tcp_received_bytes, 1000);
  inc(b.tcp_received_bytes, 24);
  inc(b.tcp_sent_bytes, 7);
  ProcessStats p;
  inc(p.policy_reloads_ok, 2);
  inc(p.policy_reloads_rejected);
  inc(p.identity_reloads_ok, 3);
  p.cert_expiry_seconds = 1234567;
  p.policy_version = 42;

  const std::string text = renderPrometheus({&a, &b}, p);
  const auto s = samples(text);
  const std::map<std::string, std::string> want = {
      {R"(palisade_inbound_connections_total{result="accepted"})", "7"},
      {R"(palisade_inbound_connections_total{result="denied"})", "1"},
      {R"(palisade_inbound_connections_total{result="handshake_failed"})", "0"},
      {R"(palisade_inbound_connections_total{result="plaintext_refused"})", "0"},
      {R"(palisade_inbound_connections_total{result="over_limit"})", "0"},
      {R"(palisade_tls_handshake_failures_total{direction="inbound",reason="untrusted"})", "7"},
      {R"(palisade_tls_handshake_failures_total{direction="outbound",reason="untrusted"})", "0"},
      {R"(palisade_tls_handshake_failures_total{direction="outbound",reason="secure_naming"})",
       "1"},
      {R"(palisade_http_requests_total{result="allowed"})", "30"},
      {R"(palisade_http_requests_total{result="denied"})", "2"},
      {R"(palisade_connections_closed_total{reason="policy_changed"})", "1"},
      {R"(palisade_connections_closed_total{reason="peer_certificate_expired"})", "3"},
      {R"(palisade_outbound_connections_total{result="connected"})", "6"},
      {R"(palisade_outbound_connections_total{result="failed"})", "1"},
      {R"(palisade_outbound_connections_total{result="passthrough"})", "2"},
      {"palisade_active_connections", "6"},
      {R"(palisade_tcp_bytes_total{direction="received"})", "1024"},
      {R"(palisade_tcp_bytes_total{direction="sent"})", "7"},
      {R"(palisade_config_reloads_total{kind="policies",result="ok"})", "2"},
      {R"(palisade_config_reloads_total{kind="policies",result="rejected"})", "1"},
      {R"(palisade_config_reloads_total{kind="identity",result="ok"})", "3"},
      {R"(palisade_config_reloads_total{kind="identity",result="rejected"})", "0"},
      {R"(palisade_certificate_expiry_timestamp_seconds{kind="svid"})", "1234567"},
      {"palisade_policy_version", "42"},
  };
  for (const auto& [key, value] : want) {
    SCOPED_TRACE(key);
    auto it = s.find(key);
    ASSERT_NE(it, s.end()) << text;
    EXPECT_EQ(it->second, value);
  }
  EXPECT_EQ(s.count(R"(palisade_tls_handshake_failures_total{direction="inbound",reason="none"})"),
            0u)
      << "kNone is no failure";
  // Every reason of both directions is there, at zero if need be.
  for (std::size_t i = 1; i < kHandshakeReasons; ++i) {
    const std::string reason =
        common::handshakeFailureName(static_cast<common::HandshakeFailure>(i));
    for (const char* dir : {"inbound", "outbound"}) {
      EXPECT_EQ(s.count(std::string("palisade_tls_handshake_failures_total{direction=\"") + dir +
                        "\",reason=\"" + reason + "\"}"),
                1u)
          << reason;
    }
  }
  expectExpositionFormat(text);
}

TEST(StatsTest, TypesAndHelp) {
  WorkerStats w;
  const std::string text = renderPrometheus({&w}, ProcessStats{});
  for (const char* line : {
           "# TYPE palisade_inbound_connections_total counter\n",
           "# TYPE palisade_tls_handshake_failures_total counter\n",
           "# TYPE palisade_active_connections gauge\n",
           "# TYPE palisade_certificate_expiry_timestamp_seconds gauge\n",
           "# TYPE palisade_policy_version gauge\n",
           "# HELP palisade_tcp_bytes_total ",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  expectExpositionFormat(text);
}

TEST(StatsTest, NoWorkersIsAllZeros) {
  const std::string text = renderPrometheus({}, ProcessStats{});
  const auto s = samples(text);
  EXPECT_EQ(s.at(R"(palisade_inbound_connections_total{result="accepted"})"), "0");
  EXPECT_EQ(s.at("palisade_active_connections"), "0");
  expectExpositionFormat(text);
}

TEST(StatsTest, InboundResultNames) {
  EXPECT_STREQ(inboundResultName(InboundResult::kAccepted), "accepted");
  EXPECT_STREQ(inboundResultName(InboundResult::kOverLimit), "over_limit");
  EXPECT_STREQ(inboundResultName(InboundResult::kCount), "?");
}

TEST(StatsTest, IncAndDec) {
  Counter c{0};
  inc(c);
  inc(c, 41);
  dec(c);
  EXPECT_EQ(c.load(), 41u);
}

}  // namespace
}  // namespace palisade::proxy
