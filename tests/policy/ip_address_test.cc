#include "policy/ip_address.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>

// IpAddress and CidrRange against RFC 4291 section 2.2 (text forms of IPv6 addresses),
// RFC 5952 (the canonical form toString() writes) and the rules Istio's validation applies to
// ipBlocks and ip conditions (pkg/config/security: netip.ParseAddr / netip.ParsePrefix, which
// refuse IPv4 octets with leading zeros).

namespace palisade::policy {
namespace {

using Family = IpAddress::Family;

struct AddressCase {
  std::string name;
  std::string input;
  Family want_family;
  std::string want_string;  // toString(), checked when want_error is empty
  std::string want_error;
};

std::string badAddress(const std::string& text) { return "ip: bad IP address \"" + text + "\""; }

std::string badRange(const std::string& text) { return "ip: bad CIDR range \"" + text + "\""; }

void checkAddress(const AddressCase& c) {
  SCOPED_TRACE(c.name + ": \"" + c.input + "\"");
  Result<IpAddress> got = IpAddress::parse(c.input);
  if (!c.want_error.empty()) {
    ASSERT_FALSE(got.ok()) << "parsed as " << got->toString();
    EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(got.error().message, c.want_error);
    return;
  }
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->family(), c.want_family);
  EXPECT_TRUE(got->known());
  EXPECT_EQ(got->toString(), c.want_string);
  // The canonical text parses back to the same address.
  Result<IpAddress> again = IpAddress::parse(got->toString());
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(*again, *got);
}

TEST(IpAddressTest, ParsesIpv4) {
  const AddressCase cases[] = {
      {"ordinary", "10.1.2.3", Family::kV4, "10.1.2.3", {}},
      {"zero", "0.0.0.0", Family::kV4, "0.0.0.0", {}},
      {"broadcast", "255.255.255.255", Family::kV4, "255.255.255.255", {}},
      {"loopback", "127.0.0.1", Family::kV4, "127.0.0.1", {}},
      {"single zero octets", "1.0.0.1", Family::kV4, "1.0.0.1", {}},
  };
  for (const AddressCase& c : cases) {
    checkAddress(c);
  }
}

TEST(IpAddressTest, RefusesBadIpv4) {
  const char* inputs[] = {
      "",           // empty
      "010.0.0.1",  // leading zero: octal to inet_aton, refused by netip.ParseAddr
      "1.2.3.04",  "00.1.2.3", "1.2.3",     "1.2.3.4.5", "256.0.0.1", "1.2.3.256",  "1000.1.1.1",
      "1..2.3",    "1.2.3.",   ".1.2.3",    "1.2.3.4 ",  " 1.2.3.4",  "+1.2.3.4",   "-1.2.3.4",
      "1.2.3.4/8", "a.b.c.d",  "0x1.2.3.4", "1.2.3.4.",  "1,2,3,4",   "4294967295", "1.2.3.4%eth0",
  };
  for (const char* in : inputs) {
    checkAddress({"bad ipv4", in, Family::kNone, {}, badAddress(in)});
  }
}

TEST(IpAddressTest, ParsesIpv6) {
  const AddressCase cases[] = {
      {"unspecified", "::", Family::kV6, "::", {}},
      {"loopback", "::1", Family::kV6, "::1", {}},
      {"leading group then gap", "1::", Family::kV6, "1::", {}},
      {"documentation prefix", "2001:db8::1", Family::kV6, "2001:db8::1", {}},
      {"full form", "2001:0db8:0000:0000:0000:0000:0000:0001", Family::kV6, "2001:db8::1", {}},
      {"eight groups", "1:2:3:4:5:6:7:8", Family::kV6, "1:2:3:4:5:6:7:8", {}},
      {"uppercase hex", "2001:DB8::ABCD", Family::kV6, "2001:db8::abcd", {}},
      {"gap of one group at end", "1:2:3:4:5:6:7::", Family::kV6, "1:2:3:4:5:6:7:0", {}},
      {"gap of one group at start", "::2:3:4:5:6:7:8", Family::kV6, "0:2:3:4:5:6:7:8", {}},
      {"gap in the middle", "1:2::7:8", Family::kV6, "1:2::7:8", {}},
      {"link local", "fe80::1", Family::kV6, "fe80::1", {}},
      // RFC 5952 4.2.2: a single zero group is not shortened.
      {"single zero group", "2001:db8:0:1:1:1:1:1", Family::kV6, "2001:db8:0:1:1:1:1:1", {}},
      // RFC 5952 4.2.3: the longest run of zeros is shortened; on a tie, the first.
      {"longest run wins", "2001:0:0:1:0:0:0:1", Family::kV6, "2001:0:0:1::1", {}},
      {"first of equal runs", "2001:db8:0:0:1:0:0:1", Family::kV6, "2001:db8::1:0:0:1", {}},
      // RFC 5952 4.1: leading zeros in a group are dropped.
      {"leading zeros in groups", "2001:db8:00ab:0001::", Family::kV6, "2001:db8:ab:1::", {}},
      {"zeros before the run", "0:0:1::", Family::kV6, "0:0:1::", {}},
      {"embedded ipv4 full form", "1:2:3:4:5:6:1.2.3.4", Family::kV6, "1:2:3:4:5:6:102:304", {}},
  };
  for (const AddressCase& c : cases) {
    checkAddress(c);
  }
}

// RFC 5952 section 5: "for these addresses, mixed notation is RECOMMENDED" when the address
// is known to embed an IPv4 address, with "::ffff:192.0.2.1" as the example for IPv4-mapped
// addresses. inet_ntop and Envoy's Ipv6Instance print "::ffff:1.2.3.4" the same way.
TEST(IpAddressTest, Ipv4MappedUsesMixedNotation) {
  Result<IpAddress> got = IpAddress::parse("::ffff:1.2.3.4");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->family(), Family::kV6);
  const std::array<std::uint8_t, 16> want = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
  EXPECT_EQ(got->bytes(), want);
  EXPECT_EQ(got->toString(), "::ffff:1.2.3.4");

