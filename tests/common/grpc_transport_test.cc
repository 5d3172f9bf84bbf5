#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "common/grpc/wire.h"
#include "common/tls_context.h"
#include "tests/mocks/common/cert_factory.h"

// Our Channel against our Server on one event loop on 127.0.0.1, plus a bare nghttp2 client
// (RawH2Client) for what the Channel cannot send or does not show: frame layout, trailers
// from the client, bad content types, compressed messages, PINGs. Every wait is bounded
// (runUntil), so a broken transport fails a test instead of hanging the suite.

namespace palisade::common::grpc {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;
using test_certs::CertFactory;
using test_certs::Credential;
using test_certs::kNow;
using test_certs::leafSpec;

constexpr auto kWait = 5s;

// ---------------------------------------------------------------------------------------------
// Sockets

// A listening socket on 127.0.0.1 that never accepts: the kernel completes TCP handshakes
// into its backlog, and then nothing is ever read or written.
struct SilentListener {
  int fd = -1;
  std::uint16_t port = 0;

  SilentListener() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    EXPECT_EQ(listen(fd, 16), 0);
    socklen_t len = sizeof sin;
    getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
    port = ntohs(sin.sin_port);
  }
  ~SilentListener() { close(fd); }
};

// A port nothing listens on (bound once, then closed).
std::uint16_t closedPort() {
  SilentListener l;
  return l.port;
}

// A blocking TCP connection to 127.0.0.1:port.
int connectTo(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  return fd;
}

// ---------------------------------------------------------------------------------------------
// RawH2Client: nghttp2 as a plain HTTP/2 client on the test's loop, recording every frame.

class RawH2Client {
 public:
  struct Block {
    Headers headers;
    bool end_stream = false;
    std::string get(const std::string& name) const {
      for (const auto& [k, v] : headers) {
        if (k == name) {
          return v;
        }
      }
      return "";
    }
  };
  struct Stream {
    // What we send.
    std::string body;
    std::size_t pos = 0;
    std::optional<Headers> trailers;
    bool end_stream = true;
    // What we received.
    std::vector<Block> blocks;
    std::string data;
    bool closed = false;
    std::uint32_t error_code = 0;
  };

  RawH2Client(event_base* base, std::uint16_t port) {
    bev_ = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev_, onRead, nullptr, onEvent, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, sendCb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, beginHeadersCb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, headerCb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, frameRecvCb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, dataCb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, streamCloseCb);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    bufferevent_socket_connect(bev_, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    flush();
  }
  ~RawH2Client() {
    nghttp2_session_del(session_);
    bufferevent_free(bev_);
  }
  RawH2Client(const RawH2Client&) = delete;
  RawH2Client& operator=(const RawH2Client&) = delete;

  // A gRPC-looking request for `path`; `extra` headers are appended, and replace ours of the
  // same name when `replace` is true.
  static Headers grpcHeaders(const std::string& path, const Headers& extra = {}) {
    Headers h = {{":method", "POST"}, {":scheme", "http"},
                 {":path", path},     {":authority", "localhost"},
                 {"te", "trailers"},  {"content-type", "application/grpc"}};
    for (const auto& [k, v] : extra) {
      bool replaced = false;
      for (auto& [hk, hv] : h) {
        if (hk == k) {
          hv = v;
          replaced = true;
        }
      }
      if (!replaced) {
        h.emplace_back(k, v);
      }
    }
    return h;
  }

  std::int32_t request(const Headers& headers, std::string body,
                       std::optional<Headers> trailers = std::nullopt, bool end_stream = true) {
    auto s = std::make_unique<Stream>();
    s->body = std::move(body);
    s->trailers = std::move(trailers);
    s->end_stream = end_stream;
    std::vector<nghttp2_nv> nva;
    for (const auto& [k, v] : headers) {
      nva.push_back(nv(k, v));
    }
    nghttp2_data_provider p{};
    p.source.ptr = s.get();
    p.read_callback = readCb;
    std::int32_t id =
        nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &p, s.get());
    EXPECT_GT(id, 0);
    streams_[id] = std::move(s);
    flush();
    return id;
  }

  Stream& stream(std::int32_t id) { return *streams_.at(id); }
  bool closed(std::int32_t id) const { return streams_.count(id) != 0 && streams_.at(id)->closed; }
  int pingsReceived() const { return pings_; }
  bool disconnected() const { return disconnected_; }
  nghttp2_session* session() { return session_; }

  void flush() { nghttp2_session_send(session_); }

 private:
  static nghttp2_nv nv(const std::string& k, const std::string& v) {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(k.data())),
            reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(),
            NGHTTP2_NV_FLAG_NONE};
  }
  static ssize_t sendCb(nghttp2_session*, const std::uint8_t* data, std::size_t len, int,
                        void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    evbuffer_add(bufferevent_get_output(c->bev_), data, len);
    return static_cast<ssize_t>(len);
  }
  static ssize_t readCb(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf,
                        std::size_t length, std::uint32_t* flags, nghttp2_data_source* source,
                        void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    std::size_t n = std::min(length, s->body.size() - s->pos);
    std::memcpy(buf, s->body.data() + s->pos, n);
    s->pos += n;
    if (s->pos == s->body.size()) {
      if (s->trailers) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> nva;
        for (const auto& [k, v] : *s->trailers) {
          nva.push_back(nv(k, v));
        }
        nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size());
      } else if (s->end_stream) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }
  Stream* find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  static int beginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    if (Stream* s = c->find(frame->hd.stream_id)) {
      s->blocks.emplace_back();
    }
    return 0;
  }
  static int headerCb(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                      std::uint8_t, void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    if (Stream* s = c->find(frame->hd.stream_id); s != nullptr && !s->blocks.empty()) {
      s->blocks.back().headers.emplace_back(
          std::string(reinterpret_cast<const char*>(name), namelen),
          std::string(reinterpret_cast<const char*>(value), valuelen));
    }
    return 0;
  }
  static int frameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
      ++c->pings_;
    }
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (Stream* s = c->find(frame->hd.stream_id); s != nullptr && !s->blocks.empty()) {
        s->blocks.back().end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      }
    }
    return 0;
  }
  static int dataCb(nghttp2_session*, std::uint8_t, std::int32_t stream_id,
                    const std::uint8_t* data, std::size_t len, void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    if (Stream* s = c->find(stream_id)) {
      s->data.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }
  static int streamCloseCb(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code,
                           void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    if (Stream* s = c->find(stream_id)) {
      s->closed = true;
      s->error_code = error_code;
    }
    return 0;
  }
  static void onRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    std::size_t n = evbuffer_get_length(in);
    const std::uint8_t* data = evbuffer_pullup(in, static_cast<ev_ssize_t>(n));
    ssize_t rv = nghttp2_session_mem_recv(c->session_, data, n);
    evbuffer_drain(in, n);
    if (rv < 0) {
      c->disconnected_ = true;
      return;
    }
    c->flush();
  }
  static void onEvent(bufferevent*, short what, void* arg) {
    auto* c = static_cast<RawH2Client*>(arg);
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
      c->disconnected_ = true;
    }
  }

  bufferevent* bev_ = nullptr;
  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, std::unique_ptr<Stream>> streams_;
  int pings_ = 0;
  bool disconnected_ = false;
};

