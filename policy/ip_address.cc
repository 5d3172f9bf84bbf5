#include "policy/ip_address.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace palisade::policy {
namespace {

bool parseV4(std::string_view s, std::uint8_t out[4]) {
  int parts = 0;
  std::size_t pos = 0;
  while (parts < 4) {
    std::size_t end = pos;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9') {
      ++end;
    }
    std::size_t len = end - pos;
    // Leading zeros are refused: "010" is octal to some parsers and decimal to others.
    if (len == 0 || len > 3 || (len > 1 && s[pos] == '0')) {
      return false;
    }
    unsigned value = 0;
    std::from_chars(s.data() + pos, s.data() + end, value);
    if (value > 255) {
      return false;
    }
    out[parts++] = static_cast<std::uint8_t>(value);
    if (parts < 4) {
      if (end >= s.size() || s[end] != '.') {
        return false;
      }
      pos = end + 1;
    } else {
      pos = end;
    }
  }
  return pos == s.size();
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// RFC 4291 section 2.2 text forms: eight groups, "::" once, an embedded IPv4 tail.
bool parseV6(std::string_view s, std::array<std::uint8_t, 16>& out) {
  std::uint16_t groups[8] = {};
  int count = 0;
  int gap = -1;  // index in groups where "::" stands
  std::size_t pos = 0;
  if (s.starts_with("::")) {
    gap = 0;
    pos = 2;
    if (pos == s.size()) {
      out.fill(0);
      return true;
    }
  } else if (s.starts_with(":")) {
    return false;
  }
  while (pos < s.size()) {
    if (count == 8) {
      return false;
    }
    // An IPv4 tail takes the last two groups.
    std::size_t next_colon = s.find(':', pos);
    std::string_view piece = s.substr(
        pos, next_colon == std::string_view::npos ? std::string_view::npos : next_colon - pos);
    if (next_colon == std::string_view::npos && piece.find('.') != std::string_view::npos) {
      std::uint8_t v4[4];
      if (count > 6 || !parseV4(piece, v4)) {
        return false;
      }
      groups[count++] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      groups[count++] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      pos = s.size();
      break;
    }
    if (piece.empty() || piece.size() > 4) {
      return false;
    }
    std::uint16_t value = 0;
    for (char c : piece) {
      int h = hexValue(c);
      if (h < 0) {
        return false;
      }
      value = static_cast<std::uint16_t>(value << 4 | h);
    }
    groups[count++] = value;
    if (next_colon == std::string_view::npos) {
      pos = s.size();
      break;
    }
    pos = next_colon + 1;
    if (pos < s.size() && s[pos] == ':') {
      if (gap >= 0) {
        return false;  // "::" twice
      }
      gap = count;
      ++pos;
    } else if (pos == s.size()) {
      return false;  // trailing single ':'
    }
  }
  if (gap < 0 && count != 8) {
    return false;
  }
  if (gap >= 0 && count > 7) {
    return false;
  }
  std::uint16_t full[8] = {};
  int tail = count - (gap < 0 ? count : gap);
  int head = count - tail;
  for (int i = 0; i < head; ++i) {
    full[i] = groups[i];
  }
  for (int i = 0; i < tail; ++i) {
    full[8 - tail + i] = groups[head + i];
  }
  for (int i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<std::uint8_t>(full[i] >> 8);
    out[2 * i + 1] = static_cast<std::uint8_t>(full[i] & 0xff);
  }
  return true;
}

}  // namespace

Result<IpAddress> IpAddress::parse(std::string_view text) {
  IpAddress ip;
  if (text.find(':') != std::string_view::npos) {
    if (!parseV6(text, ip.bytes_)) {
      return invalidArgument("ip: bad IP address \"" + std::string(text) + "\"");
    }
    ip.family_ = Family::kV6;
    return ip;
  }
  std::uint8_t v4[4];
  if (!parseV4(text, v4)) {
    return invalidArgument("ip: bad IP address \"" + std::string(text) + "\"");
  }
  ip.family_ = Family::kV4;
  for (int i = 0; i < 4; ++i) {
    ip.bytes_[i] = v4[i];
  }
  return ip;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress ip;
  ip.family_ = Family::kV4;
  ip.bytes_[0] = static_cast<std::uint8_t>(host_order >> 24);
  ip.bytes_[1] = static_cast<std::uint8_t>(host_order >> 16);
  ip.bytes_[2] = static_cast<std::uint8_t>(host_order >> 8);
  ip.bytes_[3] = static_cast<std::uint8_t>(host_order);
  return ip;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) {
  IpAddress ip;
  ip.family_ = Family::kV6;
  ip.bytes_ = bytes;
  return ip;
}

std::string IpAddress::toString() const {
  char buf[64];
  if (family_ == Family::kV4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", bytes_[0], bytes_[1], bytes_[2], bytes_[3]);
    return buf;
  }
  if (family_ == Family::kNone) {
    return "";
  }
  // RFC 5952 section 5: an IPv4-mapped address is written "::ffff:a.b.c.d".
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(bytes_.begin(), bytes_.begin() + 12, kMapped)) {
    std::snprintf(buf, sizeof buf, "::ffff:%u.%u.%u.%u", bytes_[12], bytes_[13], bytes_[14],
                  bytes_[15]);
    return buf;
  }
  // RFC 5952: lowercase, longest run of two or more zero groups as "::".
  std::uint16_t g[8];
  for (int i = 0; i < 8; ++i) {
    g[i] = static_cast<std::uint16_t>(bytes_[2 * i] << 8 | bytes_[2 * i + 1]);
  }
  int best = -1;
  int best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) {
      ++j;
    }
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') {
      out += ':';
    }
    std::snprintf(buf, sizeof buf, "%x", g[i]);
    out += buf;
  }
  return out;
}

Result<CidrRange> CidrRange::parse(std::string_view text) {
  std::size_t slash = text.find('/');
  std::string_view addr = text.substr(0, slash);
  Result<IpAddress> ip = IpAddress::parse(addr);
  if (!ip.ok()) {
    if (slash == std::string_view::npos) {
      return ip.error();
    }
    return invalidArgument("ip: bad CIDR range \"" + std::string(text) + "\"");
  }
  CidrRange range;
  range.base_ = *ip;
  const int max_len = ip->family() == IpAddress::Family::kV4 ? 32 : 128;
  range.prefix_len_ = max_len;
  if (slash != std::string_view::npos) {
    std::string_view len = text.substr(slash + 1);
    int value = -1;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), value);
    if (len.empty() || len.size() > 3 || ec != std::errc() || end != len.data() + len.size() ||
        value < 0 || value > max_len || (len.size() > 1 && len[0] == '0')) {
      return invalidArgument("ip: bad CIDR range \"" + std::string(text) + "\"");
    }
    range.prefix_len_ = value;
  }
  return range;
}

bool CidrRange::contains(const IpAddress& ip) const {
  if (ip.family() != base_.family() || !ip.known()) {
    return false;
  }
  const auto& a = ip.bytes();
  const auto& b = base_.bytes();
  int full = prefix_len_ / 8;
  for (int i = 0; i < full; ++i) {
    if (a[i] != b[i]) {
      return false;
    }
  }
  int rest = prefix_len_ % 8;
  if (rest == 0) {
    return true;
  }
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace palisade::policy
