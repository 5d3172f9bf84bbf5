#include "proxy/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace palisade::proxy {

policy::IpAddress Sockaddr::ip() const {
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    return policy::IpAddress::v4(ntohl(in->sin_addr.s_addr));
  }
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), &in6->sin6_addr, 16);
    return policy::IpAddress::v6(b);
  }
  return {};
}

std::uint16_t Sockaddr::port() const {
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  if (storage.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

std::string Sockaddr::toString() const {
  const std::string host = ip().toString();
  return (storage.ss_family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port());
}

Sockaddr makeSockaddr(const policy::IpAddress& ip, std::uint16_t port) {
  Sockaddr out;
  if (ip.family() == policy::IpAddress::Family::kV6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, ip.bytes().data(), 16);
    out.len = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip.bytes().data(), 4);
    out.len = sizeof(sockaddr_in);
  }
  return out;
}

Sockaddr fromSockaddr(const sockaddr* sa, socklen_t len) {
  Sockaddr out;
  std::memcpy(&out.storage, sa, std::min<std::size_t>(len, sizeof out.storage));
  out.len = len;
  return out;
}

Result<int> listenReusePort(const Sockaddr& address, int backlog) {
  int fd = ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Error{ErrorCode::kIo, std::string("listen: socket: ") + std::strerror(errno)};
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (address.storage.ss_family == AF_INET6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, address.get(), address.len) != 0 || ::listen(fd, backlog) != 0) {
    const int e = errno;
    ::close(fd);
    return Error{ErrorCode::kIo,
                 "listen: " + address.toString() + ": " + std::string(std::strerror(e))};
  }
  return fd;
}

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Sockaddr localAddress(int fd) {
  Sockaddr out;
  out.len = sizeof out.storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&out.storage), &out.len) != 0) {
    out.len = 0;
  }
  return out;
}

std::optional<Sockaddr> originalDestination(int fd) {
  Sockaddr local = localAddress(fd);
  Sockaddr out;
  out.len = sizeof out.storage;
  const bool v6 = local.storage.ss_family == AF_INET6;
  int rc = v6 ? ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &out.storage, &out.len)
              : ::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &out.storage, &out.len);
  if (rc != 0) {
    return std::nullopt;  // not redirected (no conntrack entry)
  }
  // Without a NAT the "original" destination is the local address itself.
  if (out.ip() == local.ip() && out.port() == local.port()) {
    return std::nullopt;
  }
  return out;
}

}  // namespace palisade::proxy