std::string framed(std::string_view payload) {
  std::string out;
  appendMessage(out, payload);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Certificates

Svid svidOf(const Credential& cred) {
  Svid svid;
  svid.leaf = share(cred.cert.get());
  EVP_PKEY_up_ref(cred.key.get());
  svid.key.reset(cred.key.get());
  return svid;
}

std::shared_ptr<const BundleSet> bundleOf(const CertFactory& f) {
  auto set = std::make_shared<BundleSet>();
  set->add(f.trustDomain(), share(f.root().cert.get()));
  return set;
}

TlsOptions tlsOptions(bool require_peer_certificate = true) {
  TlsOptions o;
  o.alpn = {"h2"};
  o.require_peer_certificate = require_peer_certificate;
  o.clock = [] { return kNow; };
  return o;
}

// ---------------------------------------------------------------------------------------------
// Fixture

// The result of one call as the client saw it. Shared with the callbacks, so a callback that
// runs after the test body ended writes into live memory.
struct Outcome {
  bool done = false;
  Status status;
  std::string response;  // unary
  std::vector<std::string> messages;
};

constexpr char kSvc[] = "/palisade.test.Echo/";

std::string method(const std::string& name) { return kSvc + name; }

// Non-ASCII and '%' in a status message: the wire carries it percent-encoded.
const std::string kUnicodeMessage =
    "pr\xc3\xa9"
    "condition \xe6\x97\xa5\xe6\x9c\xac 100% \xf0\x9f\x98\x80";

class GrpcTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mesh_ = new CertFactory("mesh.test");
    rogue_ = new CertFactory("mesh.test");  // same trust domain, another CA key
    server_cred_ = new Credential(test_certs::makeCredential(
        leafSpec("spiffe://mesh.test/ns/cp/sa/control-plane"), &mesh_->root()));
    client_cred_ = new Credential(
        test_certs::makeCredential(leafSpec("spiffe://mesh.test/ns/web/sa/api"), &mesh_->root()));
    rogue_server_cred_ = new Credential(test_certs::makeCredential(
        leafSpec("spiffe://mesh.test/ns/cp/sa/control-plane"), &rogue_->root()));
  }
  static void TearDownTestSuite() {
    delete mesh_;
    delete rogue_;
    delete server_cred_;
    delete client_cred_;
    delete rogue_server_cred_;
  }

  void SetUp() override {
    base_ = event_base_new();
    ASSERT_NE(base_, nullptr);
    // A tick bounds each EVLOOP_ONCE pass, so runUntil checks its clock at least every 10ms.
    tick_ = event_new(
        base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tv{0, 10'000};
    event_add(tick_, &tv);
  }

  void TearDown() override {
    held_.clear();
    channels_.clear();
    servers_.clear();
    event_free(tick_);
    event_base_free(base_);
  }

  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = kWait) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() >= deadline) {
        return false;
      }
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }
  void runFor(std::chrono::milliseconds d) {
    auto until = Clock::now() + d;
    runUntil([&] { return Clock::now() >= until; }, d + 1s);
  }

  // A server with the test service, started on port 0 unless `options.port` says otherwise.
  Server& startServer(ServerOptions options = {}, bool* started = nullptr) {
    if (options.port == 15012) {
      options.port = 0;
    }
    auto server = std::make_unique<Server>(base_, std::move(options));
    registerHandlers(*server);
    auto st = server->start();
    if (started != nullptr) {
      *started = st.ok();
    }
    EXPECT_TRUE(st.ok()) << st.error().message;
    servers_.push_back(std::move(server));
    return *servers_.back();
  }

  Channel& channelTo(std::uint16_t port, ChannelOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = port;
    channels_.push_back(std::make_unique<Channel>(base_, std::move(options)));
    return *channels_.back();
  }

  std::shared_ptr<Outcome> unary(Channel& ch, const std::string& name, std::string_view request,
                                 std::optional<std::chrono::nanoseconds> timeout = kWait) {
    auto out = std::make_shared<Outcome>();
    ch.unary(method(name), request, timeout, [out](const Status& st, std::string response) {
      out->done = true;
      out->status = st;
      out->response = std::move(response);
    });
    return out;
  }

  // Starts a streaming call whose messages and status land in the returned Outcome.
  std::pair<std::shared_ptr<ClientCall>, std::shared_ptr<Outcome>> stream(
      Channel& ch, const std::string& name, Headers metadata = {},
      std::optional<std::chrono::nanoseconds> timeout = kWait) {
    auto out = std::make_shared<Outcome>();
    auto call = ch.start(method(name), timeout, std::move(metadata));
    call->on_message = [out](std::string m) { out->messages.push_back(std::move(m)); };
    call->on_finish = [out](const Status& st) {
      out->done = true;
      out->status = st;
    };
    return {call, out};
  }

  bool wait(const std::shared_ptr<Outcome>& o, std::chrono::milliseconds timeout = kWait) {
    return runUntil([&] { return o->done; }, timeout);
  }

  void registerHandlers(Server& s) {
    s.handleUnary(method("Echo"), [](const std::shared_ptr<ServerCall>& call,
                                     const std::string& request) { reply(*call, request); });
    s.handleUnary(method("Fail"), [](const std::shared_ptr<ServerCall>& call, const std::string&) {
      call->finish({StatusCode::kFailedPrecondition, kUnicodeMessage});
    });
    // A message, then an error: headers, data and trailers carrying the error.
    s.handleUnary(method("SendThenFail"),
                  [](const std::shared_ptr<ServerCall>& call, const std::string& request) {
                    call->send("partial:" + request);
                    call->finish({StatusCode::kAborted, kUnicodeMessage});
                  });
    // Answers with what it learned of the caller.
    s.handleUnary(method("Whoami"),
                  [](const std::shared_ptr<ServerCall>& call, const std::string&) {
                    const PeerIdentity& p = call->peer();
                    std::string text = p.id == nullptr ? "<none>" : std::string(p.id->uri());
                    for (const auto& [k, v] : call->metadata()) {
                      text += "\n" + k + "=" + v;
                    }
                    reply(*call, text);
                  });
    s.handleUnary(method("Size"),
                  [](const std::shared_ptr<ServerCall>& call, const std::string& request) {
                    reply(*call, std::string(std::stoul(request), 'z'));
                  });
    // Never answers; the test keeps the call and learns of its cancellation.
    s.handleUnary(method("Never"), [this](const std::shared_ptr<ServerCall>& call,
                                          const std::string&) { hold(call); });
    s.handleStream(method("NeverStream"),
                   [this](const std::shared_ptr<ServerCall>& call) { hold(call); });
    // Server streaming: the request is a count N; N messages, then OK.
    s.handleUnary(method("Count"),
                  [](const std::shared_ptr<ServerCall>& call, const std::string& request) {
                    int n = std::stoi(request);
                    for (int i = 0; i < n; ++i) {
                      call->send("item " + std::to_string(i));
                    }
                    call->finish(Status::Ok());
                  });
    // Bidirectional: each message answered at once; the client's half-close ends the call
    // with the number of messages in the status message.
    s.handleStream(method("Chat"), [this](const std::shared_ptr<ServerCall>& call) {
      auto count = std::make_shared<int>(0);
      ServerCall* raw = call.get();  // the call owns these callbacks: no cycle
      call->on_message = [raw, count](std::string m) {
        ++*count;
        raw->send("pong " + m);
      };
      call->on_half_close = [this, raw, count] {
        ++half_closes_;
        raw->finish({StatusCode::kOk, "got " + std::to_string(*count)});
      };
      call->on_cancel = [this](const Status& why) { cancels_.push_back(why); };
    });
    // Client streaming: counts messages until the half-close, then answers once.
    s.handleStream(method("Sum"), [this](const std::shared_ptr<ServerCall>& call) {
      auto total = std::make_shared<std::size_t>(0);
      ServerCall* raw = call.get();
      call->on_message = [total](std::string m) { *total += m.size(); };
      call->on_half_close = [this, raw, total] {
        ++half_closes_;
        reply(*raw, std::to_string(*total));
      };
    });
  }

  void hold(const std::shared_ptr<ServerCall>& call) {
    call->on_cancel = [this](const Status& why) { cancels_.push_back(why); };
    held_.push_back(call);
  }

  ChannelOptions tlsChannel(const Credential* client, std::vector<std::string> server_ids = {}) {
    Svid svid = client != nullptr ? svidOf(*client) : Svid{};
    auto ctx = TlsContext::client(svid, bundleOf(*mesh_), tlsOptions());
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    std::shared_ptr<const TlsContext> shared = *ctx;
    ChannelOptions o;
    o.tls = [shared] { return shared; };
    o.server_ids = std::move(server_ids);
    return o;
  }
  ServerOptions tlsServer(const Credential& cred, bool require_peer_certificate = true) {
    auto ctx =
        TlsContext::server(svidOf(cred), bundleOf(*mesh_), tlsOptions(require_peer_certificate));
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    std::shared_ptr<const TlsContext> shared = *ctx;
    ServerOptions o;
    o.tls = [shared] { return shared; };
    return o;
  }

  static inline CertFactory* mesh_ = nullptr;
  static inline CertFactory* rogue_ = nullptr;
  static inline Credential* server_cred_ = nullptr;
  static inline Credential* client_cred_ = nullptr;
  static inline Credential* rogue_server_cred_ = nullptr;

  event_base* base_ = nullptr;
  event* tick_ = nullptr;
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<std::shared_ptr<ServerCall>> held_;
  std::vector<Status> cancels_;
  int half_closes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Unary

