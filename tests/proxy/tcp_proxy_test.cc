#include "proxy/tcp_proxy.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// The byte pump between two connections, over socketpairs and a real event loop run in the
// test thread: bytes both ways, a half-close passed on as shutdown(SHUT_WR), an error, and
// back-pressure toward a reader that does not read.
//
//   near (the test) <-> [a] Pump [b] <-> far (the test)

namespace palisade::proxy {
namespace {

constexpr int kMaxIterations = 200000;

struct Fds {
  int near = -1;
  int far = -1;
};

class PumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A write to a closed peer must come back as EPIPE, not kill the test binary.
    std::signal(SIGPIPE, SIG_IGN);
    base_ = event_base_new();
    ASSERT_NE(base_, nullptr);
    int a[2];
    int b[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a), 0);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
    fds_.near = a[0];
    fds_.far = b[1];
    bev_a_ = bufferevent_socket_new(base_, a[1], BEV_OPT_CLOSE_ON_FREE);
    bev_b_ = bufferevent_socket_new(base_, b[0], BEV_OPT_CLOSE_ON_FREE);
    ASSERT_NE(bev_a_, nullptr);
    ASSERT_NE(bev_b_, nullptr);
  }

  void TearDown() override {
    pump_.reset();
    closeFd(fds_.near);
    closeFd(fds_.far);
    event_base_free(base_);
  }

  static void closeFd(int& fd) {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
  }

  void makePump(std::size_t limit) {
    pump_ = std::make_unique<Pump>(Pump::Side{bev_a_, false}, Pump::Side{bev_b_, false}, limit,
                                   [this](const char* why) { done_.push_back(why); });
  }

  void loopOnce() { event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NONBLOCK); }

  // Runs the loop until `pred` holds; false when it never did.
  bool runUntil(const std::function<bool()>& pred) {
    for (int i = 0; i < kMaxIterations; ++i) {
      if (pred()) {
        return true;
      }
      loopOnce();
    }
    return pred();
  }

  static void writeAll(int fd, const std::string& data) {
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }

  // Reads what is there; nullopt at end of stream.
  static std::optional<std::string> readSome(int fd) {
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) {
      return std::nullopt;
    }
    if (n < 0) {
      EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
      return std::string();
    }
    return std::string(buf, static_cast<std::size_t>(n));
  }

  // Runs the loop and reads `fd` until `want` bytes came; what came.
  std::string receive(int fd, std::size_t want) {
    std::string got;
    runUntil([&] {
      if (auto s = readSome(fd)) {
        got += *s;
      }
      return got.size() >= want;
    });
    return got;
  }

  // Runs the loop until `fd` reads an end of stream; the bytes before it.
  std::optional<std::string> receiveUntilEof(int fd) {
    std::string got;
    bool eof = false;
    runUntil([&] {
      auto s = readSome(fd);
      if (!s) {
        eof = true;
      } else {
        got += *s;
      }
      return eof;
    });
    if (!eof) {
      return std::nullopt;
    }
    return got;
  }

  event_base* base_ = nullptr;
  Fds fds_;
  bufferevent* bev_a_ = nullptr;  // owned by the pump once made
  bufferevent* bev_b_ = nullptr;
  std::unique_ptr<Pump> pump_;
  std::vector<std::string> done_;
};

TEST_F(PumpTest, CarriesBytesBothWays) {
  makePump(1 << 20);
  pump_->start();
  writeAll(fds_.near, "ping from near");
  EXPECT_EQ(receive(fds_.far, 14), "ping from near");
  writeAll(fds_.far, "pong from far!!");
  EXPECT_EQ(receive(fds_.near, 15), "pong from far!!");
  writeAll(fds_.near, "again");
  EXPECT_EQ(receive(fds_.far, 5), "again");
  EXPECT_EQ(pump_->bytesFromA(), 19u);
  EXPECT_EQ(pump_->bytesFromB(), 15u);
  EXPECT_TRUE(done_.empty());
}

TEST_F(PumpTest, BytesReadBeforeStartGoFirst) {
  // What a sniffer already read off the connection, into the bufferevent's input.
  bufferevent_enable(bev_a_, EV_READ);
  writeAll(fds_.near, "GET / HTTP/1.1\r\n");
  ASSERT_TRUE(runUntil([&] { return evbuffer_get_length(bufferevent_get_input(bev_a_)) == 16; }));
  bufferevent_disable(bev_a_, EV_READ);
  makePump(1 << 20);
  pump_->start();
  // They go on without waiting for more from the near end...
  EXPECT_EQ(receive(fds_.far, 16), "GET / HTTP/1.1\r\n");
  // ...and ahead of what comes next.
  writeAll(fds_.near, "Host: x\r\n");
  EXPECT_EQ(receive(fds_.far, 9), "Host: x\r\n");
  EXPECT_EQ(pump_->bytesFromA(), 25u);
}

