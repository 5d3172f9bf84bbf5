#pragma once

// HttpSession: one inbound HTTP connection from a peer, decoded request by request, each
// request authorized, then sent to the local app. The downstream side is HTTP/1.1 (parsed
// with http-parser) or HTTP/2 (nghttp2, server side); the upstream side, to the app on
// 127.0.0.1, is HTTP/1.1 keep-alive connections or one HTTP/2 prior-knowledge (h2c)
// connection, whatever the downstream protocol: a peer speaking h2 reaches an HTTP/1.1 app
// and the other way round.
//
// For each request the session builds a policy::RequestView (peer, addresses, host, method,
// path, headers) and calls `authorize`. A denied request is answered locally, never reaching
// the app: `403` with body `RBAC: access denied` and `content-type: text/plain`, or for a gRPC
// request (content-type application/grpc...) a trailers-only response, HTTP 200 with
// `grpc-status: 7` and `grpc-message: RBAC: access denied`, as Envoy's RBAC filter answers.
// An allowed request has every header named in `strip_headers` removed (case-insensitively)
// and `add_headers` appended (the XFCC or RFC 9440 client-certificate headers), then goes to
// the app. Hop-by-hop headers are handled per RFC 9110 section 7.6.1 when translating.
//
// Bounds: header block size and count (431 / RST_STREAM or connection close when exceeded),
// idle timeout, and back-pressure: neither direction buffers more than `buffer_limit` bytes
// per stream or connection; a slow reader stops the reads on the other side (HTTP/2 by not
// consuming the flow-control window) instead of growing memory.
//
// Thread: a worker's dispatcher thread only; the session lives on the event_base it was
// started on.

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/path_normalization.h"
#include "policy/request_view.h"

namespace palisade::proxy::http {

enum class Codec { kHttp1, kHttp2 };

class UpstreamProvider;  // codec.h

// What authorization said about one request.
struct AuthzOutcome {
  bool allowed = true;
  // When non-empty and the request is denied, sent to the caller as the response header
  // `x-palisade-denied-reason` (the operator's "explain denials" switch).
  std::string denied_reason;
};

struct SessionLimits {
  std::size_t max_header_bytes = 60 * 1024;    // one request's header block (Envoy: 60 KiB)
  std::size_t max_headers = 100;               // header fields per request (Envoy: 100)
  std::size_t buffer_limit = 1024 * 1024;      // per direction, per stream and per connection
  std::uint32_t max_concurrent_streams = 100;  // HTTP/2 downstream
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};     // no stream open
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};  // to the app
};

struct SessionOptions {
  Codec downstream = Codec::kHttp1;
  Codec upstream = Codec::kHttp1;
  sockaddr_storage app_address{};  // where the app listens (127.0.0.1:target port)
  socklen_t app_address_len = 0;
  // When set, every request goes to a stream this provider hands out (the outbound
  // sidecar's pooled HTTP/2-over-mTLS connections) instead of the session's own connections
  // to app_address; `upstream` is then unused. Not owned; must outlive the session.
  UpstreamProvider* upstream_provider = nullptr;
  // With an upstream_provider: how many times a request without a body that never reached
  // the app (connect failure, refused stream) is tried in all; the provider picks again.
  int max_attempts = 1;
  // With an upstream_provider: how long a request may take from its head to the end of the
  // response (VirtualService `timeout`); 0: no limit. Past it the request is cancelled and
  // answered 504 `upstream request timeout` (gRPC: grpc-status 4), or reset when the
  // response had begun; on_request_timeout is told.
  std::chrono::milliseconds request_timeout{0};
  std::function<void()> on_request_timeout;
  SessionLimits limits;
  // The fixed parts of every RequestView: peer (may be null: plaintext), source_ip,
  // destination_ip, destination_port, sni. The session fills protocol, host, method, path
  // and headers per request. Pointers in it must outlive the session.
  policy::RequestView connection;
  std::function<AuthzOutcome(const policy::RequestView&)> authorize;
  // Applied to the path before authorization; the app gets the normalized path. A path the
  // normalization refuses (%00) is answered 400.
  policy::PathNormalization path_normalization = policy::PathNormalization::kBase;
  std::vector<std::string> strip_headers;                        // lower case names
  std::vector<std::pair<std::string, std::string>> add_headers;  // lower case names
  // Called once, when the session has closed both sides and is about to be freed.
  std::function<void()> on_closed;
};

struct SessionStats {
  std::uint64_t requests = 0;
  std::uint64_t denied = 0;
  std::uint64_t active_streams = 0;
  // Bytes the session holds in its buffers (downstream and upstream input and output,
  // response bodies waiting for HTTP/2 flow control), sampled after every event, and the
  // most it ever held: what back-pressure bounds.
  std::uint64_t buffered_bytes = 0;
  std::uint64_t peak_buffered_bytes = 0;
};

class HttpSession {
 public:
  // Takes ownership of `downstream` (a connected bufferevent, possibly an OpenSSL one,
  // with nothing read from it yet except what it already buffers). The session frees itself
  // when both sides are done; the returned pointer stays valid until on_closed runs.
  static HttpSession* start(event_base* base, bufferevent* downstream, SessionOptions options);

  virtual ~HttpSession() = default;

  // Graceful close: HTTP/2 sends GOAWAY (last stream id = the newest one accepted) and lets
  // open streams finish; HTTP/1.1 finishes the request in flight with `connection: close`
  // and closes. New requests are refused from now on. Idempotent.
  virtual void drain() = 0;
  // Closes everything now (shutdown timeout, peer certificate expired after drain).
  virtual void abort() = 0;
  virtual const SessionStats& stats() const = 0;
};

}  // namespace palisade::proxy::http