TEST_F(GrpcTransportTest, Unary_Ok) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Echo", "hello");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_EQ(o->response, "hello");
  EXPECT_TRUE(ch.connected());
  EXPECT_EQ(server.connections(), 1u);
  EXPECT_EQ(ch.lastError(), "");
}

TEST_F(GrpcTransportTest, Unary_EmptyRequestAndResponse) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Echo", "");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_EQ(o->response, "");
}

TEST_F(GrpcTransportTest, Unary_SequentialCallsShareOneConnection) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  for (int i = 0; i < 5; ++i) {
    auto o = unary(ch, "Echo", "n" + std::to_string(i));
    ASSERT_TRUE(wait(o));
    EXPECT_EQ(o->response, "n" + std::to_string(i));
  }
  EXPECT_EQ(server.connections(), 1u);
}

TEST_F(GrpcTransportTest, Unary_MetadataReachesTheServer) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "Whoami", {{"x-request-id", "abc-123"}, {"x-tenant", "blue"}});
  call->send("");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  ASSERT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  ASSERT_EQ(o->messages.size(), 1u);
  const std::string& text = o->messages[0];
  EXPECT_NE(text.find("\nx-request-id=abc-123"), std::string::npos) << text;
  EXPECT_NE(text.find("\nx-tenant=blue"), std::string::npos) << text;
  EXPECT_EQ(text.find("grpc-"), std::string::npos) << "gRPC's own headers are excluded: " << text;
  EXPECT_EQ(text.find("\nte="), std::string::npos) << text;
  EXPECT_EQ(text.find("content-type"), std::string::npos) << text;
  EXPECT_NE(text.find("\nuser-agent="), std::string::npos) << text;
}

TEST_F(GrpcTransportTest, Unary_UnknownMethod_Unimplemented) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "NoSuchMethod", "x");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnimplemented);
  EXPECT_EQ(o->status.message, "unknown method /palisade.test.Echo/NoSuchMethod");
}

TEST_F(GrpcTransportTest, Unary_HandlerError_NonAsciiMessageArrivesDecoded) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Fail", "x");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(o->status.message, kUnicodeMessage);
}

TEST_F(GrpcTransportTest, Unary_ErrorAfterAMessage_StatusFromTrailers) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "SendThenFail");
  call->send("x");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kAborted);
  EXPECT_EQ(o->status.message, kUnicodeMessage);
  EXPECT_EQ(o->messages, std::vector<std::string>{"partial:x"});
}

TEST_F(GrpcTransportTest, Unary_NoRequestMessage_Unimplemented) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "Echo");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnimplemented);
  EXPECT_EQ(o->status.message, "no request message for a unary method");
}

TEST_F(GrpcTransportTest, Unary_TwoRequestMessages_Unimplemented) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "Echo");
  call->send("a");
  call->send("b");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnimplemented);
  EXPECT_EQ(o->status.message, "more than one request message for a unary method");
}

// ---------------------------------------------------------------------------------------------
// Frame layout, seen with a bare HTTP/2 client

TEST_F(GrpcTransportTest, Frames_ErrorWithoutMessagesIsTrailersOnly) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("Fail")), framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  EXPECT_EQ(s.error_code, 0u);
  ASSERT_EQ(s.blocks.size(), 1u) << "one HEADERS frame: trailers-only";
  const auto& b = s.blocks[0];
  EXPECT_TRUE(b.end_stream);
  EXPECT_EQ(b.get(":status"), "200");
  EXPECT_EQ(b.get("content-type"), "application/grpc");
  EXPECT_EQ(b.get("grpc-status"), "9");
  EXPECT_EQ(b.get("grpc-message"), percentEncode(kUnicodeMessage));
  EXPECT_EQ(s.data, "");
}