TEST_F(PumpTest, HalfCloseIsPassedOnAndBothClosesFinish) {
  makePump(1 << 20);
  pump_->start();
  writeAll(fds_.near, "request");
  ASSERT_EQ(::shutdown(fds_.near, SHUT_WR), 0);

  // The far end reads the bytes, then the end of stream: the pump shut its write side.
  EXPECT_EQ(receiveUntilEof(fds_.far), std::optional<std::string>("request"));
  EXPECT_TRUE(done_.empty()) << "the other direction is still open";

  // The other direction still works after the half-close.
  writeAll(fds_.far, "response");
  EXPECT_EQ(receive(fds_.near, 8), "response");
  EXPECT_TRUE(done_.empty());

  ASSERT_EQ(::shutdown(fds_.far, SHUT_WR), 0);
  EXPECT_EQ(receiveUntilEof(fds_.near), std::optional<std::string>(""));
  ASSERT_TRUE(runUntil([&] { return !done_.empty(); }));
  EXPECT_EQ(done_, std::vector<std::string>{"closed"});
  EXPECT_EQ(pump_->bytesFromA(), 7u);
  EXPECT_EQ(pump_->bytesFromB(), 8u);
  // Nothing more comes after finishing.
  for (int i = 0; i < 100; ++i) {
    loopOnce();
  }
  EXPECT_EQ(done_.size(), 1u);
}

TEST_F(PumpTest, EndOfStreamWaitsForTheBytesBeforeIt) {
  // A small socket buffer toward the far end, which does not read yet: when the near end's
  // end of stream comes, the pump still holds bytes for the far end.
  const int small = 4096;
  ASSERT_EQ(::setsockopt(bufferevent_getfd(bev_b_), SOL_SOCKET, SO_SNDBUF, &small, sizeof small),
            0);
  makePump(4 << 20);
  pump_->start();
  const std::string data = [] {
    std::string d(256 * 1024, '\0');
    for (std::size_t i = 0; i < d.size(); ++i) {
      d[i] = static_cast<char>('a' + i % 23);
    }
    return d;
  }();
  std::size_t sent = 0;
  ASSERT_TRUE(runUntil([&] {
    if (sent < data.size()) {
      ssize_t n = ::write(fds_.near, data.data() + sent, data.size() - sent);
      if (n > 0 && (sent += static_cast<std::size_t>(n)) == data.size()) {
        ::shutdown(fds_.near, SHUT_WR);
      }
    }
    // libevent stops reading at the end of stream.
    return sent == data.size() && (bufferevent_get_enabled(bev_a_) & EV_READ) == 0;
  }));
  ASSERT_GT(evbuffer_get_length(bufferevent_get_output(bev_b_)), 0u) << "nothing left to test";

  EXPECT_EQ(receiveUntilEof(fds_.far), std::optional<std::string>(data))
      << "every byte, then the end of stream";
}

TEST_F(PumpTest, AnErrorFinishesAtOnce) {
  makePump(1 << 20);
  pump_->start();
  closeFd(fds_.far);
  // The far end's close reads as its end of stream, passed on to the near end...
  EXPECT_EQ(receiveUntilEof(fds_.near), std::optional<std::string>(""));
  EXPECT_TRUE(done_.empty());
  // ...and writing toward it now fails.
  writeAll(fds_.near, "into the void");
  ASSERT_TRUE(runUntil([&] { return !done_.empty(); }));
  EXPECT_EQ(done_, std::vector<std::string>{"reset"});
}

// The header allows the owner to destroy the pump from on_done.
// FIXME(report): Pump::onEvent reads p->done_ after maybeCloseWrite() may have run on_done, a
// heap-use-after-free under ASan when the last end of stream arrives as an event. Enable once
// fixed in proxy/tcp_proxy.cc.
TEST_F(PumpTest, OnDoneMayDestroyThePump) {
  bool finished = false;
  pump_ = std::make_unique<Pump>(Pump::Side{bev_a_, false}, Pump::Side{bev_b_, false}, 1 << 20,
                                 [&](const char*) {
                                   finished = true;
                                   pump_.reset();
                                 });
  pump_->start();
  ASSERT_EQ(::shutdown(fds_.near, SHUT_WR), 0);
  EXPECT_EQ(receiveUntilEof(fds_.far), std::optional<std::string>(""));
  ASSERT_EQ(::shutdown(fds_.far, SHUT_WR), 0);
  ASSERT_TRUE(runUntil([&] { return finished; }));
  EXPECT_EQ(pump_, nullptr);
}

