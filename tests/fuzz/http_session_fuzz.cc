// Fuzz target: proxy::http::HttpSession, the inbound HTTP session, fed arbitrary bytes by
// the downstream peer. The goal is that a bad peer never crashes the proxy nor leaks: each
// input runs one session on a socketpair in front of an in-process app on a loopback port
// (made once per process), on one event_base driven with EVLOOP_NONBLOCK for a bounded
// number of iterations, then the session is aborted and everything is freed. Nothing sleeps.
//
// Input: byte 0 selects the setup, the rest is what the peer sends.
//   bit 0    downstream HTTP/2: the client connection preface is sent first
//   bit 1    upstream HTTP/2 (h2c app), else HTTP/1.1 app
//   bits 2-3 authorization: 0 allow, 1 deny, 2 deny every other request, 3 deny when the
//            path's byte sum is odd (with a denied reason)
//   bit 4    small limits (header bytes, header count, buffers, concurrent streams)
//   bit 5    HTTP/2 downstream: an empty SETTINGS frame follows the preface
//   bit 6    the peer half-closes once everything is written
//   bit 7    drain() once everything is written
// The HTTP/1.1 app answers each request with a small fixed response, alternating
// content-length and chunked-with-trailers; the h2c app answers 200 "hello", every other
// stream with trailers.

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "proxy/http/http_session.h"

namespace {

using palisade::proxy::http::AuthzOutcome;
using palisade::proxy::http::Codec;
using palisade::proxy::http::HttpSession;
using palisade::proxy::http::SessionOptions;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::uint8_t kEmptySettings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
constexpr int kMaxIterations = 300;
constexpr int kQuietIterations = 6;  // iterations without visible progress = idle

// Bumped by everything the harness sees happen (accepts, app and client bytes).
std::uint64_t g_activity = 0;

// ---------------------------------------------------------------------------------------------
// The HTTP/1.1 app: parses requests with http-parser, answers each complete one.
class H1App {
 public:
  explicit H1App(event_base* base) : base_(base) {}
  ~H1App() { closeAll(); }

  void accept(evutil_socket_t fd) {
    auto c = std::make_unique<Conn>();
    c->app = this;
    c->bev = bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c.get();
    bufferevent_setcb(c->bev, onRead, nullptr, onEvent, c.get());
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    conns_.push_back(std::move(c));
  }
  void closeAll() { conns_.clear(); }
  bool empty() const { return conns_.empty(); }

 private:
  struct Conn {
    ~Conn() {
      if (bev != nullptr) {
        bufferevent_free(bev);
      }
    }
    H1App* app = nullptr;
    bufferevent* bev = nullptr;
    http_parser parser{};
    int answered = 0;
  };

  static int onComplete(http_parser* p) {
    auto* c = static_cast<Conn*>(p->data);
    static constexpr std::string_view kPlain =
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello";
    static constexpr std::string_view kChunked =
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n";
    std::string_view r = (c->answered++ % 2 == 0) ? kPlain : kChunked;
    bufferevent_write(c->bev, r.data(), r.size());
    return 0;
  }
  static void onRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    static const http_parser_settings settings = [] {
      http_parser_settings s{};
      s.on_message_complete = onComplete;
      return s;
    }();
    evbuffer* in = bufferevent_get_input(bev);
    char buf[4096];
    int n;
    while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
      ++g_activity;
      std::size_t done = http_parser_execute(&c->parser, &settings, buf, static_cast<size_t>(n));
      if (done != static_cast<std::size_t>(n) || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
        c->app->close(c);  // not a request stream the app understands: hang up
        return;
      }
    }
  }
  static void onEvent(bufferevent*, short, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    ++g_activity;
    c->app->close(c);
  }
  void close(Conn* c) {
    auto it = std::find_if(conns_.begin(), conns_.end(),
                           [&](const std::unique_ptr<Conn>& p) { return p.get() == c; });
    if (it != conns_.end()) {
      conns_.erase(it);
    }
  }

  event_base* base_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

// ---------------------------------------------------------------------------------------------
// The h2c app: an nghttp2 server session per connection, answering each request once it
// ended.
class H2App {
 public:
  explicit H2App(event_base* base) : base_(base) {}
  ~H2App() { closeAll(); }

