#include "proxy/sniffer.h"

#include <sys/socket.h>

#include <cerrno>

namespace palisade::proxy {

std::optional<std::string_view> sniffAlpn(std::string_view b) {
  constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n";
  if (b.empty()) {
    return std::nullopt;
  }
  if (kPreface.starts_with(b.substr(0, kPreface.size()))) {
    if (b.size() >= kPreface.size()) {
      return "h2";
    }
    return std::nullopt;
  }
  // An HTTP/1 request line starts with a method: an upper-case token, then a space.
  for (std::size_t i = 0; i < b.size() && i < 16; ++i) {
    const char c = b[i];
    if (c == ' ') {
      return i > 0 ? std::string_view("http/1.1") : std::string_view("");
    }
    if (c < 'A' || c > 'Z') {
      return "";
    }
  }
  return b.size() >= 16 ? std::optional<std::string_view>("") : std::nullopt;
}

std::optional<bool> sniffTls(std::string_view b) {
  if (b.empty()) {
    return std::nullopt;
  }
  return b[0] == 0x16;  // TLS record type 22: handshake
}

Sniffer::Sniffer(event_base* base, int fd, std::chrono::milliseconds timeout,
                 std::function<void(std::string_view, bool)> done)
    : fd_(fd), done_(std::move(done)) {
  event_.reset(event_new(base, fd, EV_READ, &Sniffer::onEvent, this));
  timeout_ = toTimeval(timeout);
  event_add(event_.get(), &timeout_);
}

void Sniffer::onEvent(evutil_socket_t, short what, void* arg) {
  auto* s = static_cast<Sniffer*>(arg);
  char buf[kMaxPeek];
  ssize_t n = ::recv(s->fd_, buf, sizeof buf, MSG_PEEK);
  bool eof = false;
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      n = 0;
    } else {
      eof = true;
      n = 0;
    }
  } else if (n == 0 && (what & EV_READ)) {
    eof = true;
  }
  const std::string_view bytes(buf, static_cast<std::size_t>(n));
  if (n == 0 && !eof && !(what & EV_TIMEOUT)) {
    event_add(s->event_.get(), &s->timeout_);  // a spurious wake-up: wait again
    return;
  }
  auto done = std::move(s->done_);
  done(bytes, eof);
}

}  // namespace palisade::proxy
