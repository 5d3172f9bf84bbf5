#pragma once

// RequestHead and ResponseHead: one HTTP message head as the session carries it between the
// downstream codec and the upstream, protocol-neutral: pseudo-headers are fields, regular
// header names are lower case, hop-by-hop headers are still present (each serializer drops
// what its protocol must not carry, RFC 9110 section 7.6.1). Storage is reused across
// clear(). Thread: the session's.

#include <cstdint>
#include <string>

#include "proxy/http/header_list.h"

namespace palisade::proxy::http {

struct RequestHead {
  std::string method;
  std::string path;       // request target as received (origin form, or "*")
  std::string authority;  // :authority, or the Host header of an HTTP/1.x request
  std::string scheme;     // :scheme of an HTTP/2 request, else empty
  HeaderList headers;     // regular fields; no pseudo-headers and no Host
  HeaderList trailers;
  int http_minor = 1;            // HTTP/1.0 or 1.1 downstream; 1 for HTTP/2
  bool keep_alive = true;        // HTTP/1.x downstream: the connection may carry another request
  bool expect_continue = false;  // `Expect: 100-continue` was received (and removed)
  bool grpc = false;             // content-type application/grpc...

  bool isHead() const { return method == "HEAD"; }
  void clear() {
    method.clear();
    path.clear();
    authority.clear();
    scheme.clear();
    headers.clear();
    trailers.clear();
    http_minor = 1;
    keep_alive = true;
    expect_continue = false;
    grpc = false;
  }
};

struct ResponseHead {
  int status = 0;
  HeaderList headers;  // regular fields, lower case
  HeaderList trailers;

  void clear() {
    status = 0;
    headers.clear();
    trailers.clear();
  }
};

// True for the fields a proxy never forwards (RFC 9110 section 7.6.1, RFC 9113 section
// 8.2.2): connection, keep-alive, proxy-connection, transfer-encoding, upgrade, te, plus
// http2-settings. `te: trailers` is kept by the HTTP/2 serializers themselves.
inline bool isHopByHop(const std::string& name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade" || name == "te" ||
         name == "http2-settings";
}

// Whether `name` must be dropped when forwarding a message with `headers`: hop-by-hop, or
// named as a connection option in its Connection field.
inline bool isConnectionSpecific(const HeaderList& headers, const std::string& name) {
  if (isHopByHop(name)) {
    return true;
  }
  const std::string* connection = headers.find("connection");
  return connection != nullptr && hasToken(*connection, name);
}

}  // namespace palisade::proxy::http