// A byte pattern with no short period, so a lost, repeated or reordered chunk shows.
std::uint8_t patternAt(std::uint64_t i) {
  return static_cast<std::uint8_t>(((i * 2654435761u) >> 13) ^ (i >> 8));
}

TEST_F(PumpTest, BackPressureBoundsTheBufferAndStopsTheWriter) {
  constexpr std::size_t kLimit = 256 * 1024;
  constexpr std::size_t kOneRead = 64 * 1024;
  constexpr std::uint64_t kTotal = 20ull << 20;
  makePump(kLimit);
  pump_->start();
  evbuffer* toward_far = bufferevent_get_output(bev_b_);

  std::vector<std::uint8_t> chunk(64 * 1024);
  std::size_t chunk_len = 0;
  std::size_t chunk_off = 0;
  std::uint64_t sent = 0;
  std::size_t most_buffered = 0;
  // Writes what the near end's socket takes; true when it took nothing (EAGAIN).
  auto writeMore = [&]() -> bool {
    if (chunk_off == chunk_len) {
      if (sent == kTotal) {
        return false;
      }
      chunk_len = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), kTotal - sent));
      chunk_off = 0;
      for (std::size_t i = 0; i < chunk_len; ++i) {
        chunk[i] = patternAt(sent + i);
      }
    }
    ssize_t w = ::write(fds_.near, chunk.data() + chunk_off, chunk_len - chunk_off);
    if (w < 0) {
      EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
      return true;
    }
    chunk_off += static_cast<std::size_t>(w);
    sent += static_cast<std::uint64_t>(w);
    return false;
  };

  // Phase 1: the far end reads nothing. The writer must stall, with the pump holding at most
  // about `limit` bytes.
  int stalled_rounds = 0;
  for (int i = 0; i < kMaxIterations && stalled_rounds < 50; ++i) {
    const bool eagain = writeMore();
    loopOnce();
    most_buffered = std::max(most_buffered, evbuffer_get_length(toward_far));
    stalled_rounds = eagain ? stalled_rounds + 1 : 0;
  }
  EXPECT_EQ(stalled_rounds, 50) << "the writer never got EAGAIN after " << sent << " bytes";
  EXPECT_LT(sent, 8u << 20) << "the pump took in nearly everything: no back-pressure";
  EXPECT_GE(most_buffered, kLimit) << "the limit was reached";
  EXPECT_LE(most_buffered, kLimit + kOneRead);
  EXPECT_EQ(bufferevent_get_enabled(bev_a_) & EV_READ, 0) << "reads from the near end paused";
  const std::uint64_t stalled_at = sent;

  // Phase 2: the far end reads everything, intact and in order.
  std::uint64_t received = 0;
  std::uint64_t mismatches = 0;
  std::uint64_t first_mismatch = 0;
  std::vector<std::uint8_t> buf(64 * 1024);
  for (int i = 0; i < kMaxIterations && received < kTotal; ++i) {
    writeMore();
    loopOnce();
    most_buffered = std::max(most_buffered, evbuffer_get_length(toward_far));
    ssize_t n = ::read(fds_.far, buf.data(), buf.size());
    if (n > 0) {
      for (ssize_t j = 0; j < n; ++j) {
        if (buf[static_cast<std::size_t>(j)] !=
            patternAt(received + static_cast<std::uint64_t>(j))) {
          if (mismatches++ == 0) {
            first_mismatch = received + static_cast<std::uint64_t>(j);
          }
        }
      }
      received += static_cast<std::uint64_t>(n);
    }
  }
  EXPECT_GT(sent, stalled_at) << "reading resumed the writer";
  EXPECT_EQ(sent, kTotal);
  EXPECT_EQ(received, kTotal);
  EXPECT_EQ(mismatches, 0u) << "first at byte " << first_mismatch;
  EXPECT_LE(most_buffered, kLimit + kOneRead);
  EXPECT_EQ(pump_->bytesFromA(), kTotal);
  EXPECT_TRUE(done_.empty());
}

}  // namespace
}  // namespace palisade::proxy