TEST_F(GrpcTransportTest, Frames_UnknownMethodIsTrailersOnly) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders("/no.Such/Method"), framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_EQ(s.blocks.size(), 1u);
  EXPECT_TRUE(s.blocks[0].end_stream);
  EXPECT_EQ(s.blocks[0].get(":status"), "200");
  EXPECT_EQ(s.blocks[0].get("grpc-status"), "12");
}

TEST_F(GrpcTransportTest, Frames_OkIsHeadersDataTrailers) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("Echo")), framed("ping"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  EXPECT_EQ(s.error_code, 0u);
  ASSERT_EQ(s.blocks.size(), 2u);
  EXPECT_FALSE(s.blocks[0].end_stream);
  EXPECT_EQ(s.blocks[0].get(":status"), "200");
  EXPECT_EQ(s.blocks[0].get("content-type"), "application/grpc");
  EXPECT_EQ(s.blocks[0].get("grpc-status"), "") << "the status is in the trailers";
  EXPECT_TRUE(s.blocks[1].end_stream);
  EXPECT_EQ(s.blocks[1].get("grpc-status"), "0");
  EXPECT_EQ(s.blocks[1].get(":status"), "");
  EXPECT_EQ(s.data, framed("ping"));
}

TEST_F(GrpcTransportTest, Frames_ErrorAfterDataIsInTrailers) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("SendThenFail")), framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_EQ(s.blocks.size(), 2u);
  EXPECT_EQ(s.blocks[1].get("grpc-status"), "10");
  EXPECT_EQ(s.blocks[1].get("grpc-message"), percentEncode(kUnicodeMessage));
  EXPECT_EQ(s.data, framed("partial:x"));
}

TEST_F(GrpcTransportTest, Frames_NotPost_405) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("Echo"), {{":method", "GET"}}), "");
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_GE(s.blocks.size(), 1u);
  EXPECT_EQ(s.blocks[0].get(":status"), "405");
}

TEST_F(GrpcTransportTest, Frames_WrongContentType_415) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id =
      raw.request(RawH2Client::grpcHeaders(method("Echo"), {{"content-type", "application/json"}}),
                  framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_GE(s.blocks.size(), 1u);
  EXPECT_EQ(s.blocks[0].get(":status"), "415");
}

TEST_F(GrpcTransportTest, Frames_ContentTypeWithSubtypeIsAccepted) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(
      RawH2Client::grpcHeaders(method("Echo"), {{"content-type", "application/grpc+proto"}}),
      framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_EQ(s.blocks.size(), 2u);
  EXPECT_EQ(s.blocks[1].get("grpc-status"), "0");
}

TEST_F(GrpcTransportTest, Frames_CompressedMessage_Internal) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  std::string compressed = framed("x");
  compressed[0] = 1;
  auto id = raw.request(RawH2Client::grpcHeaders(method("Echo")), compressed);
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_GE(s.blocks.size(), 1u) << "no status, only RST_STREAM code " << s.error_code;
  EXPECT_EQ(s.blocks[0].get("grpc-status"), "13");
  EXPECT_EQ(percentDecode(s.blocks[0].get("grpc-message")),
            "compressed message without grpc-encoding");
}

TEST_F(GrpcTransportTest, Frames_UnsupportedEncoding_Unimplemented) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("Echo"), {{"grpc-encoding", "gzip"}}),
                        framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_GE(s.blocks.size(), 1u);
  EXPECT_EQ(s.blocks[0].get("grpc-status"), "12");
  EXPECT_EQ(percentDecode(s.blocks[0].get("grpc-message")), "grpc-encoding gzip is not supported");
}

TEST_F(GrpcTransportTest, Frames_MalformedTimeout_Internal) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("Echo"), {{"grpc-timeout", "soon"}}),
                        framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_GE(s.blocks.size(), 1u);
  EXPECT_EQ(s.blocks[0].get("grpc-status"), "13");
  EXPECT_EQ(percentDecode(s.blocks[0].get("grpc-message")), "malformed grpc-timeout: soon");
}

TEST_F(GrpcTransportTest, Frames_StreamEndingInsideAMessage_Internal) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  std::string cut = framed("abcdef").substr(0, 7);
  auto id = raw.request(RawH2Client::grpcHeaders(method("Echo")), cut);
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  auto& s = raw.stream(id);
  ASSERT_GE(s.blocks.size(), 1u);
  EXPECT_EQ(s.blocks[0].get("grpc-status"), "13");
  EXPECT_EQ(percentDecode(s.blocks[0].get("grpc-message")), "the stream ended inside a message");
}

TEST_F(GrpcTransportTest, Frames_OversizedHeaders_StreamRefused) {
  ServerOptions o;
  o.limits.max_header_bytes = 1024;
  Server& server = startServer(std::move(o));
  RawH2Client raw(base_, server.port());
  auto id = raw.request(
      RawH2Client::grpcHeaders(method("Echo"), {{"x-big", std::string(2000, 'a')}}), framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  EXPECT_NE(raw.stream(id).error_code, 0u) << "reset";
  // The connection survives for other streams.
  auto id2 = raw.request(RawH2Client::grpcHeaders(method("Echo")), framed("y"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id2); }));
  ASSERT_EQ(raw.stream(id2).blocks.size(), 2u);
  EXPECT_EQ(raw.stream(id2).blocks[1].get("grpc-status"), "0");
}

// gRPC clients send no trailers, but HTTP/2 allows them: a second HEADERS block on a stream
// must not start the call a second time.
TEST_F(GrpcTransportTest, Frames_ClientTrailers_HandlerRunsOnce) {
  Server& server = startServer();
  int runs = 0;
  server.handleStream(method("CountRuns"), [&runs](const std::shared_ptr<ServerCall>& call) {
    ++runs;
    ServerCall* raw = call.get();
    call->on_half_close = [raw] { reply(*raw, "done"); };
  });
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("CountRuns")), framed("x"),
                        Headers{{"x-trailer", "1"}});
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }));
  EXPECT_EQ(runs, 1);
  auto& s = raw.stream(id);
  ASSERT_EQ(s.blocks.size(), 2u);
  EXPECT_EQ(s.blocks[1].get("grpc-status"), "0");
}

// ---------------------------------------------------------------------------------------------
// Streaming

TEST_F(GrpcTransportTest, ServerStreaming_NMessagesThenOk) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "Count");
  call->send("100");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  ASSERT_EQ(o->messages.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(o->messages[i], "item " + std::to_string(i));
  }
}

TEST_F(GrpcTransportTest, ServerStreaming_ZeroMessagesThenOk) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "Count");
  call->send("0");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_TRUE(o->messages.empty());
}