  Result<IpAddress> hex = IpAddress::parse("::ffff:102:304");
  ASSERT_TRUE(hex.ok()) << hex.error().message;
  EXPECT_EQ(*hex, *got);
  EXPECT_EQ(hex->toString(), "::ffff:1.2.3.4");
}

TEST(IpAddressTest, RefusesBadIpv6) {
  const char* inputs[] = {
      ":::",                    // three colons
      "1::2::3",                // "::" twice
      "::1::",                  // "::" twice
      "1:2:3:4:5:6:7:8:9",      // nine groups
      "1:2:3:4:5:6:7:8::",      // eight groups and a gap
      "::1:2:3:4:5:6:7:8",      // a gap and eight groups
      "1:2:3:4:5:6:7",          // seven groups, no gap
      ":1::2",                  // leading single colon
      "1::2:",                  // trailing single colon
      "1:",                     // trailing single colon
      ":",                      // a lone colon
      "12345::",                // five hex digits
      "g::1",                   // not hex
      "fe80::1%eth0",           // zone id
      "fe80::1%25eth0",         // percent-encoded zone id
      "[::1]",                  // brackets
      "::1/128",                // a prefix is not an address
      "1.2.3.4::",              // IPv4 tail not last
      "::ffff:1.2.3",           // short IPv4 tail
      "::ffff:01.2.3.4",        // leading zero in the IPv4 tail
      "::ffff:1.2.3.256",       // octet out of range in the IPv4 tail
      "1:2:3:4:5:6:7:1.2.3.4",  // IPv4 tail after seven groups
      "::1.2.3.4:1",            // IPv4 tail not last
      " ::1",                   // leading space
      "::1 ",                   // trailing space
  };
  for (const char* in : inputs) {
    checkAddress({"bad ipv6", in, Family::kNone, {}, badAddress(in)});
  }
}

