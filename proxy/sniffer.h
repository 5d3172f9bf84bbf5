#pragma once

// Sniffer: waits, bounded by a timeout, until the first bytes a client sent tell what it
// speaks, without consuming them (MSG_PEEK), so whoever reads the socket next (OpenSSL, an
// HTTP codec, a byte pump) sees the stream whole. Thread: the worker that owns the socket.

#include <event2/event.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string_view>

#include "proxy/dispatcher.h"

namespace palisade::proxy {

// What the first bytes of a client's stream say: "h2" (the HTTP/2 connection preface),
// "http/1.1" (an HTTP/1 request line), "" (something else); nullopt: too few bytes to tell.
std::optional<std::string_view> sniffAlpn(std::string_view first_bytes);

// True when the first byte is a TLS handshake record (a ClientHello); nullopt: no byte yet.
std::optional<bool> sniffTls(std::string_view first_bytes);

class Sniffer {
 public:
  static constexpr std::size_t kMaxPeek = 24;
  // `done(bytes, eof)` runs once: when the first bytes arrived (up to kMaxPeek of them: a
  // client writes its ClientHello, preface or request line at once, and waiting for more
  // would spin on a readable socket), at the timeout with nothing, or at end of stream (eof
  // true). The Sniffer may be destroyed from `done`.
  Sniffer(event_base* base, int fd, std::chrono::milliseconds timeout,
          std::function<void(std::string_view, bool eof)> done);

 private:
  static void onEvent(evutil_socket_t fd, short what, void* arg);
  int fd_;
  timeval timeout_{};
  EventPtr event_;
  std::function<void(std::string_view, bool)> done_;
};

}  // namespace palisade::proxy