TEST_F(GrpcTransportTest, Bidi_PingPong) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "Chat");
  ClientCall* raw = call.get();
  constexpr int kRounds = 20;
  auto sent = std::make_shared<int>(0);
  // Each pong triggers the next ping; after kRounds pings, the half-close.
  call->on_message = [raw, sent, o = o](std::string m) {
    o->messages.push_back(std::move(m));
    if (*sent < kRounds) {
      raw->send(std::to_string((*sent)++));
    } else {
      raw->closeSend();
    }
  };
  call->send(std::to_string((*sent)++));
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_EQ(o->status.message, "got 20");
  ASSERT_EQ(o->messages.size(), static_cast<std::size_t>(kRounds));
  for (int i = 0; i < kRounds; ++i) {
    EXPECT_EQ(o->messages[i], "pong " + std::to_string(i));
  }
  EXPECT_EQ(half_closes_, 1);
  EXPECT_TRUE(cancels_.empty());
}

TEST_F(GrpcTransportTest, ClientStreaming_HalfCloseSeenByServer) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "Sum");
  for (int i = 0; i < 10; ++i) {
    call->send(std::string(i, 'a'));
  }
  // Before the half-close the server has no answer.
  runFor(50ms);
  EXPECT_FALSE(o->done);
  EXPECT_EQ(half_closes_, 0);
  call->closeSend();
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(half_closes_, 1);
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_EQ(o->messages, std::vector<std::string>{"45"});
}

TEST_F(GrpcTransportTest, ClientStreaming_SendsAfterTheConnectionIsUp) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto warm = unary(ch, "Echo", "warm");
  ASSERT_TRUE(wait(warm));
  auto [call, o] = stream(ch, "Sum");
  runFor(20ms);  // the stream exists now: later sends go through queue()
  call->send("abc");
  runFor(20ms);
  call->send("de");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->messages, std::vector<std::string>{"5"});
}

// ---------------------------------------------------------------------------------------------
// Deadlines and cancellation

TEST_F(GrpcTransportTest, Deadline_HandlerNeverAnswers_DeadlineExceededAndServerCancel) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto start = Clock::now();
  auto o = unary(ch, "Never", "x", 200ms);
  ASSERT_TRUE(wait(o));
  auto took = Clock::now() - start;
  EXPECT_EQ(o->status.code, StatusCode::kDeadlineExceeded) << o->status.message;
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
  ASSERT_TRUE(runUntil([&] { return !cancels_.empty(); }, 2s)) << "server on_cancel";
  EXPECT_TRUE(cancels_[0].code == StatusCode::kDeadlineExceeded ||
              cancels_[0].code == StatusCode::kCancelled)
      << statusCodeName(cancels_[0].code);
  ASSERT_EQ(held_.size(), 1u);
  EXPECT_TRUE(held_[0]->done());
  ASSERT_TRUE(held_[0]->deadline().has_value());
  // A late answer after the cancel goes nowhere and breaks nothing.
  reply(*held_[0], "late");
  auto after = unary(ch, "Echo", "still fine");
  ASSERT_TRUE(wait(after));
  EXPECT_EQ(after->response, "still fine");
}

// The server enforces grpc-timeout on its own, even when the client does not.
TEST_F(GrpcTransportTest, Deadline_ServerEnforcesGrpcTimeout) {
  Server& server = startServer();
  RawH2Client raw(base_, server.port());
  auto id = raw.request(RawH2Client::grpcHeaders(method("Never"), {{"grpc-timeout", "100m"}}),
                        framed("x"));
  ASSERT_TRUE(runUntil([&] { return raw.closed(id); }, 2s));
  auto& s = raw.stream(id);
  ASSERT_GE(s.blocks.size(), 1u) << "no status, only RST_STREAM code " << s.error_code;
  EXPECT_EQ(s.blocks[0].get("grpc-status"), "4");
  ASSERT_EQ(cancels_.size(), 1u);
  EXPECT_EQ(cancels_[0].code, StatusCode::kDeadlineExceeded);
}

TEST_F(GrpcTransportTest, Deadline_ServerSeesTheClientsDeadline) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto before = Clock::now();
  auto o = unary(ch, "Never", "x", 3s);
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  auto d = held_[0]->deadline();
  ASSERT_TRUE(d.has_value());
  EXPECT_GT(*d, before + 2500ms);
  EXPECT_LE(*d, Clock::now() + 3s + 10ms);
  reply(*held_[0], "ok");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOk);
}

TEST_F(GrpcTransportTest, Deadline_NoTimeout_NoServerDeadline) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Never", "x", std::nullopt);
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  EXPECT_FALSE(held_[0]->deadline().has_value());
  reply(*held_[0], "ok");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->response, "ok");
}

TEST_F(GrpcTransportTest, Cancel_ClientCancel_ServerOnCancel) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "NeverStream");
  call->send("x");
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  call->cancel();
  EXPECT_TRUE(o->done) << "on_finish runs inside cancel()";
  EXPECT_EQ(o->status.code, StatusCode::kCancelled);
  ASSERT_TRUE(runUntil([&] { return !cancels_.empty(); }));
  EXPECT_EQ(cancels_[0].code, StatusCode::kCancelled);
  EXPECT_EQ(cancels_[0].message, "the client reset the stream");
  call->cancel();  // twice: nothing more
  EXPECT_EQ(cancels_.size(), 1u);
}

TEST_F(GrpcTransportTest, Cancel_BeforeTheConnectionIsUp) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto [call, o] = stream(ch, "NeverStream");
  call->send("x");
  call->cancel();  // still waiting for the TCP connection
  EXPECT_EQ(o->status.code, StatusCode::kCancelled);
  runFor(100ms);
  EXPECT_TRUE(held_.empty()) << "a cancelled call never reaches the server";
  auto after = unary(ch, "Echo", "ok");
  ASSERT_TRUE(wait(after));
  EXPECT_EQ(after->response, "ok");
}

TEST_F(GrpcTransportTest, Cancel_ServerFinishesStreamWhileClientStillSends) {
  Server& server = startServer();
  server.handleStream(method("StopEarly"), [](const std::shared_ptr<ServerCall>& call) {
    ServerCall* raw = call.get();
    call->on_message = [raw](std::string) { raw->finish({StatusCode::kOutOfRange, "enough"}); };
  });
  Channel& ch = channelTo(server.port());
  // The server's trailers end the call even though our side of the stream is still open.
  auto [call, o] = stream(ch, "StopEarly", {}, 1s);
  call->send("1");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOutOfRange);
  call->send("2");  // after the end: ignored
  call->closeSend();
  auto after = unary(ch, "Echo", "ok");
  ASSERT_TRUE(wait(after));
  EXPECT_EQ(after->response, "ok");
}

// ---------------------------------------------------------------------------------------------
// Sizes and concurrency

TEST_F(GrpcTransportTest, LargeMessage_OneMebibyteBothWays) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>(i * 7 + i / 251);
  }
  auto o = unary(ch, "Echo", big);
  ASSERT_TRUE(wait(o));
  ASSERT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_EQ(o->response.size(), big.size());
  EXPECT_TRUE(o->response == big);
}

