#include "common/grpc/wire.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

// The byte-and-text half of gRPC over HTTP/2 (doc/PROTOCOL-HTTP2.md): message framing fed in
// every possible chunking, grpc-timeout, grpc-message percent-encoding, the HTTP status
// mapping and content types.

namespace palisade::common::grpc {
namespace {

using namespace std::chrono_literals;

const std::uint8_t* bytes(const std::string& s) {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}

std::vector<std::string> drain(MessageReader& reader) {
  std::vector<std::string> out;
  while (auto m = reader.next()) {
    out.push_back(std::move(*m));
  }
  return out;
}

// --- status names ---

TEST(GrpcWireTest, StatusCodeNames) {
  EXPECT_STREQ(statusCodeName(StatusCode::kOk), "OK");
  EXPECT_STREQ(statusCodeName(StatusCode::kCancelled), "CANCELLED");
  EXPECT_STREQ(statusCodeName(StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_STREQ(statusCodeName(StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(statusCodeName(StatusCode::kUnimplemented), "UNIMPLEMENTED");
  EXPECT_STREQ(statusCodeName(StatusCode::kUnavailable), "UNAVAILABLE");
  EXPECT_STREQ(statusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_STREQ(statusCodeName(static_cast<StatusCode>(17)), "UNKNOWN");
  EXPECT_STREQ(statusCodeName(static_cast<StatusCode>(-1)), "UNKNOWN");
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_FALSE((Status{StatusCode::kInternal, "x"}).ok());
}

// --- framing ---

TEST(GrpcWireTest, AppendMessage_PrefixIsFlagAndBigEndianLength) {
  std::string out;
  appendMessage(out, "");
  appendMessage(out, "abc");
  std::string big(0x010203, 'x');
  appendMessage(out, big);
  ASSERT_EQ(out.size(), 5u + 8u + 5u + big.size());
  EXPECT_EQ(out.substr(0, 5), std::string("\0\0\0\0\0", 5));
  EXPECT_EQ(out.substr(5, 8), std::string("\0\0\0\0\3abc", 8));
  EXPECT_EQ(out.substr(13, 5), std::string("\0\0\x01\x02\x03", 5));
}

TEST(GrpcWireTest, MessageReader_EveryTwoWaySplit) {
  const std::vector<std::string> messages = {"", "a",           std::string(300, 'b'),
                                             "", "hello world", std::string("\0\1\2\xff", 4)};
  std::string stream;
  for (const auto& m : messages) {
    appendMessage(stream, m);
  }
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    MessageReader reader;
    EXPECT_TRUE(reader.idle());
    ASSERT_TRUE(reader.feed(bytes(stream), split).ok());
    std::vector<std::string> got = drain(reader);
    ASSERT_TRUE(reader.feed(bytes(stream) + split, stream.size() - split).ok());
    for (auto& m : drain(reader)) {
      got.push_back(std::move(m));
    }
    EXPECT_EQ(got, messages);
    EXPECT_TRUE(reader.idle());
  }
}

TEST(GrpcWireTest, MessageReader_OneByteAtATime) {
  const std::vector<std::string> messages = {"x", "", std::string(70'000, 'y'), "z"};
  std::string stream;
  for (const auto& m : messages) {
    appendMessage(stream, m);
  }
  MessageReader reader;
  std::vector<std::string> got;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    ASSERT_TRUE(reader.feed(bytes(stream) + i, 1).ok());
    if (i + 1 < stream.size()) {
      // Mid-stream the reader is inside a message unless one just ended.
      for (auto& m : drain(reader)) {
        got.push_back(std::move(m));
      }
    }
  }
  for (auto& m : drain(reader)) {
    got.push_back(std::move(m));
  }
  EXPECT_EQ(got, messages);
  EXPECT_TRUE(reader.idle());
}

TEST(GrpcWireTest, MessageReader_RandomChunkings) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<std::string> messages;
    std::string stream;
    int count = static_cast<int>(rng() % 8);
    for (int i = 0; i < count; ++i) {
      std::string m(rng() % 40, '\0');
      for (char& c : m) {
        c = static_cast<char>(rng());
      }
      appendMessage(stream, m);
      messages.push_back(std::move(m));
    }
    MessageReader reader;
    std::vector<std::string> got;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      std::size_t n = std::min<std::size_t>(stream.size() - pos, rng() % 12);
      ASSERT_TRUE(reader.feed(bytes(stream) + pos, n).ok());
      pos += n;
      for (auto& m : drain(reader)) {
        got.push_back(std::move(m));
      }
    }
    EXPECT_EQ(got, messages);
    EXPECT_TRUE(reader.idle());
  }
}

TEST(GrpcWireTest, MessageReader_IdleOnlyBetweenMessages) {
  std::string stream;
  appendMessage(stream, "abcdef");
  for (std::size_t n = 1; n < stream.size(); ++n) {
    SCOPED_TRACE(n);
    MessageReader reader;
    ASSERT_TRUE(reader.feed(bytes(stream), n).ok());
    EXPECT_FALSE(reader.idle());
    EXPECT_EQ(reader.next(), std::nullopt);
  }
  MessageReader reader;
  ASSERT_TRUE(reader.feed(bytes(stream), stream.size()).ok());
  EXPECT_FALSE(reader.idle()) << "a message not yet taken";
  EXPECT_EQ(reader.next(), "abcdef");
  EXPECT_TRUE(reader.idle());
}

TEST(GrpcWireTest, MessageReader_LimitIsInclusive) {
  MessageReader reader(10);
  std::string stream;
  appendMessage(stream, std::string(10, 'a'));
  ASSERT_TRUE(reader.feed(bytes(stream), stream.size()).ok());
  EXPECT_EQ(reader.next(), std::string(10, 'a'));
}

TEST(GrpcWireTest, MessageReader_OversizeIsResourceExhaustedFromThePrefixAlone) {
  MessageReader reader(10);
  std::string stream;
  appendMessage(stream, std::string(11, 'a'));
  // The prefix alone is enough to refuse: nothing of the payload needs to arrive.
  ASSERT_TRUE(reader.feed(bytes(stream), 4).ok());
  Status st = reader.feed(bytes(stream) + 4, 1);
  EXPECT_EQ(st.code, StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message, "message of 11 bytes is larger than the limit of 10");
}

TEST(GrpcWireTest, MessageReader_HugeDeclaredLengthIsRefused) {
  MessageReader reader;  // 4 MiB
  const std::string prefix("\0\xff\xff\xff\xff", 5);
  Status st = reader.feed(bytes(prefix), prefix.size());
  EXPECT_EQ(st.code, StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message, "message of 4294967295 bytes is larger than the limit of 4194304");
}

TEST(GrpcWireTest, MessageReader_OversizeAfterAGoodMessage) {
  MessageReader reader(4);
  std::string stream;
  appendMessage(stream, "ok");
  appendMessage(stream, "too long");
  Status st = reader.feed(bytes(stream), stream.size());
  EXPECT_EQ(st.code, StatusCode::kResourceExhausted);
  EXPECT_EQ(reader.next(), "ok") << "messages before the bad one stay readable";
}

TEST(GrpcWireTest, MessageReader_CompressedFlagIsRefused) {
  MessageReader reader;
  const std::string compressed("\1\0\0\0\1x", 6);
  Status st = reader.feed(bytes(compressed), compressed.size());
  EXPECT_EQ(st.code, StatusCode::kInternal);
  EXPECT_EQ(st.message, "compressed message without grpc-encoding");
  EXPECT_EQ(reader.next(), std::nullopt);
}

TEST(GrpcWireTest, MessageReader_UnknownFlagsAreRefused) {
  for (int flag = 2; flag < 256; ++flag) {
    SCOPED_TRACE(flag);
    MessageReader reader;
    std::string frame("\0\0\0\0\0", 5);
    frame[0] = static_cast<char>(flag);
    Status st = reader.feed(bytes(frame), frame.size());
    EXPECT_EQ(st.code, StatusCode::kInternal);
    EXPECT_EQ(st.message, "bad message flags");
  }
}

// --- grpc-timeout ---

struct TimeoutRow {
  std::string input;
  std::optional<std::chrono::nanoseconds> want;
};

TEST(GrpcWireTest, ParseTimeout_Table) {
  const std::vector<TimeoutRow> rows = {
      {"1n", 1ns},
      {"0n", 0ns},
      {"1u", 1us},
      {"1m", 1ms},
      {"1S", 1s},
      {"1M", 1min},
      {"1H", 1h},
      {"250m", 250ms},
      {"00000001S", 1s},             // 8 digits, leading zeros included
      {"000000001S", std::nullopt},  // 9 digits
      {"99999999n", 99'999'999ns},   // 8 digits
      {"99999999S", std::chrono::seconds(99'999'999)},
      {"123456789S", std::nullopt},  // 9 digits
      {"", std::nullopt},
      {"S", std::nullopt},  // no digits
      {"1", std::nullopt},  // no unit
      {"10", std::nullopt},
      {"1s", std::nullopt},  // units are case-sensitive
      {"1h", std::nullopt},
      {"1x", std::nullopt},
      {"1 S", std::nullopt},
      {" 1S", std::nullopt},
      {"-1S", std::nullopt},
      {"+1S", std::nullopt},
      {"1.5S", std::nullopt},
      {"0x1S", std::nullopt},
      {"1SS", std::nullopt},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE("\"" + row.input + "\"");
    EXPECT_EQ(parseTimeout(row.input), row.want);
  }
}

TEST(GrpcWireTest, ParseTimeout_EveryUnitByte) {
  for (int b = 0; b < 256; ++b) {
    std::string v = "5";
    v.push_back(static_cast<char>(b));
    auto got = parseTimeout(v);
    bool unit =
        std::string_view("HMSmun").find(static_cast<char>(b)) != std::string_view::npos && b != 0;
    EXPECT_EQ(got.has_value(), unit) << "unit byte " << b;
  }
}

TEST(GrpcWireTest, ParseTimeout_EveryDigitByte) {
  for (int b = 0; b < 256; ++b) {
    std::string v;
    v.push_back(static_cast<char>(b));
    v.push_back('S');
    EXPECT_EQ(parseTimeout(v).has_value(), b >= '0' && b <= '9') << "digit byte " << b;
  }
}

// 99999999H is 3.6e20 ns, more than a signed 64-bit nanosecond count holds: the parse must
// saturate (or refuse), not overflow. Whatever it saturates at must be a long deadline (a
// century or more) and leave room to add it to steady_clock::now(). Run in a child process:
// an overflow is undefined behaviour and aborts a sanitizer build.
TEST(GrpcWireTest, ParseTimeout_LargestHoursDoNotOverflow) {
  EXPECT_EXIT(
      {
        constexpr auto kCentury = std::chrono::hours(24 * 365 * 100);
        bool good = true;
        for (const char* v : {"99999999H", "99999999M", "2562048H"}) {
          auto t = parseTimeout(v);
          good = good &&
                 (!t.has_value() || (*t >= kCentury && *t <= std::chrono::nanoseconds::max() / 2));
        }
        std::exit(good ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(GrpcWireTest, FormatTimeout_Table) {
  const std::vector<std::pair<std::chrono::nanoseconds, std::string>> rows = {
      {1ns, "1n"},
      {0ns, "1n"},  // never 0: a zero deadline still has to be sent as one
      {-5s, "1n"},
      {99'999'999ns, "99999999n"},
      {100'000'000ns, "100000u"},
      {100'000'001ns, "100001u"},  // rounds up: never a shorter deadline
      {1s, "1000000u"},
      {100s, "100000m"},
      {std::chrono::hours(1), "3600000m"},
      {std::chrono::hours(100'000), "6000000M"},
      {std::chrono::hours(2'000'000), "2000000H"},
  };
  for (const auto& [in, want] : rows) {
    SCOPED_TRACE(std::to_string(in.count()) + "ns");
    std::string got = formatTimeout(in);
    EXPECT_EQ(got, want);
    EXPECT_LE(got.size(), 9u);
  }
}

TEST(GrpcWireTest, FormatTimeout_RoundTripsNeverShorter) {
  std::mt19937_64 rng(7);
  std::vector<std::chrono::nanoseconds> samples = {1ns, 999ns, 1us, 1ms, 1s, 59s, 61s, 1h};
  for (int i = 0; i < 2000; ++i) {
    // Spread over 1 ns .. ~1e15 ns (11 days).
    int digits = static_cast<int>(rng() % 16);
    std::int64_t max = 1;
    for (int d = 0; d < digits; ++d) {
      max *= 10;
    }
    samples.push_back(std::chrono::nanoseconds(1 + static_cast<std::int64_t>(rng() % max)));
  }
  for (auto t : samples) {
    SCOPED_TRACE(std::to_string(t.count()) + "ns");
    std::string text = formatTimeout(t);
    auto back = parseTimeout(text);
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_GE(*back, t) << text;
    // Exact enough: less than one of the unit chosen, which is at most 1/100000 of the value
    // (a smaller unit would have needed more than 8 digits).
    EXPECT_LE((*back - t).count(), t.count() / 100'000 + 1) << text;
  }
}

// nanoseconds::max() is the natural "no deadline": formatting it must not overflow.
TEST(GrpcWireTest, FormatTimeout_MaxDurationDoesNotOverflow) {
  EXPECT_EXIT(
      {
        std::string s = formatTimeout(std::chrono::nanoseconds::max());
        auto back = parseTimeout(s);
        std::exit(back.has_value() && s.size() <= 9 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- grpc-message ---

TEST(GrpcWireTest, PercentEncode_EveryByte) {
  for (int b = 0; b < 256; ++b) {
    std::string in(1, static_cast<char>(b));
    std::string got = percentEncode(in);
    bool plain = b >= 0x20 && b <= 0x7E && b != '%';
    if (plain) {
      EXPECT_EQ(got, in) << "byte " << b;
    } else {
      char want[4];
      std::snprintf(want, sizeof want, "%%%02X", b);
      EXPECT_EQ(got, want) << "byte " << b;
    }
    EXPECT_EQ(percentDecode(got), in) << "byte " << b;
  }
}

TEST(GrpcWireTest, PercentEncode_RoundTripsTextAndBinary) {
  const std::vector<std::string> rows = {
      "",
      "plain ascii, with spaces!",
      "100% sure",
      "%%%",
      "%41 is not A",
      "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",  // café 日本 😀
      "line\nbreak\ttab\r",
      std::string("nul\0byte", 8),
      "\xff\xfe",
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row);
    std::string enc = percentEncode(row);
    for (char c : enc) {
      EXPECT_TRUE(c >= 0x20 && c <= 0x7E) << "encoded text must be printable ASCII";
    }
    EXPECT_EQ(percentDecode(enc), row);
  }
  EXPECT_EQ(percentEncode("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(percentEncode("100%"), "100%25");
}

TEST(GrpcWireTest, PercentDecode_MalformedEscapesStayAsTheyAre) {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"%", "%"},
      {"%4", "%4"},
      {"a%", "a%"},
      {"%zz", "%zz"},
      {"%4g", "%4g"},
      {"%g4", "%g4"},
      {"%%41", "%A"},
      {"%41", "A"},
      {"%c3%A9", "\xc3\xa9"},  // either case of hex
                               // digits
      {"%41%", "A%"},
      {"%41%4", "A%4"},
  };
  for (const auto& [in, want] : rows) {
    SCOPED_TRACE(in);
    EXPECT_EQ(percentDecode(in), want);
  }
}

// --- HTTP status ---

TEST(GrpcWireTest, StatusFromHttp_SpecTable) {
  const std::vector<std::pair<int, StatusCode>> rows = {
      {400, StatusCode::kInternal},
      {401, StatusCode::kUnauthenticated},
      {403, StatusCode::kPermissionDenied},
      {404, StatusCode::kUnimplemented},
      {429, StatusCode::kUnavailable},
      {502, StatusCode::kUnavailable},
      {503, StatusCode::kUnavailable},
      {504, StatusCode::kUnavailable},
      {200, StatusCode::kUnknown},
      {500, StatusCode::kUnknown},
      {405, StatusCode::kUnknown},
      {415, StatusCode::kUnknown},
      {0, StatusCode::kUnknown},
      {999, StatusCode::kUnknown},
  };
  for (const auto& [http, want] : rows) {
    SCOPED_TRACE(http);
    EXPECT_EQ(statusFromHttp(http), want);
  }
}

// --- content-type ---

TEST(GrpcWireTest, IsGrpcContentType_Table) {
  const std::vector<std::pair<std::string, bool>> rows = {
      {"application/grpc", true},
      {"application/grpc+proto", true},
      {"application/grpc+json", true},
      {"application/grpc;charset=utf-8", true},
      {"Application/GRPC", true},
      {"APPLICATION/GRPC+PROTO", true},
      {"application/grpc-web", false},
      {"application/grpc-web+proto", false},
      {"application/grpcx", false},
      {"application/grp", false},
      {"application/json", false},
      {"text/plain", false},
      {"", false},
      {" application/grpc", false},
      {"application/grpc ", false},
  };
  for (const auto& [in, want] : rows) {
    SCOPED_TRACE(in);
    EXPECT_EQ(isGrpcContentType(in), want);
  }
}

}  // namespace
}  // namespace palisade::common::grpc
