#pragma once

// A gRPC server on nghttp2 and libevent (grpc/grpc doc/PROTOCOL-HTTP2.md): TLS with client
// certificates verified as X509-SVIDs (optional per connection, so a workload without a
// certificate yet can attest), unary and streaming calls, grpc-timeout deadlines,
// trailers-only errors, keepalive PINGs and bounded headers, messages and connections.
// Handlers run on the loop thread and may answer later (the call is a shared_ptr).
// Thread: the event loop's.

#include <event2/event.h>
#include <event2/listener.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/grpc/connection.h"
#include "common/grpc/wire.h"
#include "common/tls_context.h"
#include "policy/result.h"

namespace palisade::common::grpc {

class ServerConnection;

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 15012;  // 0: any free port (see Server::port())
  // The context for each new connection (a rotated certificate reaches new connections
  // only). Null function: plaintext HTTP/2 (h2c), for tests.
  std::function<std::shared_ptr<const TlsContext>()> tls;
  ConnectionLimits limits;
  std::size_t max_connections = 10'000;
};

// One call. The handler sets the callbacks it wants, then sends and finishes when it likes.
class ServerCall {
 public:
  ServerCall(ServerConnection* connection, std::int32_t stream_id, event_base* base);
  ~ServerCall();
  ServerCall(const ServerCall&) = delete;
  ServerCall& operator=(const ServerCall&) = delete;

  const std::string& method() const { return method_; }  // "/package.Service/Method"
  // Request metadata (lower-case names), pseudo-headers and gRPC's own excluded.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  // The TLS peer: its verified SPIFFE ID, or no id (no client certificate, or plaintext).
  const PeerIdentity& peer() const { return peer_; }
  const std::string& peerAddress() const { return peer_address_; }
  std::optional<std::chrono::steady_clock::time_point> deadline() const { return deadline_; }
  bool done() const { return done_; }

  void send(std::string_view message);
  void finish(const Status& status);

  std::function<void(std::string message)> on_message;
  std::function<void()> on_half_close;               // the client sent its last message
  std::function<void(const Status& why)> on_cancel;  // reset, deadline or connection gone

 private:
  friend class ServerConnection;
  static void onDeadline(evutil_socket_t, short, void* arg);
  void cancel(const Status& why);
  void detach() { connection_ = nullptr; }

  ServerConnection* connection_;
  std::int32_t stream_id_;
  event* deadline_timer_ = nullptr;
  std::string method_;
  std::string content_type_;
  std::string http_method_;
  std::string encoding_;
  std::string timeout_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  PeerIdentity peer_;
  std::string peer_address_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  MessageReader reader_;
  bool headers_sent_ = false;
  bool done_ = false;
  bool half_closed_ = false;
};

using StreamHandler = std::function<void(const std::shared_ptr<ServerCall>& call)>;
// A unary method: exactly one request message; answer with reply() or call->finish(error).
using UnaryHandler =
    std::function<void(const std::shared_ptr<ServerCall>& call, const std::string& request)>;
void reply(ServerCall& call, std::string_view response);

class Server {
 public:
  Server(event_base* base, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void handleStream(const std::string& path, StreamHandler handler);
  void handleUnary(const std::string& path, UnaryHandler handler);

  palisade::Status start();
  std::uint16_t port() const { return port_; }
  // GOAWAY on every connection and no new ones; calls in flight finish.
  void shutdown();
  std::size_t connections() const { return connections_.size(); }

 private:
  friend class ServerConnection;
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void onReap(evutil_socket_t, short, void* arg);
  void dispatch(const std::shared_ptr<ServerCall>& call);
  void closed(ServerConnection* c);

  event_base* base_;
  ServerOptions options_;
  evconnlistener* listener_ = nullptr;
  std::uint16_t port_ = 0;
  std::map<std::string, StreamHandler, std::less<>> handlers_;
  std::set<ServerConnection*> connections_;
  std::vector<ServerConnection*> dead_;
  event* reap_ = nullptr;
};

}  // namespace palisade::common::grpc