TEST(IpAddressTest, Constructors) {
  IpAddress unknown;
  EXPECT_EQ(unknown.family(), Family::kNone);
  EXPECT_FALSE(unknown.known());
  EXPECT_EQ(unknown.toString(), "");

  IpAddress v4 = IpAddress::v4(0x0a010203);
  EXPECT_EQ(v4.family(), Family::kV4);
  EXPECT_EQ(v4.toString(), "10.1.2.3");
  Result<IpAddress> parsed = IpAddress::parse("10.1.2.3");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(v4, *parsed);

  std::array<std::uint8_t, 16> bytes{};
  bytes[0] = 0x20;
  bytes[1] = 0x01;
  bytes[2] = 0x0d;
  bytes[3] = 0xb8;
  bytes[15] = 1;
  IpAddress v6 = IpAddress::v6(bytes);
  EXPECT_EQ(v6.family(), Family::kV6);
  EXPECT_EQ(v6.toString(), "2001:db8::1");
  Result<IpAddress> parsed6 = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(parsed6.ok());
  EXPECT_EQ(v6, *parsed6);

  // Same bytes, different family: not equal.
  std::array<std::uint8_t, 16> v4_bytes{};
  v4_bytes[0] = 10;
  v4_bytes[1] = 1;
  v4_bytes[2] = 2;
  v4_bytes[3] = 3;
  EXPECT_FALSE(IpAddress::v6(v4_bytes) == v4);
}

struct RangeCase {
  std::string name;
  std::string input;
  Family want_family;
  int want_prefix;
  std::string want_error;
};

TEST(CidrRangeTest, Parse) {
  const RangeCase cases[] = {
      {"ipv4 /8", "10.0.0.0/8", Family::kV4, 8, {}},
      {"ipv4 /0", "0.0.0.0/0", Family::kV4, 0, {}},
      {"ipv4 /32", "10.1.2.3/32", Family::kV4, 32, {}},
      {"ipv4 /33", "10.1.2.3/33", Family::kNone, 0, badRange("10.1.2.3/33")},
      {"ipv4 single address", "10.1.2.3", Family::kV4, 32, {}},
      // Host bits after the prefix are allowed and ignored (Envoy, netip.ParsePrefix).
      {"ipv4 host bits set", "10.1.2.3/16", Family::kV4, 16, {}},
      {"ipv6 /0", "::/0", Family::kV6, 0, {}},
      {"ipv6 /32", "2001:db8::/32", Family::kV6, 32, {}},
      {"ipv6 /128", "::1/128", Family::kV6, 128, {}},
      {"ipv6 /129", "::1/129", Family::kNone, 0, badRange("::1/129")},
      {"ipv6 single address", "2001:db8::1", Family::kV6, 128, {}},
      {"ipv6 host bits set", "2001:db8::1/64", Family::kV6, 64, {}},
      {"ipv4-mapped range", "::ffff:10.0.0.0/104", Family::kV6, 104, {}},
      {"empty prefix", "10.0.0.0/", Family::kNone, 0, badRange("10.0.0.0/")},
      {"negative prefix", "10.0.0.0/-1", Family::kNone, 0, badRange("10.0.0.0/-1")},
      {"plus sign", "10.0.0.0/+8", Family::kNone, 0, badRange("10.0.0.0/+8")},
      {"leading zero in prefix", "10.0.0.0/08", Family::kNone, 0, badRange("10.0.0.0/08")},
      {"two slashes", "10.0.0.0/8/9", Family::kNone, 0, badRange("10.0.0.0/8/9")},
      {"space after prefix", "10.0.0.0/8 ", Family::kNone, 0, badRange("10.0.0.0/8 ")},
      {"hex prefix", "10.0.0.0/0x8", Family::kNone, 0, badRange("10.0.0.0/0x8")},
      {"huge prefix", "10.0.0.0/4294967304", Family::kNone, 0, badRange("10.0.0.0/4294967304")},
      {"bad address with prefix", "010.0.0.0/8", Family::kNone, 0, badRange("010.0.0.0/8")},
      {"only a prefix", "/8", Family::kNone, 0, badRange("/8")},
      {"bad address without prefix", "10.0.0", Family::kNone, 0, badAddress("10.0.0")},
      {"empty", "", Family::kNone, 0, badAddress("")},
      {"zone id", "fe80::1%eth0/64", Family::kNone, 0, badRange("fe80::1%eth0/64")},
      {"name", "localhost", Family::kNone, 0, badAddress("localhost")},
  };
  for (const RangeCase& c : cases) {
    SCOPED_TRACE(c.name + ": \"" + c.input + "\"");
    Result<CidrRange> got = CidrRange::parse(c.input);
    if (!c.want_error.empty()) {
      ASSERT_FALSE(got.ok()) << "parsed with prefix " << got->prefixLength();
      EXPECT_EQ(got.error().message, c.want_error);
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->family(), c.want_family);
    EXPECT_EQ(got->prefixLength(), c.want_prefix);
  }
}