  void accept(evutil_socket_t fd) {
    auto c = std::make_unique<Conn>();
    c->app = this;
    c->bev = bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE);
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose);
    nghttp2_session_server_new(&c->session, cbs, c.get());
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, nullptr, 0);
    bufferevent_setcb(c->bev, onRead, onWrite, onEvent, c.get());
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    Conn* raw = c.get();
    conns_.push_back(std::move(c));
    flush(raw);
  }
  void closeAll() { conns_.clear(); }
  bool empty() const { return conns_.empty(); }

 private:
  struct Conn {
    ~Conn() {
      nghttp2_session_del(session);
      if (bev != nullptr) {
        bufferevent_free(bev);
      }
    }
    H2App* app = nullptr;
    bufferevent* bev = nullptr;
    nghttp2_session* session = nullptr;
    std::map<std::int32_t, std::size_t> sent;  // body bytes sent per answered stream
  };

  static constexpr std::string_view kBody = "hello";

  static ssize_t readBody(nghttp2_session* s, std::int32_t id, std::uint8_t* buf, std::size_t len,
                          std::uint32_t* flags, nghttp2_data_source*, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    std::size_t& off = c->sent[id];
    std::size_t n = std::min(len, kBody.size() - off);
    std::memcpy(buf, kBody.data() + off, n);
    off += n;
    if (off == kBody.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (id % 4 == 3) {
        nghttp2_nv t = nv("x-trailer", "1");
        if (nghttp2_submit_trailer(s, id, &t, 1) == 0) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
      }
    }
    return static_cast<ssize_t>(n);
  }
  static nghttp2_nv nv(std::string_view name, std::string_view value) {
    return nghttp2_nv{
        const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(name.data())),
        const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(value.data())), name.size(),
        value.size(), NGHTTP2_NV_FLAG_NONE};
  }
  static int onFrameRecv(nghttp2_session* s, const nghttp2_frame* f, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0 || c->sent.contains(f->hd.stream_id)) {
      return 0;
    }
    c->sent[f->hd.stream_id] = 0;
    nghttp2_nv head[] = {nv(":status", "200"), nv("content-type", "text/plain")};
    nghttp2_data_provider provider{};
    provider.read_callback = readBody;
    nghttp2_submit_response(s, f->hd.stream_id, head, 2, &provider);
    return 0;
  }
  static int onStreamClose(nghttp2_session*, std::int32_t id, std::uint32_t, void* arg) {
    static_cast<Conn*>(arg)->sent.erase(id);
    return 0;
  }
  static void flush(Conn* c) {
    for (;;) {
      const std::uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(c->session, &data);
      if (n <= 0) {
        break;
      }
      bufferevent_write(c->bev, data, static_cast<std::size_t>(n));
    }
  }
  static void onRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) != 0) {
      ++g_activity;
      evbuffer_iovec v;
      evbuffer_peek(in, -1, nullptr, &v, 1);
      ssize_t n = nghttp2_session_mem_recv(c->session, static_cast<const std::uint8_t*>(v.iov_base),
                                           v.iov_len);
      if (n < 0) {
        c->app->close(c);
        return;
      }
      evbuffer_drain(in, static_cast<std::size_t>(n));
    }
    flush(c);
  }
  static void onWrite(bufferevent*, void* arg) { flush(static_cast<Conn*>(arg)); }
  static void onEvent(bufferevent*, short, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    ++g_activity;
    c->app->close(c);
  }
  void close(Conn* c) {
    auto it = std::find_if(conns_.begin(), conns_.end(),
                           [&](const std::unique_ptr<Conn>& p) { return p.get() == c; });
    if (it != conns_.end()) {
      conns_.erase(it);
    }
  }

  event_base* base_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

// ---------------------------------------------------------------------------------------------
// What lives for the whole process: the event_base and the two apps with their listeners.
struct World {
  World() {
    std::signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    h1 = std::make_unique<H1App>(base);
    h2 = std::make_unique<H2App>(base);
    h1_listener = listen(h1_address, h1_len,
                         [](evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
                           ++g_activity;
                           static_cast<World*>(arg)->h1->accept(fd);
                         });
    h2_listener = listen(h2_address, h2_len,
                         [](evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
                           ++g_activity;
                           static_cast<World*>(arg)->h2->accept(fd);
                         });
  }

  evconnlistener* listen(sockaddr_storage& address, socklen_t& len, evconnlistener_cb cb) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    evconnlistener* l =
        evconnlistener_new_bind(base, cb, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
    if (l == nullptr) {
      std::abort();  // no loopback: the harness cannot run
    }
    len = sizeof(address);
    getsockname(evconnlistener_get_fd(l), reinterpret_cast<sockaddr*>(&address), &len);
    return l;
  }

  event_base* base = nullptr;
  std::unique_ptr<H1App> h1;
  std::unique_ptr<H2App> h2;
  evconnlistener* h1_listener = nullptr;
  evconnlistener* h2_listener = nullptr;
  sockaddr_storage h1_address{};
  sockaddr_storage h2_address{};
  socklen_t h1_len = 0;
  socklen_t h2_len = 0;
};

World& world() {
  static World* w = new World();  // never freed: the process ends with it
  return *w;
}

