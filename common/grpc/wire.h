#pragma once

// gRPC over HTTP/2, the parts that are only bytes and text (grpc/grpc,
// doc/PROTOCOL-HTTP2.md): status codes, the 5-byte length-prefixed message framing, the
// grpc-timeout header, percent-encoding of grpc-message, and the mapping of HTTP statuses
// to gRPC codes. No sockets here (common/grpc/server.h and channel.h are the transport).
// Thread: any; no shared state.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace palisade::common::grpc {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "OK", "CANCELLED", ... as gRPC's documentation spells them.
const char* statusCodeName(StatusCode code);

struct Status {
  StatusCode code = StatusCode::kOk;
  std::string message;

  bool ok() const { return code == StatusCode::kOk; }
  static Status Ok() { return {}; }
};

// The default limit on one message, as gRPC's (4 MiB).
inline constexpr std::size_t kDefaultMaxMessage = 4 * 1024 * 1024;

// Appends `payload` framed as one uncompressed message.
void appendMessage(std::string& out, std::string_view payload);

// Splits a DATA byte stream into messages. Compressed messages are refused (we never
// advertise grpc-accept-encoding, so a peer must not send any).
class MessageReader {
 public:
  explicit MessageReader(std::size_t max_message = kDefaultMaxMessage) : max_(max_message) {}

  // Adds bytes; an error status (RESOURCE_EXHAUSTED, INTERNAL) ends the stream.
  Status feed(const std::uint8_t* data, std::size_t len);
  // The next complete message, in order.
  std::optional<std::string> next();
  // True between messages (what a clean end of stream needs).
  bool idle() const { return have_ == 0 && ready_.empty(); }

 private:
  std::size_t max_;
  std::uint8_t prefix_[5] = {};
  std::size_t have_ = 0;  // bytes of the current prefix + payload received
  std::uint32_t length_ = 0;
  std::string current_;
  std::deque<std::string> ready_;  // complete messages
};

// grpc-timeout: 1 to 8 digits and a unit (H M S m u n). Nullopt when malformed.
std::optional<std::chrono::nanoseconds> parseTimeout(std::string_view value);
// The shortest exact-enough form: at most 8 digits, rounding up.
std::string formatTimeout(std::chrono::nanoseconds timeout);

// grpc-message is percent-encoded UTF-8: bytes outside 0x20..0x7E and '%' are escaped.
std::string percentEncode(std::string_view text);
std::string percentDecode(std::string_view text);

// A response without grpc-status: the code an HTTP status maps to (PROTOCOL-HTTP2.md's
// "HTTP to gRPC status code mapping").
StatusCode statusFromHttp(int http_status);

// A content-type a gRPC peer accepts: "application/grpc" or "application/grpc+..."/";...".
bool isGrpcContentType(std::string_view value);

}  // namespace palisade::common::grpc
