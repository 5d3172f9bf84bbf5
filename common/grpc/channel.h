#pragma once

// A gRPC client channel on nghttp2 and libevent: one HTTP/2 connection to one server,
// made on the first call and again on the first call after it failed; TLS whose server must
// be a valid SVID of the trust bundle and, when given, one of the expected SPIFFE IDs
// (secure naming), with our own SVID as client certificate when we have one. Unary and
// streaming calls with deadlines (grpc-timeout, and enforced here), keepalive PINGs.
// Callbacks run on the loop thread; a callback must not delete the Channel.
// Thread: the event loop's.

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/grpc/connection.h"
#include "common/grpc/wire.h"
#include "common/tls_context.h"

namespace palisade::common::grpc {

class ClientConnection;
class Channel;

struct ChannelOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 15012;
  std::string authority;  // :authority and TLS SNI; default host:port
  // The context for each new connection (so a renewed SVID is used by the next one). Null
  // function: plaintext HTTP/2 (h2c).
  std::function<std::shared_ptr<const TlsContext>()> tls;
  std::vector<std::string> server_ids;  // SPIFFE IDs the server may have; empty: any
  ConnectionLimits limits;
  std::chrono::milliseconds connect_timeout{5'000};
};

class ClientCall {
 public:
  ClientCall(event_base* base, std::string path);
  ~ClientCall();
  ClientCall(const ClientCall&) = delete;
  ClientCall& operator=(const ClientCall&) = delete;

  void send(std::string_view message);
  void closeSend();  // no more messages from us
  void cancel();     // on_finish(CANCELLED) unless already finished
  bool done() const { return done_; }

  // Response headers and trailers (lower-case names), gRPC's own included.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }

  std::function<void(std::string message)> on_message;
  std::function<void(const Status& status)> on_finish;  // exactly once

 private:
  friend class ClientConnection;
  friend class Channel;
  static void onDeadline(evutil_socket_t, short, void* arg);
  void complete(const Status& status);

  std::string path_;
  std::vector<std::pair<std::string, std::string>> request_metadata_;
  std::optional<std::chrono::nanoseconds> timeout_;
  event* deadline_timer_ = nullptr;
  ClientConnection* connection_ = nullptr;
  std::int32_t stream_id_ = -1;
  std::string pending_;  // framed messages before the stream exists
  bool send_closed_ = false;
  bool done_ = false;
  int http_status_ = 0;
  std::optional<int> grpc_status_;
  std::string grpc_message_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  MessageReader reader_;
};

class Channel {
 public:
  Channel(event_base* base, ChannelOptions options);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Starts a call; send(), closeSend() and the callbacks may follow at once.
  std::shared_ptr<ClientCall> start(const std::string& path,
                                    std::optional<std::chrono::nanoseconds> timeout = std::nullopt,
                                    std::vector<std::pair<std::string, std::string>> metadata = {});

  using UnaryDone = std::function<void(const Status& status, std::string response)>;
  std::shared_ptr<ClientCall> unary(const std::string& path, std::string_view request,
                                    std::optional<std::chrono::nanoseconds> timeout,
                                    UnaryDone done);

  bool connected() const;
  // The server's identity on the current connection (after the handshake), else nullptr.
  const PeerIdentity* serverIdentity() const;
  // Closes the connection; calls in flight finish with UNAVAILABLE.
  void close();
  // Why the last connection closed or failed ("" while none did).
  const std::string& lastError() const { return last_error_; }

 private:
  friend class ClientConnection;
  static void onReap(evutil_socket_t, short, void* arg);
  void connect();
  void closed(ClientConnection* c, const std::string& reason);

  event_base* base_;
  ChannelOptions options_;
  ClientConnection* connection_ = nullptr;
  std::vector<ClientConnection*> dead_;
  event* reap_ = nullptr;
  std::string last_error_;
};

}  // namespace palisade::common::grpc
