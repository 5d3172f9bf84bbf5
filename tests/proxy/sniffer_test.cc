#include "proxy/sniffer.h"

#include <gtest/gtest.h>

#include "proxy/snapshot.h"

// Protocol sniffing on the first bytes, and the SNI an outbound sidecar sends so the inbound
// one can tell the port when the connection was not captured.

namespace palisade::proxy {
namespace {

TEST(SnifferTest, AlpnFromFirstBytes) {
  struct Row {
    std::string_view in;
    std::optional<std::string_view> want;
  };
  for (const Row& row : {
           Row{"", std::nullopt},
           Row{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2"},
           Row{"PRI * HTTP/2.0\r\n", "h2"},
           Row{"PRI * HT", std::nullopt},  // could still be the preface
           Row{"GET / HTTP/1.1\r\n", "http/1.1"},
           Row{"POST /x HTTP/1.1\r\n", "http/1.1"},
           Row{"OPTIONS * HTTP/1.1\r\n", "http/1.1"},
           Row{"GE", std::nullopt},
           Row{" GET", ""},
           Row{"get / HTTP/1.1", ""},
           Row{"\x16\x03\x01\x02\x00", ""},  // a TLS ClientHello is no plaintext HTTP
           Row{"SSH-2.0-OpenSSH_9.2\r\n", ""},
           Row{"ABCDEFGHIJKLMNOPQRSTUVWX", ""},
       }) {
    SCOPED_TRACE(std::string(row.in));
    EXPECT_EQ(sniffAlpn(row.in), row.want);
  }
}

TEST(SnifferTest, TlsRecognisedByTheHandshakeRecordType) {
  EXPECT_EQ(sniffTls(""), std::nullopt);
  EXPECT_EQ(sniffTls("\x16\x03\x01"), true);
  EXPECT_EQ(sniffTls("GET /"), false);
  EXPECT_EQ(sniffTls(std::string_view("\0", 1)), false);
}

TEST(SnifferTest, OutboundSniCarriesThePort) {
  EXPECT_EQ(outboundSni(8000, "httpbin.foo.svc.cluster.local"),
            "outbound_.8000_._.httpbin.foo.svc.cluster.local");
  EXPECT_EQ(portFromSni("outbound_.8000_._.httpbin.foo.svc.cluster.local"), 8000);
  EXPECT_EQ(portFromSni("outbound_.65535_._.x"), 65535);
  for (std::string_view bad : {"", "httpbin", "outbound_.0_._.x", "outbound_.65536_._.x",
                               "outbound_.80", "outbound_.x_._.y", "inbound_.80_._.x"}) {
    SCOPED_TRACE(std::string(bad));
    EXPECT_EQ(portFromSni(bad), 0);
  }
}

}  // namespace
}  // namespace palisade::proxy