TEST_F(GrpcTransportTest, LargeMessage_SeveralInFlightAtOnce) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 6; ++i) {
    outs.push_back(unary(ch, "Echo", std::string(1 << 20, static_cast<char>('a' + i))));
  }
  ASSERT_TRUE(runUntil([&] {
    for (auto& o : outs) {
      if (!o->done) {
        return false;
      }
    }
    return true;
  }));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(outs[i]->status.code, StatusCode::kOk) << outs[i]->status.message;
    EXPECT_TRUE(outs[i]->response == std::string(1 << 20, static_cast<char>('a' + i)));
  }
}

TEST_F(GrpcTransportTest, OverLimit_RequestTooLarge_ResourceExhausted) {
  ServerOptions so;
  so.limits.max_message = 64 * 1024;
  Server& server = startServer(std::move(so));
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Echo", std::string(64 * 1024 + 1, 'x'));
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kResourceExhausted) << o->status.message;
  EXPECT_EQ(o->status.message, "message of 65537 bytes is larger than the limit of 65536");
  auto ok = unary(ch, "Echo", std::string(64 * 1024, 'x'));
  ASSERT_TRUE(wait(ok));
  EXPECT_EQ(ok->status.code, StatusCode::kOk) << ok->status.message;
}

TEST_F(GrpcTransportTest, OverLimit_DefaultLimitIsFourMebibytes) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Echo", std::string(kDefaultMaxMessage + 1, 'x'));
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kResourceExhausted) << o->status.message;
}

TEST_F(GrpcTransportTest, OverLimit_ResponseTooLarge_ResourceExhaustedAtTheClient) {
  Server& server = startServer();
  ChannelOptions co;
  co.limits.max_message = 1000;
  Channel& ch = channelTo(server.port(), std::move(co));
  auto o = unary(ch, "Size", "1001");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kResourceExhausted) << o->status.message;
  auto ok = unary(ch, "Size", "1000");
  ASSERT_TRUE(wait(ok));
  EXPECT_EQ(ok->status.code, StatusCode::kOk) << ok->status.message;
  EXPECT_EQ(ok->response.size(), 1000u);
}

TEST_F(GrpcTransportTest, Concurrency_HundredUnaryCallsOnOneChannel) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 100; ++i) {
    outs.push_back(unary(ch, "Echo", "call " + std::to_string(i)));
  }
  ASSERT_TRUE(runUntil([&] {
    for (auto& o : outs) {
      if (!o->done) {
        return false;
      }
    }
    return true;
  }));
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(outs[i]->status.code, StatusCode::kOk) << i << ": " << outs[i]->status.message;
    EXPECT_EQ(outs[i]->response, "call " + std::to_string(i));
  }
  EXPECT_EQ(server.connections(), 1u);
}

// More calls than SETTINGS_MAX_CONCURRENT_STREAMS: the rest wait for a free stream.
TEST_F(GrpcTransportTest, Concurrency_MoreCallsThanTheStreamLimit) {
  ServerOptions so;
  so.limits.max_concurrent_streams = 10;
  Server& server = startServer(std::move(so));
  Channel& ch = channelTo(server.port());
  // Warm up so the client knows the limit before the burst.
  auto warm = unary(ch, "Echo", "warm");
  ASSERT_TRUE(wait(warm));
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 50; ++i) {
    outs.push_back(unary(ch, "Echo", "call " + std::to_string(i)));
  }
  ASSERT_TRUE(runUntil([&] {
    for (auto& o : outs) {
      if (!o->done) {
        return false;
      }
    }
    return true;
  }));
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(outs[i]->status.code, StatusCode::kOk) << i << ": " << outs[i]->status.message;
  }
}

// ---------------------------------------------------------------------------------------------
// Connections coming and going

TEST_F(GrpcTransportTest, Shutdown_InFlightCallFinishes_ThenConnectionCloses) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Never", "x");
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  server.shutdown();
  runFor(50ms);  // the GOAWAY reaches the client
  EXPECT_FALSE(o->done) << "calls in flight go on";
  reply(*held_[0], "after goaway");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_EQ(o->response, "after goaway");
  ASSERT_TRUE(runUntil([&] { return server.connections() == 0; })) << "closed when idle";
  auto refused = unary(ch, "Echo", "x");
  ASSERT_TRUE(wait(refused));
  EXPECT_EQ(refused->status.code, StatusCode::kUnavailable) << "the listener is gone";
}

// A call started after the GOAWAY arrived but while the old connection still finishes its
// last call must not be lost: it fails fast (UNAVAILABLE) or goes out on a new connection.
TEST_F(GrpcTransportTest, Shutdown_CallStartedAfterGoAway_DoesNotHang) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto first = unary(ch, "Never", "x");
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  server.shutdown();
  runFor(50ms);
  auto second = unary(ch, "Echo", "y", 2s);
  ASSERT_TRUE(wait(second, 3s));
  EXPECT_EQ(second->status.code, StatusCode::kUnavailable) << second->status.message;
  reply(*held_[0], "done");
  ASSERT_TRUE(wait(first));
  EXPECT_EQ(first->status.code, StatusCode::kOk);
}

TEST_F(GrpcTransportTest, ServerDestroyedMidCall_ClientUnavailable_ServerCallCancelled) {
  startServer();
  Channel& ch = channelTo(servers_.back()->port());
  auto o = unary(ch, "Never", "x");
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  servers_.clear();  // the Server and its connections are gone
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable) << o->status.message;
  EXPECT_FALSE(ch.connected());
  EXPECT_NE(ch.lastError(), "");
  // The handler still holds its call: it must learn the connection is gone, and answering
  // it now must be harmless.
  EXPECT_EQ(cancels_.size(), 1u) << "on_cancel when the server is destroyed";
  EXPECT_TRUE(held_[0]->done());
  if (!cancels_.empty()) {  // else the call points at a deleted connection: finishing it is a
                            // use after free (see the report)
    reply(*held_[0], "too late");
  }
}

TEST_F(GrpcTransportTest, ChannelClosedMidCall_ClientUnavailable_ServerCancel) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Never", "x");
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  ch.close();
  ASSERT_TRUE(o->done);
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_EQ(o->status.message, "closed by the client");
  ASSERT_TRUE(runUntil([&] { return !cancels_.empty(); }));
  EXPECT_EQ(cancels_[0].code, StatusCode::kUnavailable);
  EXPECT_TRUE(cancels_[0].message.starts_with("connection closed: ")) << cancels_[0].message;
  ASSERT_TRUE(runUntil([&] { return server.connections() == 0; }));
  // The channel reconnects for the next call.
  auto again = unary(ch, "Echo", "again");
  ASSERT_TRUE(wait(again));
  EXPECT_EQ(again->response, "again");
}

TEST_F(GrpcTransportTest, ChannelDestroyedMidCall_CallsFinishUnavailable) {
  Server& server = startServer();
  ChannelOptions co;
  co.host = "127.0.0.1";
  co.port = server.port();
  auto ch = std::make_unique<Channel>(base_, std::move(co));
  auto o = unary(*ch, "Never", "x");
  ASSERT_TRUE(runUntil([&] { return !held_.empty(); }));
  ch.reset();
  EXPECT_TRUE(o->done);
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  ASSERT_TRUE(runUntil([&] { return !cancels_.empty(); }));
}

