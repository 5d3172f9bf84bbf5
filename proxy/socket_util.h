#pragma once

// Socket plumbing shared by listeners and connections: addresses between our IpAddress and
// sockaddr, SO_REUSEPORT listening sockets (one per worker, the kernel spreads accepted
// connections), and the original destination of a connection redirected by iptables
// (SO_ORIGINAL_DST). Thread: any.

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include "policy/ip_address.h"
#include "policy/result.h"

namespace palisade::proxy {

struct Sockaddr {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  policy::IpAddress ip() const;
  std::uint16_t port() const;
  std::string toString() const;  // "127.0.0.1:80", "[::1]:80"
};

Sockaddr makeSockaddr(const policy::IpAddress& ip, std::uint16_t port);
Sockaddr fromSockaddr(const sockaddr* sa, socklen_t len);

// A nonblocking, close-on-exec socket bound to `address` with SO_REUSEADDR and SO_REUSEPORT,
// listening. Every worker opens its own on the same address.
Result<int> listenReusePort(const Sockaddr& address, int backlog = 1024);

// The local address of a connected socket, and the destination before an iptables REDIRECT
// (nullopt when the connection was not redirected).
Sockaddr localAddress(int fd);

// TCP_NODELAY: a proxy forwards what it has at once; Nagle's algorithm would hold a small
// response back for the peer's delayed ACK (40 ms on Linux).
void setNoDelay(int fd);
std::optional<Sockaddr> originalDestination(int fd);

}  // namespace palisade::proxy
