#pragma once

// Pump: carries bytes both ways between two connected bufferevents (plain sockets or
// OpenSSL ones) with back-pressure: when one side's output holds `limit` bytes, reads on
// the other side stop until it drains below half of that, so a slow reader never makes the
// proxy buffer more than about `limit` per direction. An end of stream on one side is passed
// on as a half-close (shutdown(SHUT_WR), or a TLS close_notify); the pump is done when both
// directions ended, or at once on an error.
// Thread: the worker that owns both bufferevents.

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>

namespace palisade::proxy {

class Pump {
 public:
  struct Side {
    bufferevent* bev = nullptr;
    bool tls = false;
  };
  // Takes ownership of both bufferevents (freed with the pump). `on_done` runs once, from a
  // callback, when the pump has finished; the owner may destroy the pump from there.
  // `counted`: bytes read from `a` and from `b` are added to these counters (may be null).
  Pump(Side a, Side b, std::size_t limit, std::function<void(const char* why)> on_done);
  ~Pump();
  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;

  void start();
  std::time_t lastActivity() const { return last_activity_; }
  // No byte either way for longer than `idle` (whole seconds) at `now`.
  bool idleFor(std::chrono::milliseconds idle, std::time_t now) const {
    return now - last_activity_ > std::chrono::duration_cast<std::chrono::seconds>(idle).count();
  }
  std::uint64_t bytesFromA() const { return from_a_; }
  std::uint64_t bytesFromB() const { return from_b_; }

 private:
  struct End {
    Side side;
    bool eof = false;           // nothing more to read from it
    bool write_closed = false;  // we passed the other side's end of stream on to it
    bool throttled = false;     // its reads are paused for back-pressure
  };
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  End& end(bufferevent* bev) { return bev == a_.side.bev ? a_ : b_; }
  End& other(bufferevent* bev) { return bev == a_.side.bev ? b_ : a_; }
  void transfer(End& from, End& to);
  void maybeCloseWrite(End& to);
  void finish(const char* why);

  End a_;
  End b_;
  std::size_t limit_;
  std::function<void(const char*)> on_done_;
  std::time_t last_activity_ = 0;
  std::uint64_t from_a_ = 0;
  std::uint64_t from_b_ = 0;
  bool done_ = false;
};

}  // namespace palisade::proxy
