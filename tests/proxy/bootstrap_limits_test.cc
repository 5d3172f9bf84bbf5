#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "proxy/bootstrap.h"
#include "tests/mocks/common/temp_dir.h"

// The bootstrap's bounds: explainDenials, drainTimeout and limits.*, their defaults, and their
// errors as file:line:col (bootstrap_test.cc covers the other fields).

namespace palisade::proxy {
namespace {

using namespace std::chrono_literals;
using common::test_env::TempDir;

// Five lines; the references are not checked here, so the files need not exist.
constexpr const char* kIdentity =
    "identity:\n"
    "  certificateChain: chain.pem\n"
    "  privateKey: key.pem\n"
    "  trustBundles:\n"
    "  - file: bundle.pem\n";

class BootstrapLimitsTest : public ::testing::Test {
 protected:
  BootstrapConfig load(const std::string& yaml) {
    path_ = dir_.write("bootstrap.yaml", std::string(kIdentity) + yaml);
    out_ = {};
    return loadBootstrap(path_, out_);
  }

  TempDir dir_;
  std::string path_;
  policy::LoadResult out_;
};

TEST_F(BootstrapLimitsTest, DefaultsWhenAbsent) {
  BootstrapConfig c = load("");
  ASSERT_TRUE(out_.ok()) << out_.errorText();
  const ProxyLimits defaults;
  EXPECT_FALSE(c.explain_denials);
  EXPECT_EQ(c.drain_timeout, 5s);
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.handshake_timeout, 10s);
  EXPECT_EQ(c.limits.sniff_timeout, 1s);
  EXPECT_EQ(c.limits.connect_timeout, 10s);
  EXPECT_EQ(c.limits.idle_timeout, 1h);
  EXPECT_EQ(c.limits.max_header_bytes, 60u * 1024);
  EXPECT_EQ(c.limits.max_headers, 100u);
  EXPECT_EQ(c.limits.max_concurrent_streams, 100u);
  EXPECT_EQ(c.limits.buffer_limit, 1024u * 1024);
  EXPECT_EQ(c.limits.buffer_limit, defaults.buffer_limit);

  // An empty limits mapping keeps them too.
  c = load("limits: {}\n");
  ASSERT_TRUE(out_.ok()) << out_.errorText();
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.idle_timeout, 1h);
}

TEST_F(BootstrapLimitsTest, ReadsEveryField) {
  BootstrapConfig c = load(
      "explainDenials: true\n"
      "drainTimeout: 1m30s\n"
      "limits:\n"
      "  maxConnections: 20\n"
      "  handshakeTimeout: 250ms\n"
      "  sniffTimeout: 1s500ms\n"
      "  connectTimeout: 3s\n"
      "  idleTimeout: 2h\n"
      "  maxHeaderBytes: 8192\n"
      "  maxHeaders: 50\n"
      "  maxConcurrentStreams: 7\n"
      "  bufferLimit: 65536\n");
  ASSERT_TRUE(out_.ok()) << out_.errorText();
  EXPECT_TRUE(c.explain_denials);
  EXPECT_EQ(c.drain_timeout, 90s);
  EXPECT_EQ(c.limits.max_connections, 20u);
  EXPECT_EQ(c.limits.handshake_timeout, 250ms);
  EXPECT_EQ(c.limits.sniff_timeout, 1500ms);
  EXPECT_EQ(c.limits.connect_timeout, 3s);
  EXPECT_EQ(c.limits.idle_timeout, 2h);
  EXPECT_EQ(c.limits.max_header_bytes, 8192u);
  EXPECT_EQ(c.limits.max_headers, 50u);
  EXPECT_EQ(c.limits.max_concurrent_streams, 7u);
  EXPECT_EQ(c.limits.buffer_limit, 65536u);

  c = load("explainDenials: false\n");
  ASSERT_TRUE(out_.ok()) << out_.errorText();
  EXPECT_FALSE(c.explain_denials);
}

TEST_F(BootstrapLimitsTest, UpperBoundsAreAccepted) {
  BootstrapConfig c = load(
      "limits:\n"
      "  maxConnections: 1000000\n"
      "  maxHeaderBytes: 1048576\n"
      "  maxHeaders: 10000\n"
      "  maxConcurrentStreams: 1000000\n"
      "  bufferLimit: 1073741824\n");
  ASSERT_TRUE(out_.ok()) << out_.errorText();
  EXPECT_EQ(c.limits.max_connections, 1000000u);
  EXPECT_EQ(c.limits.max_header_bytes, 1048576u);
  EXPECT_EQ(c.limits.max_headers, 10000u);
  EXPECT_EQ(c.limits.max_concurrent_streams, 1000000u);
  EXPECT_EQ(c.limits.buffer_limit, 1073741824u);
}

