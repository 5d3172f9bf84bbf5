#include "common/grpc/wire.h"

#include "policy/path_normalization.h"

#include <array>
#include <cstring>

namespace palisade::common::grpc {

const char* statusCodeName(StatusCode code) {
  static constexpr std::array<const char*, 17> kNames = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  auto i = static_cast<std::size_t>(code);
  return i < kNames.size() ? kNames[i] : "UNKNOWN";
}

void appendMessage(std::string& out, std::string_view payload) {
  auto n = static_cast<std::uint32_t>(payload.size());
  char prefix[5] = {0, static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                    static_cast<char>(n >> 8), static_cast<char>(n)};
  out.append(prefix, sizeof prefix);
  out.append(payload);
}

Status MessageReader::feed(const std::uint8_t* data, std::size_t len) {
  while (len > 0) {
    if (have_ < 5) {
      std::size_t take = std::min<std::size_t>(5 - have_, len);
      std::memcpy(prefix_ + have_, data, take);
      have_ += take;
      data += take;
      len -= take;
      if (have_ < 5) {
        break;
      }
      if (prefix_[0] != 0) {
        return {StatusCode::kInternal,
                prefix_[0] == 1 ? "compressed message without grpc-encoding" : "bad message flags"};
      }
      length_ = (std::uint32_t{prefix_[1]} << 24) | (std::uint32_t{prefix_[2]} << 16) |
                (std::uint32_t{prefix_[3]} << 8) | std::uint32_t{prefix_[4]};
      if (length_ > max_) {
        return {StatusCode::kResourceExhausted, "message of " + std::to_string(length_) +
                                                    " bytes is larger than the limit of " +
                                                    std::to_string(max_)};
      }
      current_.clear();
    }
    std::size_t want = length_ - current_.size();
    std::size_t take = std::min(want, len);
    current_.append(reinterpret_cast<const char*>(data), take);
    data += take;
    len -= take;
    if (current_.size() == length_) {
      ready_.push_back(std::move(current_));
      current_.clear();
      have_ = 0;
    }
  }
  return Status::Ok();
}

std::optional<std::string> MessageReader::next() {
  if (ready_.empty()) {
    return std::nullopt;
  }
  std::string out = std::move(ready_.front());
  ready_.pop_front();
  return out;
}

std::optional<std::chrono::nanoseconds> parseTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    n = n * 10 + (c - '0');
  }
  using namespace std::chrono;
  std::int64_t unit = 0;
  switch (value.back()) {
    case 'H':
      unit = 3'600'000'000'000;
      break;
    case 'M':
      unit = 60'000'000'000;
      break;
    case 'S':
      unit = 1'000'000'000;
      break;
    case 'm':
      unit = 1'000'000;
      break;
    case 'u':
      unit = 1'000;
      break;
    case 'n':
      unit = 1;
      break;
    default:
      return std::nullopt;
  }
  // 99999999H does not fit in int64 nanoseconds: saturate at a century (no overflow even
  // when added to steady_clock::now()).
  constexpr std::int64_t kMaxNs = 100LL * 365 * 24 * 3'600'000'000'000;
  if (n > kMaxNs / unit) {
    return nanoseconds(kMaxNs);
  }
  return nanoseconds(n * unit);
}

std::string formatTimeout(std::chrono::nanoseconds timeout) {
  constexpr std::int64_t kMax = 99'999'999;
  std::int64_t ns = std::max<std::int64_t>(timeout.count(), 1);
  struct Unit {
    std::int64_t ns;
    char name;
  };
  static constexpr Unit kUnits[] = {{1, 'n'},
                                    {1'000, 'u'},
                                    {1'000'000, 'm'},
                                    {1'000'000'000, 'S'},
                                    {60'000'000'000, 'M'},
                                    {3'600'000'000'000, 'H'}};
  for (const Unit& u : kUnits) {
    std::int64_t n = ns / u.ns + (ns % u.ns != 0 ? 1 : 0);  // round up, without overflow
    if (n <= kMax) {
      return std::to_string(n) + u.name;
    }
  }
  return std::to_string(kMax) + "H";
}

std::string percentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string percentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = policy::hexDigitValue(text[i + 1]);
      int lo = policy::hexDigitValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);  // a malformed escape stays as it is (the spec says so)
  }
  return out;
}

StatusCode statusFromHttp(int http_status) {
  switch (http_status) {
    case 400:
      return StatusCode::kInternal;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kUnknown;
  }
}

bool isGrpcContentType(std::string_view value) {
  constexpr std::string_view kBase = "application/grpc";
  if (value.size() < kBase.size()) {
    return false;
  }
  for (std::size_t i = 0; i < kBase.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != kBase[i]) {
      return false;
    }
  }
  return value.size() == kBase.size() || value[kBase.size()] == '+' || value[kBase.size()] == ';';
}

}  // namespace palisade::common::grpc