IpAddress ip(const std::string& text) {
  Result<IpAddress> r = IpAddress::parse(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.error().message;
  return r.ok() ? *r : IpAddress();
}

TEST(CidrRangeTest, Contains) {
  struct Case {
    std::string range;
    std::string address;
    bool want;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.0.0.0", true},
      {"10.0.0.0/8", "10.255.255.255", true},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"10.0.0.0/8", "9.255.255.255", false},
      {"0.0.0.0/0", "0.0.0.0", true},
      {"0.0.0.0/0", "255.255.255.255", true},
      {"10.1.2.3/32", "10.1.2.3", true},
      {"10.1.2.3/32", "10.1.2.4", false},
      {"10.1.2.3", "10.1.2.3", true},
      {"10.1.2.3", "10.1.2.2", false},
      // Host bits are ignored: 10.1.2.3/16 is 10.1.0.0/16.
      {"10.1.2.3/16", "10.1.0.0", true},
      {"10.1.2.3/16", "10.1.255.255", true},
      {"10.1.2.3/16", "10.2.0.0", false},
      // Prefixes that do not end on a byte boundary.
      {"192.168.0.0/23", "192.168.1.255", true},
      {"192.168.0.0/23", "192.168.2.0", false},
      {"192.168.1.0/23", "192.168.0.1", true},
      {"10.0.0.128/25", "10.0.0.127", false},
      {"10.0.0.128/25", "10.0.0.128", true},
      {"10.0.0.0/31", "10.0.0.1", true},
      {"10.0.0.0/31", "10.0.0.2", false},
      {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"::/0", "::", true},
      {"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
      {"::1/128", "::1", true},
      {"::1/128", "::2", false},
      {"2001:db8::1/127", "2001:db8::0", true},
      {"2001:db8::1/127", "2001:db8::2", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      // An IPv4 range never contains an IPv6 address, IPv4-mapped or not, and the other way.
      {"10.0.0.0/8", "::ffff:10.1.2.3", false},
      {"0.0.0.0/0", "::", false},
      {"0.0.0.0/0", "::ffff:1.2.3.4", false},
      {"::/0", "10.1.2.3", false},
      {"::ffff:10.0.0.0/104", "10.1.2.3", false},
      {"::ffff:10.0.0.0/104", "::ffff:10.1.2.3", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.range + " contains " + c.address);
    Result<CidrRange> range = CidrRange::parse(c.range);
    ASSERT_TRUE(range.ok()) << range.error().message;
    EXPECT_EQ(range->contains(ip(c.address)), c.want);
  }
}

TEST(CidrRangeTest, UnknownAddressIsNeverContained) {
  for (const char* text : {"0.0.0.0/0", "::/0", "10.0.0.0/8", "0.0.0.0"}) {
    SCOPED_TRACE(text);
    Result<CidrRange> range = CidrRange::parse(text);
    ASSERT_TRUE(range.ok());
    EXPECT_FALSE(range->contains(IpAddress()));
  }
}

}  // namespace
}  // namespace palisade::policy
