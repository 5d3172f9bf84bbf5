#pragma once

// IpAddress and CidrRange: IPv4/IPv6 addresses and prefixes parsed from text without any
// network header (policy/ stays free of sockets). Used for ipBlocks, remoteIpBlocks and the
// source.ip / remote.ip / destination.ip conditions. Thread: any; plain values.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/result.h"

namespace palisade::policy {

class IpAddress {
 public:
  enum class Family : std::uint8_t { kNone, kV4, kV6 };

  IpAddress() = default;  // kNone: unknown; matches no CIDR range
  static Result<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint32_t host_order);
  static IpAddress v6(const std::array<std::uint8_t, 16>& bytes);

  Family family() const { return family_; }
  bool known() const { return family_ != Family::kNone; }
  // Network-order bytes; IPv4 uses the first 4.
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  std::string toString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  Family family_ = Family::kNone;
  std::array<std::uint8_t, 16> bytes_{};
};

class CidrRange {
 public:
  // "10.0.0.0/8", "2001:db8::/32", or a single address "10.1.2.3" (a /32 or /128).
  // Host bits after the prefix are allowed and ignored, as Envoy does.
  static Result<CidrRange> parse(std::string_view text);

  bool contains(const IpAddress& ip) const;
  IpAddress::Family family() const { return base_.family(); }
  int prefixLength() const { return prefix_len_; }

 private:
  IpAddress base_;
  int prefix_len_ = 0;
};

}  // namespace palisade::policy