// The peer's end of the socketpair: writes the input as the socket takes it and reads and
// discards whatever the session answers.
struct Peer {
  int fd = -1;
  std::vector<std::uint8_t> out;
  std::size_t written = 0;
  bool half_close = false;
  bool shut = false;

  bool done() const { return written == out.size(); }
  void pump() {
    while (written < out.size()) {
      ssize_t n = send(fd, out.data() + written, out.size() - written, MSG_NOSIGNAL);
      if (n <= 0) {
        break;
      }
      written += static_cast<std::size_t>(n);
      ++g_activity;
    }
    if (done() && half_close && !shut) {
      shutdown(fd, SHUT_WR);
      shut = true;
      ++g_activity;
    }
    char buf[16384];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) {
        break;
      }
      ++g_activity;
    }
  }
};

// Runs the loop until nothing visible happened for a few iterations, `step` returns false
// or the iteration bound is reached.
template <typename Step>
void run(event_base* base, int max_iterations, Step step) {
  int quiet = 0;
  for (int i = 0; i < max_iterations && quiet < kQuietIterations; ++i) {
    std::uint64_t before = g_activity;
    event_base_loop(base, EVLOOP_NONBLOCK);
    if (!step()) {
      return;
    }
    quiet = g_activity == before ? quiet + 1 : 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  World& w = world();
  const std::uint8_t flags = data[0];
  const bool down_h2 = (flags & 1) != 0;
  const bool up_h2 = (flags & 2) != 0;
  const int authz_mode = (flags >> 2) & 3;
  const bool small = (flags & 16) != 0;

  SessionOptions options;
  options.downstream = down_h2 ? Codec::kHttp2 : Codec::kHttp1;
  options.upstream = up_h2 ? Codec::kHttp2 : Codec::kHttp1;
  options.app_address = up_h2 ? w.h2_address : w.h1_address;
  options.app_address_len = up_h2 ? w.h2_len : w.h1_len;
  options.path_normalization = palisade::policy::PathNormalization::kBase;
  if (small) {
    options.limits.max_header_bytes = 512;
    options.limits.max_headers = 8;
    options.limits.buffer_limit = 4096;
    options.limits.max_concurrent_streams = 4;
  }
  options.connection.destination_port = 8080;
  options.strip_headers = {"x-forwarded-client-cert"};
  options.add_headers = {{"x-forwarded-client-cert", "By=spiffe://td/ns/app/sa/web"}};
  int decisions = 0;
  options.authorize = [authz_mode, &decisions](const palisade::policy::RequestView& v) {
    AuthzOutcome out;
    switch (authz_mode) {
      case 1:
        out.allowed = false;
        break;
      case 2:
        out.allowed = decisions % 2 == 0;
        break;
      case 3: {
        unsigned sum = 0;
        for (char ch : v.path) {
          sum += static_cast<unsigned char>(ch);
        }
        out.allowed = sum % 2 == 0;
        out.denied_reason = "fuzz: odd path";
        break;
      }
      default:
        break;
    }
    ++decisions;
    return out;
  };
  bool closed = false;
  options.on_closed = [&closed] { closed = true; };

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    std::abort();
  }
  evutil_make_socket_nonblocking(sv[0]);
  evutil_make_socket_nonblocking(sv[1]);

  Peer peer;
  peer.fd = sv[1];
  peer.half_close = (flags & 64) != 0;
  if (down_h2) {
    peer.out.insert(peer.out.end(), kPreface.begin(), kPreface.end());
    if ((flags & 32) != 0) {
      peer.out.insert(peer.out.end(), std::begin(kEmptySettings), std::end(kEmptySettings));
    }
  }
  peer.out.insert(peer.out.end(), data + 1, data + size);

  bufferevent* bev = bufferevent_socket_new(w.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
  HttpSession* session = HttpSession::start(w.base, bev, std::move(options));

  bool drained = (flags & 128) == 0;
  peer.pump();
  run(w.base, kMaxIterations, [&] {
    if (closed) {
      return false;
    }
    peer.pump();
    if (!drained && peer.done()) {
      drained = true;
      session->drain();
      ++g_activity;
    }
    return !closed;
  });
  peer.pump();  // what the session wrote before it closed

  if (!closed) {
    session->abort();
  }
  if (!closed) {
    std::abort();  // abort() must close and free the session at once
  }
  close(sv[1]);
  // The apps see their connections end; whatever is left is closed here, and the loop runs
  // the finalizers of the freed bufferevents.
  run(w.base, 32, [&] { return !(w.h1->empty() && w.h2->empty()); });
  w.h1->closeAll();
  w.h2->closeAll();
  event_base_loop(w.base, EVLOOP_NONBLOCK);
  return 0;
}