TEST_F(GrpcTransportTest, ConnectRefused_UnavailableWithAUsefulMessage) {
  std::uint16_t port = closedPort();
  Channel& ch = channelTo(port);
  auto o = unary(ch, "Echo", "x");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_NE(o->status.message.find("refused"), std::string::npos) << o->status.message;
  EXPECT_NE(o->status.message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << "names the address: " << o->status.message;
  EXPECT_FALSE(ch.connected());
  EXPECT_EQ(ch.lastError().empty(), false);
}

TEST_F(GrpcTransportTest, ConnectRefused_ThenServerStarts_SameChannelReconnects) {
  std::uint16_t port = closedPort();
  Channel& ch = channelTo(port);
  auto o = unary(ch, "Echo", "x");
  ASSERT_TRUE(wait(o));
  ASSERT_EQ(o->status.code, StatusCode::kUnavailable);
  ServerOptions so;
  so.port = port;
  bool started = false;
  startServer(std::move(so), &started);
  ASSERT_TRUE(started);
  auto again = unary(ch, "Echo", "second");
  ASSERT_TRUE(wait(again));
  EXPECT_EQ(again->status.code, StatusCode::kOk) << again->status.message;
  EXPECT_EQ(again->response, "second");
  EXPECT_TRUE(ch.connected());
}

TEST_F(GrpcTransportTest, ConnectUnresolvableHost_Unavailable) {
  ChannelOptions co;
  co.host = "no-such-host.invalid";
  co.port = 1;
  Channel ch(base_, std::move(co));
  auto o = unary(ch, "Echo", "x");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_NE(o->status.message.find("no-such-host.invalid"), std::string::npos) << o->status.message;
}

// ---------------------------------------------------------------------------------------------
// Keepalive

TEST_F(GrpcTransportTest, Keepalive_IdlePingsKeepTheConnection) {
  ServerOptions so;
  so.limits.keepalive_time = 30ms;
  so.limits.keepalive_timeout = 500ms;
  Server& server = startServer(std::move(so));
  ChannelOptions co;
  co.limits.keepalive_time = 30ms;
  co.limits.keepalive_timeout = 500ms;
  Channel& ch = channelTo(server.port(), std::move(co));
  auto o = unary(ch, "Echo", "1");
  ASSERT_TRUE(wait(o));
  runFor(400ms);  // ~10 PING rounds each way
  EXPECT_TRUE(ch.connected());
  EXPECT_EQ(server.connections(), 1u);
  EXPECT_EQ(ch.lastError(), "");
  auto o2 = unary(ch, "Echo", "2");
  ASSERT_TRUE(wait(o2));
  EXPECT_EQ(o2->response, "2");
  EXPECT_EQ(ch.lastError(), "") << "still the first connection";
}

TEST_F(GrpcTransportTest, Keepalive_ServerPingsAnIdlePeer) {
  ServerOptions so;
  so.limits.keepalive_time = 30ms;
  so.limits.keepalive_timeout = 1s;
  Server& server = startServer(std::move(so));
  RawH2Client raw(base_, server.port());
  ASSERT_TRUE(runUntil([&] { return raw.pingsReceived() >= 3; }, 2s));
  EXPECT_FALSE(raw.disconnected()) << "nghttp2 answers the PINGs, so the connection lives";
  EXPECT_EQ(server.connections(), 1u);
}

// A client that completed TCP and sent its preface, then stopped reading and answering.
TEST_F(GrpcTransportTest, Keepalive_ServerClosesAPeerThatStoppedAnswering) {
  ServerOptions so;
  so.limits.keepalive_time = 50ms;
  so.limits.keepalive_timeout = 100ms;
  Server& server = startServer(std::move(so));
  int fd = connectTo(server.port());
  const std::string preface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                              std::string("\0\0\0\4\0\0\0\0\0", 9);  // empty SETTINGS
  ASSERT_EQ(write(fd, preface.data(), preface.size()), static_cast<ssize_t>(preface.size()));
  ASSERT_TRUE(runUntil([&] { return server.connections() == 1; }));
  auto start = Clock::now();
  ASSERT_TRUE(runUntil([&] { return server.connections() == 0; }, 2s));
  EXPECT_GE(Clock::now() - start, 100ms);
  close(fd);
}

TEST_F(GrpcTransportTest, Keepalive_ClientClosesAServerThatStoppedAnswering) {
  SilentListener silent;
  ChannelOptions co;
  co.limits.keepalive_time = 50ms;
  co.limits.keepalive_timeout = 100ms;
  Channel& ch = channelTo(silent.port, std::move(co));
  auto o = unary(ch, "Echo", "x", std::nullopt);
  ASSERT_TRUE(wait(o, 2s));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_NE(o->status.message.find("keepalive"), std::string::npos) << o->status.message;
}

// ---------------------------------------------------------------------------------------------
// TLS

TEST_F(GrpcTransportTest, Tls_Mutual_ServerSeesTheClientsSpiffeId) {
  Server& server = startServer(tlsServer(*server_cred_));
  Channel& ch = channelTo(server.port(),
                          tlsChannel(client_cred_, {"spiffe://mesh.test/ns/cp/sa/control-plane"}));
  auto o = unary(ch, "Whoami", "");
  ASSERT_TRUE(wait(o));
  ASSERT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_TRUE(o->response.starts_with("spiffe://mesh.test/ns/web/sa/api\n")) << o->response;
  const PeerIdentity* sid = ch.serverIdentity();
  ASSERT_NE(sid, nullptr);
  ASSERT_NE(sid->id, nullptr);
  EXPECT_EQ(sid->id->uri(), "spiffe://mesh.test/ns/cp/sa/control-plane");
}

TEST_F(GrpcTransportTest, Tls_StreamingAndLargeMessagesOverTls) {
  Server& server = startServer(tlsServer(*server_cred_));
  Channel& ch = channelTo(server.port(), tlsChannel(client_cred_));
  std::string big(1 << 20, 'q');
  auto o = unary(ch, "Echo", big);
  auto [call, so] = stream(ch, "Count");
  call->send("50");
  call->closeSend();
  ASSERT_TRUE(wait(o));
  ASSERT_TRUE(wait(so));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_TRUE(o->response == big);
  EXPECT_EQ(so->messages.size(), 50u);
}

TEST_F(GrpcTransportTest, Tls_ClientWithoutCertificate_AllowedWhenNotRequired) {
  Server& server = startServer(tlsServer(*server_cred_, /*require_peer_certificate=*/false));
  Channel& ch = channelTo(server.port(), tlsChannel(nullptr));
  auto o = unary(ch, "Whoami", "");
  ASSERT_TRUE(wait(o));
  ASSERT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_TRUE(o->response.starts_with("<none>")) << o->response;
}

TEST_F(GrpcTransportTest, Tls_ClientWithoutCertificate_RefusedWhenRequired) {
  Server& server = startServer(tlsServer(*server_cred_));
  Channel& ch = channelTo(server.port(), tlsChannel(nullptr));
  auto o = unary(ch, "Whoami", "");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable) << o->status.message;
  EXPECT_NE(o->status.message, "");
}

