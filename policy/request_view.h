#pragma once

// RequestView: what authorization looks at for one TCP connection or one HTTP request.
// Every field is a view into bytes the caller already holds (the connection, the decoded
// headers); the view is built per request without allocation and must not outlive them.
// It never holds a socket (policy/ includes no network header). Thread: the caller's.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "policy/ip_address.h"
#include "policy/spiffe_id.h"
#include "policy/string_pattern.h"

namespace palisade::policy {

struct HeaderView {
  std::string_view name;  // any case; matched case-insensitively
  std::string_view value;
};

enum class Protocol : std::uint8_t {
  kTcp,   // an opaque TCP connection: HTTP-only rules are treated as Istio does for TCP
  kHttp,  // one HTTP request (HTTP/1.1, HTTP/2 or gRPC)
};

struct RequestView {
  Protocol protocol = Protocol::kTcp;
  // The peer's verified SPIFFE ID; nullptr for a plaintext peer.
  const SpiffeId* peer = nullptr;
  IpAddress source_ip;       // the downstream connection's remote address (ipBlocks)
  IpAddress remote_ip;       // the original client (remoteIpBlocks); unknown = source_ip
  IpAddress destination_ip;  // the local address the connection arrived on
  std::uint16_t destination_port = 0;
  std::string_view sni;  // TLS server name, "" when none
  // HTTP only. `path` may carry a query; matchers compare the part before '?' or '#'.
  std::string_view host;  // :authority / Host
  std::string_view method;
  std::string_view path;
  // Unique names: a caller that received a header several times joins the values with ","
  // (RFC 9110 section 5.3), as Envoy presents them to its matchers.
  std::span<const HeaderView> headers;

  const IpAddress& effectiveRemoteIp() const { return remote_ip.known() ? remote_ip : source_ip; }
  // A request header by name, case-insensitively. The pseudo-headers ":authority" (also
  // "host"), ":method" and ":path" (with its query) read the fields above, as Envoy's header
  // matchers see them.
  std::optional<std::string_view> header(std::string_view name) const {
    if (protocol == Protocol::kHttp) {
      if (equalsIgnoreCase(name, ":authority") || equalsIgnoreCase(name, "host")) {
        return host;
      }
      if (equalsIgnoreCase(name, ":method")) {
        return method;
      }
      if (equalsIgnoreCase(name, ":path")) {
        return path;
      }
    }
    for (const HeaderView& h : headers) {
      if (equalsIgnoreCase(h.name, name)) {
        return h.value;
      }
    }
    return std::nullopt;
  }
  std::string_view pathWithoutQuery() const {
    // A plain loop: find_first_of("?#") calls memchr once per byte of the path.
    std::size_t n = 0;
    while (n < path.size() && path[n] != '?' && path[n] != '#') {
      ++n;
    }
    return path.substr(0, n);
  }
};

}  // namespace palisade::policy