TEST_F(BootstrapLimitsTest, ErrorsCarryLineAndColumn) {
  struct Row {
    std::string name;
    std::string yaml;  // after the 5 identity lines
    std::string want;  // "LINE:COL: message"
  };
  const std::string duration = " must be a positive duration such as 100ms, 10s or 1h, got ";
  // "{file}": the bootstrap file, for a second error.
  const std::vector<Row> rows = {
      {"explainDenials not a boolean", "explainDenials: yes\n",
       "6:17: explainDenials must be true or false"},
      {"explainDenials capitalised", "explainDenials: True\n",
       "6:17: explainDenials must be true or false"},
      {"explainDenials a list", "explainDenials: [true]\n",
       "6:17: explainDenials must be a string"},
      {"drainTimeout without a unit", "drainTimeout: 5\n",
       "6:15: drainTimeout" + duration + "\"5\""},
      {"drainTimeout zero", "drainTimeout: 0s\n", "6:15: drainTimeout" + duration + "\"0s\""},
      {"drainTimeout negative", "drainTimeout: -1s\n", "6:15: drainTimeout" + duration + "\"-1s\""},
      {"limits not a mapping", "limits: 5\n", "6:9: limits must be a mapping"},
      {"limits empty", "limits:\n", "6:1: limits must be a mapping"},
      {"unknown limit", "limits:\n  maxConns: 5\n", "7:3: unknown field \"maxConns\" in limits"},
      {"maxConnections zero", "limits:\n  maxConnections: 0\n",
       "7:19: limits.maxConnections must be a whole number in 1..1000000"},
      {"maxConnections too many", "limits:\n  maxConnections: 1000001\n",
       "7:19: limits.maxConnections must be a whole number in 1..1000000"},
      {"maxConnections negative", "limits:\n  maxConnections: -5\n",
       "7:19: limits.maxConnections must be a whole number in 1..1000000"},
      {"maxConnections with a unit", "limits:\n  maxConnections: 10k\n",
       "7:19: limits.maxConnections must be a whole number in 1..1000000"},
      {"maxHeaderBytes too many", "limits:\n  maxHeaderBytes: 1048577\n",
       "7:19: limits.maxHeaderBytes must be a whole number in 1..1048576"},
      {"maxHeaders too many", "limits:\n  maxHeaders: 10001\n",
       "7:15: limits.maxHeaders must be a whole number in 1..10000"},
      {"maxConcurrentStreams zero", "limits:\n  maxConcurrentStreams: 0\n",
       "7:25: limits.maxConcurrentStreams must be a whole number in 1..1000000"},
      {"bufferLimit too big", "limits:\n  bufferLimit: 1073741825\n",
       "7:16: limits.bufferLimit must be a whole number in 1..1073741824"},
      {"bufferLimit overflowing", "limits:\n  bufferLimit: 99999999999999999999999\n",
       "7:16: limits.bufferLimit must be a whole number in 1..1073741824"},
      {"handshakeTimeout zero", "limits:\n  handshakeTimeout: 0ms\n",
       "7:21: limits.handshakeTimeout" + duration + "\"0ms\""},
      {"sniffTimeout bad unit", "limits:\n  sniffTimeout: 1w\n",
       "7:17: limits.sniffTimeout" + duration + "\"1w\""},
      {"connectTimeout empty", "limits:\n  connectTimeout: \"\"\n",
       "7:19: limits.connectTimeout" + duration + "\"\""},
      {"idleTimeout a mapping", "limits:\n  idleTimeout: {h: 1}\n",
       "7:16: limits.idleTimeout must be a string"},
      {"two errors", "limits:\n  maxHeaders: 0\n  bufferLimit: 0\n",
       "7:15: limits.maxHeaders must be a whole number in 1..10000\n{file}:8:16: "
       "limits.bufferLimit must be a whole number in 1..1073741824"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    BootstrapConfig c = load(row.yaml);
    std::string want = row.want;
    if (auto at = want.find("{file}"); at != std::string::npos) {
      want.replace(at, 6, path_);
    }
    EXPECT_EQ(out_.errorText(), path_ + ":" + want + "\n");
  }
}

TEST_F(BootstrapLimitsTest, ABadValueKeepsTheDefault) {
  BootstrapConfig c = load("drainTimeout: never\nlimits:\n  maxConnections: 0\n");
  EXPECT_FALSE(out_.ok());
  EXPECT_EQ(c.drain_timeout, 5s);
  EXPECT_EQ(c.limits.max_connections, 10000u);
}

}  // namespace
}  // namespace palisade::proxy
