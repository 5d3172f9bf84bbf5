#include "proxy/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

// Addresses between IpAddress and sockaddr, SO_REUSEPORT listeners and the original
// destination of a connection that was not redirected. Everything binds to port 0.

namespace palisade::proxy {
namespace {

policy::IpAddress ip(const char* text) {
  auto r = policy::IpAddress::parse(text);
  EXPECT_TRUE(r.ok()) << text;
  return r.ok() ? *r : policy::IpAddress();
}

// Closes on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

bool haveIpv6Loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

TEST(SockaddrTest, V4) {
  Sockaddr a = makeSockaddr(ip("10.1.2.3"), 8080);
  ASSERT_EQ(a.storage.ss_family, AF_INET);
  EXPECT_EQ(a.len, sizeof(sockaddr_in));
  const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
  EXPECT_EQ(ntohs(in->sin_port), 8080);
  EXPECT_EQ(ntohl(in->sin_addr.s_addr), 0x0a010203u);
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.ip(), ip("10.1.2.3"));
  EXPECT_EQ(a.toString(), "10.1.2.3:8080");
  EXPECT_EQ(a.get(), reinterpret_cast<const sockaddr*>(&a.storage));
}

TEST(SockaddrTest, V6) {
  Sockaddr a = makeSockaddr(ip("2001:db8::1"), 443);
  ASSERT_EQ(a.storage.ss_family, AF_INET6);
  EXPECT_EQ(a.len, sizeof(sockaddr_in6));
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  EXPECT_EQ(ntohs(in6->sin6_port), 443);
  in6_addr want{};
  ASSERT_EQ(::inet_pton(AF_INET6, "2001:db8::1", &want), 1);
  EXPECT_EQ(std::memcmp(&in6->sin6_addr, &want, sizeof want), 0);
  EXPECT_EQ(a.port(), 443);
  EXPECT_EQ(a.ip(), ip("2001:db8::1"));
  EXPECT_EQ(a.toString(), "[2001:db8::1]:443");
}

TEST(SockaddrTest, FromSockaddrRoundTrips) {
  struct Row {
    const char* ip;
    std::uint16_t port;
    std::string text;
  };
  for (const Row& row : {Row{"127.0.0.1", 1, "127.0.0.1:1"}, Row{"0.0.0.0", 0, "0.0.0.0:0"},
                         Row{"255.255.255.255", 65535, "255.255.255.255:65535"},
                         Row{"::1", 15006, "[::1]:15006"}, Row{"::", 0, "[::]:0"}}) {
    SCOPED_TRACE(row.text);
    const Sockaddr made = makeSockaddr(ip(row.ip), row.port);
    const Sockaddr back = fromSockaddr(made.get(), made.len);
    EXPECT_EQ(back.len, made.len);
    EXPECT_EQ(back.ip(), ip(row.ip));
    EXPECT_EQ(back.port(), row.port);
    EXPECT_EQ(back.toString(), row.text);
  }
}

TEST(SockaddrTest, UnknownFamily) {
  Sockaddr none;
  EXPECT_FALSE(none.ip().known());
  EXPECT_EQ(none.port(), 0);
}

TEST(ListenReusePortTest, TwoListenersShareOnePort) {
  auto first = listenReusePort(makeSockaddr(ip("127.0.0.1"), 0));
  ASSERT_TRUE(first.ok()) << first.error().message;
  Fd f1(*first);
  const Sockaddr bound = localAddress(f1.fd);
  ASSERT_NE(bound.port(), 0);
  EXPECT_EQ(bound.ip(), ip("127.0.0.1"));

  auto second = listenReusePort(bound);
  ASSERT_TRUE(second.ok()) << second.error().message;
  Fd f2(*second);
  EXPECT_EQ(localAddress(f2.fd).port(), bound.port());

  // Both are nonblocking and close-on-exec.
  for (int fd : {f1.fd, f2.fd}) {
    EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  }

  // A connection lands on one of them.
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.fd, bound.get(), bound.len), 0) << std::strerror(errno);
  pollfd p[2] = {{f1.fd, POLLIN, 0}, {f2.fd, POLLIN, 0}};
  ASSERT_EQ(::poll(p, 2, 1000), 1);
}

TEST(ListenReusePortTest, APortHeldWithoutReusePortIsAnError) {
  Fd plain(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Sockaddr any = makeSockaddr(ip("127.0.0.1"), 0);
  ASSERT_EQ(::bind(plain.fd, any.get(), any.len), 0);
  ASSERT_EQ(::listen(plain.fd, 1), 0);
  const Sockaddr held = localAddress(plain.fd);
  auto r = listenReusePort(held);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "listen: " + held.toString() + ": " + std::string(std::strerror(EADDRINUSE)));
}

TEST(ListenReusePortTest, V6OnlyWhenIpv6) {
  if (!haveIpv6Loopback()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  auto r = listenReusePort(makeSockaddr(ip("::1"), 0));
  ASSERT_TRUE(r.ok()) << r.error().message;
  Fd f(*r);
  EXPECT_EQ(localAddress(f.fd).toString().rfind("[::1]:", 0), 0u);
  int v6only = 0;
  socklen_t len = sizeof v6only;
  ASSERT_EQ(::getsockopt(f.fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
  EXPECT_EQ(v6only, 1);
}

TEST(SocketOptionsTest, NoDelay) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int value = -1;
  socklen_t len = sizeof value;
  ASSERT_EQ(::getsockopt(fd.fd, IPPROTO_TCP, TCP_NODELAY, &value, &len), 0);
  ASSERT_EQ(value, 0);
  setNoDelay(fd.fd);
  ASSERT_EQ(::getsockopt(fd.fd, IPPROTO_TCP, TCP_NODELAY, &value, &len), 0);
  EXPECT_NE(value, 0);
}

TEST(SocketOptionsTest, LocalAddressOfABadFdIsEmpty) { EXPECT_EQ(localAddress(-1).len, 0u); }

TEST(OriginalDestinationTest, NoneForALoopbackConnectionThatWasNotRedirected) {
  auto l = listenReusePort(makeSockaddr(ip("127.0.0.1"), 0));
  ASSERT_TRUE(l.ok()) << l.error().message;
  Fd listener(*l);
  const Sockaddr bound = localAddress(listener.fd);
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.fd, bound.get(), bound.len), 0) << std::strerror(errno);
  pollfd p{listener.fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 1000), 1);
  Fd accepted(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(accepted.fd, 0) << std::strerror(errno);
  EXPECT_EQ(localAddress(accepted.fd).port(), bound.port());
  EXPECT_FALSE(originalDestination(accepted.fd).has_value());
  EXPECT_FALSE(originalDestination(client.fd).has_value());
}

}  // namespace
}  // namespace palisade::proxy