TEST_F(GrpcTransportTest, Tls_WrongServerSpiffeId_SecureNamingFailure) {
  Server& server = startServer(tlsServer(*server_cred_));
  Channel& ch =
      channelTo(server.port(), tlsChannel(client_cred_, {"spiffe://mesh.test/ns/cp/sa/other"}));
  auto o = unary(ch, "Whoami", "");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_NE(o->status.message.find("secure naming"), std::string::npos) << o->status.message;
  EXPECT_NE(o->status.message.find("spiffe://mesh.test/ns/cp/sa/control-plane"), std::string::npos)
      << o->status.message;
  EXPECT_EQ(ch.serverIdentity(), nullptr);
}

TEST_F(GrpcTransportTest, Tls_ServerFromAnUntrustedCa_Fails) {
  Server& server = startServer(tlsServer(*rogue_server_cred_));
  Channel& ch = channelTo(server.port(), tlsChannel(client_cred_));
  auto o = unary(ch, "Whoami", "");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_NE(o->status.message.find("untrusted"), std::string::npos) << o->status.message;
  EXPECT_TRUE(held_.empty());
}

TEST_F(GrpcTransportTest, Tls_PlaintextClientToTlsServer_Unavailable) {
  Server& server = startServer(tlsServer(*server_cred_));
  Channel& ch = channelTo(server.port());
  auto o = unary(ch, "Echo", "x");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable) << o->status.message;
}

TEST_F(GrpcTransportTest, Tls_ServerWithoutAlpnH2_Refused) {
  auto ctx = TlsContext::server(svidOf(*server_cred_), bundleOf(*mesh_), [] {
    TlsOptions o = tlsOptions();
    o.alpn = {"http/1.1"};
    return o;
  }());
  ASSERT_TRUE(ctx.ok());
  std::shared_ptr<const TlsContext> shared = *ctx;
  ServerOptions so;
  so.tls = [shared] { return shared; };
  Server& server = startServer(std::move(so));
  Channel& ch = channelTo(server.port(), tlsChannel(client_cred_));
  auto o = unary(ch, "Echo", "x");
  ASSERT_TRUE(wait(o));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_NE(o->status.message.find("ALPN"), std::string::npos) << o->status.message;
}

TEST_F(GrpcTransportTest, Tls_HandshakeNeverCompletes_TimesOut) {
  SilentListener silent;
  ChannelOptions co = tlsChannel(client_cred_);
  co.limits.handshake_timeout = 100ms;
  Channel& ch = channelTo(silent.port, std::move(co));
  auto o = unary(ch, "Echo", "x", std::nullopt);
  ASSERT_TRUE(wait(o, 2s));
  EXPECT_EQ(o->status.code, StatusCode::kUnavailable);
  EXPECT_NE(o->status.message.find("handshake"), std::string::npos) << o->status.message;
}

TEST_F(GrpcTransportTest, Tls_ServerDropsAClientThatNeverHandshakes) {
  ServerOptions so = tlsServer(*server_cred_);
  so.limits.handshake_timeout = 100ms;
  Server& server = startServer(std::move(so));
  int fd = connectTo(server.port());
  ASSERT_TRUE(runUntil([&] { return server.connections() == 1; }));
  ASSERT_TRUE(runUntil([&] { return server.connections() == 0; }, 2s));
  close(fd);
}

// ---------------------------------------------------------------------------------------------
// Calls dropped by their owner: the transport keeps what it needs alive on its own.

// A unary call whose deadline passes while the TLS handshake is still going, the caller
// having kept no reference to the call (the usual fire-and-forget unary()). Run in a child
// process: a use after free would abort the whole suite under AddressSanitizer.
TEST_F(GrpcTransportTest, Deadline_WhileConnecting_CallerKeptNoReference) {
  EXPECT_EXIT(
      {
        event_base* base = event_base_new();
        SilentListener silent;
        ChannelOptions co = tlsChannel(client_cred_);
        co.host = "127.0.0.1";
        co.port = silent.port;
        bool ok = false;
        {
          Channel ch(base, std::move(co));
          bool done = false;
          StatusCode code = StatusCode::kOk;
          ch.unary(method("Echo"), "x", 50ms, [&](const Status& st, std::string) {
            done = true;
            code = st.code;
          });
          auto until = Clock::now() + 2s;
          while (!done && Clock::now() < until) {
            event_base_loop(base, EVLOOP_ONCE);
          }
          ok = done && code == StatusCode::kDeadlineExceeded;
        }
        event_base_free(base);
        std::fflush(stderr);
        _exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// A handler answering a call whose Server was destroyed meanwhile. Run in a child process: a
// use after free would abort the whole suite under AddressSanitizer.
TEST_F(GrpcTransportTest, ServerDestroyed_LateReplyIsHarmless) {
  EXPECT_EXIT(
      {
        event_base* base = event_base_new();
        std::shared_ptr<ServerCall> held;
        bool ok = false;
        {
          ServerOptions so;
          so.port = 0;
          auto server = std::make_unique<Server>(base, std::move(so));
          server->handleUnary(method("Never"), [&held](const std::shared_ptr<ServerCall>& call,
                                                       const std::string&) { held = call; });
          (void)server->start();
          ChannelOptions co;
          co.host = "127.0.0.1";
          co.port = server->port();
          Channel ch(base, std::move(co));
          bool done = false;
          ch.unary(method("Never"), "x", 2s, [&done](const Status&, std::string) { done = true; });
          auto until = Clock::now() + 2s;
          while (held == nullptr && Clock::now() < until) {
            event_base_loop(base, EVLOOP_NONBLOCK);
          }
          server.reset();
          if (held != nullptr) {
            reply(*held, "too late");  // the connection it points at is gone
            ok = true;
          }
          while (!done && Clock::now() < until) {
            event_base_loop(base, EVLOOP_NONBLOCK);
          }
        }
        held.reset();
        event_base_free(base);
        std::fflush(stderr);
        _exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(GrpcTransportTest, UnaryResultDropped_StillCompletes) {
  Server& server = startServer();
  Channel& ch = channelTo(server.port());
  auto done = std::make_shared<int>(0);
  for (int i = 0; i < 10; ++i) {
    ch.unary(method("Echo"), "x", 5s, [done](const Status& st, std::string r) {
      EXPECT_TRUE(st.ok());
      EXPECT_EQ(r, "x");
      ++*done;
    });
  }
  ASSERT_TRUE(runUntil([&] { return *done == 10; }));
}

}  // namespace
}  // namespace palisade::common::grpc
