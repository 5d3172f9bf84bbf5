// Tests for proxy/http/: an HttpSession driven over a socketpair by an HTTP/1.1 or HTTP/2
// client written here, in front of an in-test app (HTTP/1.1 with evbuffers, or h2c with
// nghttp2) on a loopback port. Everything runs on one event_base in the test thread; loops
// are bounded by deadlines, nothing sleeps.

#include "proxy/http/http_session.h"
#include "proxy/http/codec.h"
#include "proxy/http/http2_upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <gtest/gtest.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace palisade::proxy::http {
namespace {

using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// The values of `name` (case-insensitive), in order.
std::vector<std::string> values(const Headers& headers, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (lower(n) == name) {
      out.push_back(v);
    }
  }
  return out;
}
std::optional<std::string> value(const Headers& headers, const std::string& name) {
  auto v = values(headers, name);
  if (v.empty()) {
    return std::nullopt;
  }
  return v.front();
}

// ---------------------------------------------------------------------------------------------
// One parsed HTTP message (request on the app side, response on the client side).
struct Message {
  int status = 0;
  std::string method;
  std::string url;
  Headers headers;
  Headers trailers;
  std::string body;
  bool complete = false;
};

class H1Parser {
 public:
  explicit H1Parser(http_parser_type type) {
    http_parser_init(&parser_, type);
    parser_.data = this;
    settings_.on_message_begin = [](http_parser* p) {
      auto* self = static_cast<H1Parser*>(p->data);
      self->messages.emplace_back();
      self->in_trailers_ = false;
      self->last_value_ = true;
      return 0;
    };
    settings_.on_url = [](http_parser* p, const char* at, std::size_t n) {
      static_cast<H1Parser*>(p->data)->messages.back().url.append(at, n);
      return 0;
    };
    settings_.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
      auto* self = static_cast<H1Parser*>(p->data);
      Headers& list =
          self->in_trailers_ ? self->messages.back().trailers : self->messages.back().headers;
      if (self->last_value_) {
        list.emplace_back();
        self->last_value_ = false;
      }
      list.back().first.append(at, n);
      return 0;
    };
    settings_.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
      auto* self = static_cast<H1Parser*>(p->data);
      Headers& list =
          self->in_trailers_ ? self->messages.back().trailers : self->messages.back().headers;
      self->last_value_ = true;
      list.back().second.append(at, n);
      return 0;
    };
    settings_.on_headers_complete = [](http_parser* p) {
      auto* self = static_cast<H1Parser*>(p->data);
      self->messages.back().status = static_cast<int>(p->status_code);
      self->messages.back().method = http_method_str(static_cast<http_method>(p->method));
      return 0;
    };
    settings_.on_body = [](http_parser* p, const char* at, std::size_t n) {
      auto* self = static_cast<H1Parser*>(p->data);
      if (self->count_body_only) {
        self->body_bytes += n;
      } else {
        self->messages.back().body.append(at, n);
      }
      return 0;
    };
    settings_.on_chunk_header = [](http_parser* p) {
      auto* self = static_cast<H1Parser*>(p->data);
      if (p->content_length == 0) {
        self->in_trailers_ = true;
        self->last_value_ = true;
      }
      return 0;
    };
    settings_.on_message_complete = [](http_parser* p) {
      static_cast<H1Parser*>(p->data)->messages.back().complete = true;
      return 0;
    };
  }
  bool feed(const char* data, std::size_t n) {
    std::size_t done = http_parser_execute(&parser_, &settings_, data, n);
    return done == n && HTTP_PARSER_ERRNO(&parser_) == HPE_OK;
  }
  std::size_t completeCount() const {
    return static_cast<std::size_t>(std::count_if(messages.begin(), messages.end(),
                                                  [](const Message& m) { return m.complete; }));
  }

  std::vector<Message> messages;
  bool count_body_only = false;  // large bodies: count bytes instead of keeping them
  std::uint64_t body_bytes = 0;

 private:
  http_parser parser_{};
  http_parser_settings settings_{};
  bool in_trailers_ = false;
  bool last_value_ = true;
};

// ---------------------------------------------------------------------------------------------
// A listener on 127.0.0.1:0.
class Listener {
 public:
  Listener(event_base* base, evconnlistener_cb cb, void* arg) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener_ = evconnlistener_new_bind(base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                        -1, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
    len = sizeof(address);
    getsockname(evconnlistener_get_fd(listener_), reinterpret_cast<sockaddr*>(&address), &len);
  }
  ~Listener() { evconnlistener_free(listener_); }
  sockaddr_storage address{};
  socklen_t len = 0;

 private:
  evconnlistener* listener_;
};

// The HTTP/1.1 app: parses requests, answers through `handler` (default: 200 "hello").
class H1App {
 public:
  struct Conn {
    H1App* app;
    bufferevent* bev;
    H1Parser parser{HTTP_REQUEST};
    std::size_t handled = 0;
    std::uint64_t stream_left = 0;
  };

  explicit H1App(event_base* base) : base_(base), listener_(base, onAccept, this) {
    handler = [](H1App& app, Conn& c, const Message&) {
      app.write(c, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello");
    };
  }
  ~H1App() {
    for (auto& c : conns) {
      if (c->bev != nullptr) {
        bufferevent_free(c->bev);
      }
    }
  }
  const sockaddr_storage& address() const { return listener_.address; }
  socklen_t addressLen() const { return listener_.len; }

  void write(Conn& c, std::string_view bytes) {
    bufferevent_write(c.bev, bytes.data(), bytes.size());
  }
  // A response of `total` bytes, written as the connection drains.
  void stream(Conn& c, std::uint64_t total) {
    std::string head = "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(total) + "\r\n\r\n";
    write(c, head);
    c.stream_left = total;
    refill(c);
  }
  void closeConn(Conn& c) {
    bufferevent_free(c.bev);
    c.bev = nullptr;
  }

  void startReading() {
    reading = true;
    for (auto& c : conns) {
      if (c->bev != nullptr) {
        bufferevent_enable(c->bev, EV_READ);
      }
    }
  }

  std::function<void(H1App&, Conn&, const Message&)> handler;
  bool reading = true;  // false: a slow app that does not read its requests yet
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<Message> requests;
  std::uint64_t streamed = 0;

 private:
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* app = static_cast<H1App*>(arg);
    auto c = std::make_unique<Conn>();
    c->app = app;
    c->bev = bufferevent_socket_new(app->base_, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, onRead, onWrite, onEvent, c.get());
    bufferevent_setwatermark(c->bev, EV_WRITE, 128 * 1024, 0);
    bufferevent_enable(c->bev, app->reading ? EV_READ | EV_WRITE : EV_WRITE);
    app->conns.push_back(std::move(c));
  }
  static void onRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    std::string data(evbuffer_get_length(in), '\0');
    evbuffer_remove(in, data.data(), data.size());
    ASSERT_TRUE(c->parser.feed(data.data(), data.size())) << data;
    while (c->handled < c->parser.messages.size() && c->parser.messages[c->handled].complete) {
      Message m = c->parser.messages[c->handled++];
      c->app->requests.push_back(m);
      c->app->handler(*c->app, *c, m);
      if (c->bev == nullptr) {
        return;
      }
    }
  }
  static void onWrite(bufferevent*, void* arg) { refill(*static_cast<Conn*>(arg)); }
  static void refill(Conn& c) {
    static const std::string chunk(64 * 1024, 'x');
    evbuffer* out = bufferevent_get_output(c.bev);
    while (c.stream_left > 0 && evbuffer_get_length(out) < 256 * 1024) {
      std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), c.stream_left));
      evbuffer_add(out, chunk.data(), n);
      c.stream_left -= n;
      c.app->streamed += n;
    }
  }
  static void onEvent(bufferevent*, short, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    c->app->closeConn(*c);
  }

  event_base* base_;
  Listener listener_;
};

// ---------------------------------------------------------------------------------------------
// nghttp2 helpers shared by the h2c app and the HTTP/2 client.
nghttp2_nv nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

struct Body {
  std::string data;
  std::size_t offset = 0;
  Headers trailers;
};

ssize_t readBody(nghttp2_session* s, std::int32_t id, std::uint8_t* buf, std::size_t len,
                 std::uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* b = static_cast<Body*>(source->ptr);
  std::size_t n = std::min(len, b->data.size() - b->offset);
  std::copy_n(b->data.data() + b->offset, n, buf);
  b->offset += n;
  if (b->offset == b->data.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!b->trailers.empty()) {
      std::vector<nghttp2_nv> nva;
      for (const auto& [k, v] : b->trailers) {
        nva.push_back(nv(k, v));
      }
      nghttp2_submit_trailer(s, id, nva.data(), nva.size());
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return static_cast<ssize_t>(n);
}

// One HTTP/2 endpoint over a bufferevent: collects what arrives per stream.
class H2Peer {
 public:
  struct Stream {
    Message msg;            // request (server) or response (client)
    int header_blocks = 0;  // HEADERS frames received
    bool data_seen = false;
    bool ended = false;  // END_STREAM received
    bool closed = false;
    std::uint32_t error = 0;
    std::unique_ptr<Body> out;
  };

  H2Peer(event_base* base, evutil_socket_t fd, bool server) : server_(server) {
    bev_ = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl,
                const std::uint8_t* v, std::size_t vl, std::uint8_t, void* arg) {
          auto* self = static_cast<H2Peer*>(arg);
          Stream& s = self->streams[f->hd.stream_id];
          std::string name(reinterpret_cast<const char*>(n), nl);
          std::string val(reinterpret_cast<const char*>(v), vl);
          if (s.header_blocks > 0 && name != ":status" && (self->server_ || s.msg.status >= 200)) {
            s.msg.trailers.emplace_back(name, val);
          } else if (name == ":status") {
            s.msg.status = std::stoi(val);
          } else if (name == ":method") {
            s.msg.method = val;
          } else if (name == ":path") {
            s.msg.url = val;
          } else {
            s.msg.headers.emplace_back(name, val);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* arg) {
          auto* self = static_cast<H2Peer*>(arg);
          if (f->hd.type == NGHTTP2_GOAWAY) {
            self->goaway = true;
            self->goaway_last_stream = f->goaway.last_stream_id;
            return 0;
          }
          if (f->hd.stream_id == 0) {
            return 0;
          }
          Stream& s = self->streams[f->hd.stream_id];
          if (f->hd.type == NGHTTP2_HEADERS) {
            ++s.header_blocks;
          }
          if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
              (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
            s.ended = true;
            s.msg.complete = true;
            if (self->on_request) {
              self->on_request(*self, f->hd.stream_id, s);
            }
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d,
                std::size_t n, void* arg) {
          auto* self = static_cast<H2Peer*>(arg);
          Stream& s = self->streams[id];
          s.data_seen = true;
          if (self->count_body_only) {
            self->body_bytes += n;
          } else {
            s.msg.body.append(reinterpret_cast<const char*>(d), n);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, std::int32_t id, std::uint32_t error, void* arg) {
          auto* self = static_cast<H2Peer*>(arg);
          self->streams[id].closed = true;
          self->streams[id].error = error;
          return 0;
        });
    if (server) {
      nghttp2_session_server_new(&session_, cbs, this);
    } else {
      nghttp2_session_client_new(&session_, cbs, this);
    }
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
    bufferevent_setcb(bev_, onRead, onWrite, onEvent, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    flush();
  }
  ~H2Peer() {
    nghttp2_session_del(session_);
    if (bev_ != nullptr) {
      bufferevent_free(bev_);
    }
  }

  // Client: a request with `headers` (pseudo-headers first); no body when `body` is empty
  // and there are no trailers.
  std::int32_t request(const Headers& headers, std::string body = "", Headers trailers = {}) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [k, v] : headers) {
      nva.push_back(nv(k, v));
    }
    auto b = std::make_unique<Body>(Body{std::move(body), 0, std::move(trailers)});
    nghttp2_data_provider prd{};
    prd.source.ptr = b.get();
    prd.read_callback = readBody;
    bool has_body = !b->data.empty() || !b->trailers.empty();
    std::int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                             has_body ? &prd : nullptr, nullptr);
    streams[id].out = std::move(b);
    flush();
    return id;
  }
  // Server: a response; trailers-only when `body` is empty and `trailers_only`.
  void respond(std::int32_t id, const Headers& headers, std::string body, Headers trailers,
               bool headers_only = false) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [k, v] : headers) {
      nva.push_back(nv(k, v));
    }
    auto b = std::make_unique<Body>(Body{std::move(body), 0, std::move(trailers)});
    nghttp2_data_provider prd{};
    prd.source.ptr = b.get();
    prd.read_callback = readBody;
    nghttp2_submit_response(session_, id, nva.data(), nva.size(), headers_only ? nullptr : &prd);
    streams[id].out = std::move(b);
    flush();
  }
  void reset(std::int32_t id) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    flush();
  }
  void flush() {
    if (bev_ == nullptr) {
      return;
    }
    for (;;) {
      const std::uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) {
        break;
      }
      bufferevent_write(bev_, data, static_cast<std::size_t>(n));
    }
  }
  // Stops reading the socket (a slow client).
  void setReading(bool on) {
    if (on) {
      bufferevent_enable(bev_, EV_READ);
    } else {
      bufferevent_disable(bev_, EV_READ);
    }
  }

  std::map<std::int32_t, Stream> streams;
  std::function<void(H2Peer&, std::int32_t, Stream&)> on_request;
  bool goaway = false;
  std::int32_t goaway_last_stream = -1;
  bool eof = false;
  bool count_body_only = false;
  std::uint64_t body_bytes = 0;

 private:
  static void onRead(bufferevent* bev, void* arg) {
    auto* self = static_cast<H2Peer*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) != 0) {
      evbuffer_iovec v;
      evbuffer_peek(in, -1, nullptr, &v, 1);
      ssize_t n = nghttp2_session_mem_recv(self->session_,
                                           static_cast<const std::uint8_t*>(v.iov_base), v.iov_len);
      ASSERT_GE(n, 0) << nghttp2_strerror(static_cast<int>(n));
      evbuffer_drain(in, static_cast<std::size_t>(n));
    }
    self->flush();
  }
  static void onWrite(bufferevent*, void* arg) { static_cast<H2Peer*>(arg)->flush(); }
  static void onEvent(bufferevent*, short, void* arg) {
    auto* self = static_cast<H2Peer*>(arg);
    self->eof = true;
    bufferevent_free(self->bev_);
    self->bev_ = nullptr;
  }

  bool server_;
  bufferevent* bev_;
  nghttp2_session* session_ = nullptr;
};

// The h2c app: answers each request through `handler` (default: 200, body "hello", and for
// gRPC requests the trailer grpc-status 0).
class H2App {
 public:
  explicit H2App(event_base* base) : base_(base), listener_(base, onAccept, this) {
    handler = [](H2Peer& peer, std::int32_t id, H2Peer::Stream& s) {
      bool grpc = value(s.msg.headers, "content-type").value_or("").starts_with("application/grpc");
      if (grpc) {
        peer.respond(id, {{":status", "200"}, {"content-type", "application/grpc"}},
                     std::string("\0\0\0\0\x02hi", 7), {{"grpc-status", "0"}, {"x-t", "1"}});
      } else {
        peer.respond(id, {{":status", "200"}, {"content-type", "text/plain"}}, "hello", {});
      }
    };
  }
  const sockaddr_storage& address() const { return listener_.address; }
  socklen_t addressLen() const { return listener_.len; }
  std::vector<Message> requests;
  std::function<void(H2Peer&, std::int32_t, H2Peer::Stream&)> handler;
  std::vector<std::unique_ptr<H2Peer>> conns;

 private:
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* app = static_cast<H2App*>(arg);
    auto peer = std::make_unique<H2Peer>(app->base_, fd, true);
    peer->on_request = [app](H2Peer& p, std::int32_t id, H2Peer::Stream& s) {
      app->requests.push_back(s.msg);
      app->handler(p, id, s);
    };
    app->conns.push_back(std::move(peer));
  }

  event_base* base_;
  Listener listener_;
};

// The HTTP/1.1 client: raw bytes out, parsed responses in.
class H1Client {
 public:
  H1Client(event_base* base, evutil_socket_t fd) {
    bev_ = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev_, onRead, nullptr, onEvent, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
  }
  ~H1Client() { bufferevent_free(bev_); }
  void send(std::string_view bytes) { bufferevent_write(bev_, bytes.data(), bytes.size()); }
  void setReading(bool on) {
    if (on) {
      bufferevent_enable(bev_, EV_READ);
    } else {
      bufferevent_disable(bev_, EV_READ);
    }
  }

  H1Parser parser{HTTP_RESPONSE};
  std::string raw;
  bool keep_raw = true;
  bool eof = false;

 private:
  static void onRead(bufferevent* bev, void* arg) {
    auto* self = static_cast<H1Client*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) != 0) {
      evbuffer_iovec v;
      evbuffer_peek(in, -1, nullptr, &v, 1);
      const char* p = static_cast<const char*>(v.iov_base);
      if (self->keep_raw) {
        self->raw.append(p, v.iov_len);
      }
      ASSERT_TRUE(self->parser.feed(p, v.iov_len));
      evbuffer_drain(in, v.iov_len);
    }
  }
  static void onEvent(bufferevent*, short, void* arg) { static_cast<H1Client*>(arg)->eof = true; }

  bufferevent* bev_;
};

// What authorization saw of one request.
struct Seen {
  std::string host, method, path;
  Headers headers;
  std::optional<std::string> header(const std::string& name) const { return value(headers, name); }
};

constexpr char kXfcc[] = "By=spiffe://td/ns/app/sa/web;URI=spiffe://td/ns/default/sa/sleep";

// ---------------------------------------------------------------------------------------------
class HttpSessionTest : public ::testing::Test {
 protected:
  HttpSessionTest() {
    base_ = event_base_new();
    // A tick so that EVLOOP_ONCE returns and the deadline is checked.
    tick_ = event_new(
        base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tv{0, 5000};
    event_add(tick_, &tv);
  }
  ~HttpSessionTest() override {
    if (session_ != nullptr && closed_ == 0) {
      session_->abort();
      runUntil([&] { return closed_ > 0; });
    }
    h1_client_.reset();
    h2_client_.reset();
    h1_app_.reset();
    h2_app_.reset();
    event_free(tick_);
    event_base_free(base_);
  }

  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }
  void runFor(std::chrono::milliseconds d) {
    auto deadline = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < deadline) {
      event_base_loop(base_, EVLOOP_ONCE);
    }
  }

  // Starts a session between a new client (of `down`'s protocol) and the app of `up`'s
  // protocol, made here unless the test made one.
  void start(Codec down, Codec up) {
    options_.downstream = down;
    options_.upstream = up;
    if (up == Codec::kHttp1) {
      if (!h1_app_) {
        h1_app_ = std::make_unique<H1App>(base_);
      }
      options_.app_address = h1_app_->address();
      options_.app_address_len = h1_app_->addressLen();
    } else {
      if (!h2_app_) {
        h2_app_ = std::make_unique<H2App>(base_);
      }
      options_.app_address = h2_app_->address();
      options_.app_address_len = h2_app_->addressLen();
    }
    if (app_down_) {
      // A port nothing listens on: bind one, close it.
      Listener gone(
          base_, [](evconnlistener*, evutil_socket_t, sockaddr*, int, void*) {}, nullptr);
      options_.app_address = gone.address;
      options_.app_address_len = gone.len;
    }
    options_.strip_headers = {"x-forwarded-client-cert"};
    options_.add_headers = {{"x-forwarded-client-cert", kXfcc}};
    options_.authorize = [this](const policy::RequestView& v) {
      Seen s{std::string(v.host), std::string(v.method), std::string(v.path), {}};
      for (const auto& h : v.headers) {
        s.headers.emplace_back(std::string(h.name), std::string(h.value));
      }
      seen_.push_back(std::move(s));
      return outcome_;
    };
    options_.on_closed = [this] { ++closed_; };
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    bufferevent* bev = bufferevent_socket_new(base_, sv[0], BEV_OPT_CLOSE_ON_FREE);
    if (down == Codec::kHttp1) {
      h1_client_ = std::make_unique<H1Client>(base_, sv[1]);
    } else {
      h2_client_ = std::make_unique<H2Peer>(base_, sv[1], false);
    }
    session_ = HttpSession::start(base_, bev, options_);
  }

  // Runs until the HTTP/1.1 client has `n` complete responses.
  bool waitResponses(std::size_t n) {
    return runUntil([&] { return h1_client_->parser.completeCount() >= n; });
  }
  bool waitStream(std::int32_t id) {
    return runUntil([&] { return h2_client_->streams[id].closed; });
  }

  static Headers h2Get(const std::string& path, Headers extra = {}) {
    Headers h = {
        {":method", "GET"}, {":scheme", "https"}, {":authority", "web.app"}, {":path", path}};
    h.insert(h.end(), extra.begin(), extra.end());
    return h;
  }
  static Headers grpcHeaders() {
    return {{":method", "POST"},
            {":scheme", "https"},
            {":authority", "grpc.app"},
            {":path", "/pkg.Svc/Method"},
            {"content-type", "application/grpc"},
            {"te", "trailers"}};
  }

  event_base* base_;
  event* tick_;
  SessionOptions options_;
  AuthzOutcome outcome_;
  std::vector<Seen> seen_;
  int closed_ = 0;
  bool app_down_ = false;
  HttpSession* session_ = nullptr;
  std::unique_ptr<H1App> h1_app_;
  std::unique_ptr<H2App> h2_app_;
  std::unique_ptr<H1Client> h1_client_;
  std::unique_ptr<H2Peer> h2_client_;
};

// ---------------------------------------------------------------------------------------------
// Allowed requests.

TEST_F(HttpSessionTest, Http1ToHttp1_AllowedCarriesOurXfccNotThePeers) {
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send(
      "GET /api/items?x=1 HTTP/1.1\r\nHost: web.app\r\nX-Forwarded-Client-Cert: forged\r\n"
      "User-Agent: t\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  const Message& r = h1_client_->parser.messages[0];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  ASSERT_EQ(h1_app_->requests.size(), 1u);
  const Message& q = h1_app_->requests[0];
  EXPECT_EQ(q.method, "GET");
  EXPECT_EQ(q.url, "/api/items?x=1");
  EXPECT_EQ(value(q.headers, "host"), "web.app");
  EXPECT_EQ(values(q.headers, "x-forwarded-client-cert"), std::vector<std::string>{kXfcc});
  EXPECT_EQ(value(q.headers, "user-agent"), "t");
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].host, "web.app");
  EXPECT_EQ(seen_[0].method, "GET");
  EXPECT_EQ(seen_[0].path, "/api/items?x=1");
  EXPECT_EQ(seen_[0].header("x-forwarded-client-cert"), std::nullopt) << "stripped before authz";
  EXPECT_EQ(session_->stats().requests, 1u);
  EXPECT_EQ(session_->stats().denied, 0u);
}

TEST_F(HttpSessionTest, Http2ToHttp1_AllowedTranslatesHeadersBothWays) {
  h1_app_ = std::make_unique<H1App>(base_);
  h1_app_->handler = [](H1App& app, H1App::Conn& c, const Message&) {
    app.write(c,
              "HTTP/1.1 201 Created\r\nConnection: keep-alive, x-hop\r\nKeep-Alive: timeout=5\r\n"
              "X-Hop: 1\r\nX-App: yes\r\nContent-Length: 2\r\n\r\nok");
  };
  start(Codec::kHttp2, Codec::kHttp1);
  std::int32_t id =
      h2_client_->request(h2Get("/p", {{"x-forwarded-client-cert", "forged"}, {"te", "trailers"}}));
  ASSERT_TRUE(waitStream(id));
  const H2Peer::Stream& s = h2_client_->streams[id];
  EXPECT_EQ(s.error, 0u);
  EXPECT_EQ(s.msg.status, 201);
  EXPECT_EQ(s.msg.body, "ok");
  EXPECT_EQ(value(s.msg.headers, "x-app"), "yes");
  EXPECT_EQ(value(s.msg.headers, "connection"), std::nullopt);
  EXPECT_EQ(value(s.msg.headers, "keep-alive"), std::nullopt);
  EXPECT_EQ(value(s.msg.headers, "x-hop"), std::nullopt) << "named in Connection";
  ASSERT_EQ(h1_app_->requests.size(), 1u);
  const Message& q = h1_app_->requests[0];
  EXPECT_EQ(q.url, "/p");
  EXPECT_EQ(value(q.headers, "host"), "web.app");
  EXPECT_EQ(value(q.headers, "te"), std::nullopt);
  EXPECT_EQ(values(q.headers, "x-forwarded-client-cert"), std::vector<std::string>{kXfcc});
  for (const auto& [k, v] : q.headers) {
    EXPECT_NE(k[0], ':') << k;
  }
}

TEST_F(HttpSessionTest, Http2ToHttp2_GrpcTrailersPassThrough) {
  start(Codec::kHttp2, Codec::kHttp2);
  std::int32_t id = h2_client_->request(grpcHeaders(), std::string("\0\0\0\0\x01z", 6));
  ASSERT_TRUE(waitStream(id));
  const H2Peer::Stream& s = h2_client_->streams[id];
  EXPECT_EQ(s.error, 0u);
  EXPECT_EQ(s.msg.status, 200);
  EXPECT_EQ(s.msg.body, std::string("\0\0\0\0\x02hi", 7));
  EXPECT_EQ(value(s.msg.trailers, "grpc-status"), "0");
  EXPECT_EQ(value(s.msg.trailers, "x-t"), "1");
  ASSERT_EQ(h2_app_->requests.size(), 1u);
  EXPECT_EQ(value(h2_app_->requests[0].headers, "te"), "trailers") << "gRPC servers need it";
  EXPECT_EQ(value(h2_app_->requests[0].headers, ":authority"), "grpc.app");
  EXPECT_EQ(value(h2_app_->requests[0].headers, "x-forwarded-client-cert"), kXfcc);
}

TEST_F(HttpSessionTest, Http1ToHttp2_ChunkedRequestAndTrailersBothWays) {
  h2_app_ = std::make_unique<H2App>(base_);
  h2_app_->handler = [](H2Peer& p, std::int32_t id, H2Peer::Stream& s) {
    p.respond(id, {{":status", "200"}}, "got:" + s.msg.body, {{"x-checksum", "abc"}});
  };
  start(Codec::kHttp1, Codec::kHttp2);
  h1_client_->send(
      "POST /upload HTTP/1.1\r\nHost: up.app\r\nTransfer-Encoding: chunked\r\n"
      "Connection: keep-alive\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Req-Trailer: t1\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  const Message& r = h1_client_->parser.messages[0];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "got:hello world");
  EXPECT_EQ(value(r.headers, "transfer-encoding"), "chunked");
  EXPECT_EQ(value(r.trailers, "x-checksum"), "abc");
  ASSERT_EQ(h2_app_->requests.size(), 1u);
  const Message& q = h2_app_->requests[0];
  EXPECT_EQ(q.method, "POST");
  EXPECT_EQ(value(q.headers, ":authority"), "up.app");
  EXPECT_EQ(value(q.headers, "connection"), std::nullopt);
  EXPECT_EQ(value(q.headers, "transfer-encoding"), std::nullopt);
  EXPECT_EQ(value(q.trailers, "x-req-trailer"), "t1");
}

TEST_F(HttpSessionTest, Http1ToHttp1_ChunkedRequestAndResponseWithTrailers) {
  h1_app_ = std::make_unique<H1App>(base_);
  h1_app_->handler = [](H1App& app, H1App::Conn& c, const Message& m) {
    std::string body = "echo:" + m.body;
    char size[16];
    snprintf(size, sizeof(size), "%zx", body.size());
    app.write(
        c, std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n") +
               size + "\r\n" + body + "\r\n0\r\nx-sum: 42\r\n\r\n");
  };
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send(
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nx-req: 1\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  const Message& r = h1_client_->parser.messages[0];
  EXPECT_EQ(r.body, "echo:abc");
  EXPECT_EQ(value(r.trailers, "x-sum"), "42");
  ASSERT_EQ(h1_app_->requests.size(), 1u);
  EXPECT_EQ(h1_app_->requests[0].body, "abc");
  EXPECT_EQ(value(h1_app_->requests[0].headers, "transfer-encoding"), "chunked");
  EXPECT_EQ(value(h1_app_->requests[0].trailers, "x-req"), "1");
}

TEST_F(HttpSessionTest, Http1_PipelinedRequestsAnsweredInOrderOverOneAppConnection) {
  h1_app_ = std::make_unique<H1App>(base_);
  h1_app_->handler = [](H1App& app, H1App::Conn& c, const Message& m) {
    std::string body = "r" + m.url;
    app.write(
        c, "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send(
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
      "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(waitResponses(3));
  EXPECT_EQ(h1_client_->parser.messages[0].body, "r/1");
  EXPECT_EQ(h1_client_->parser.messages[1].body, "r/2");
  EXPECT_EQ(h1_client_->parser.messages[2].body, "r/3");
  ASSERT_EQ(h1_app_->requests.size(), 3u);
  EXPECT_EQ(h1_app_->requests[1].body, "body");
  EXPECT_EQ(h1_app_->conns.size(), 1u) << "keep-alive reuse";
  EXPECT_EQ(session_->stats().requests, 3u);
}

TEST_F(HttpSessionTest, Http1_ConnectionCloseAndHttp10AreHonoured) {
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send("GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(value(h1_client_->parser.messages[0].headers, "connection"), "close");
  ASSERT_TRUE(runUntil([&] { return closed_ == 1 && h1_client_->eof; }));

  h1_client_.reset();
  closed_ = 0;
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send("GET /b HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(h1_client_->raw.substr(0, 9), "HTTP/1.0 ");
  EXPECT_EQ(h1_client_->parser.messages[0].body, "hello");
  ASSERT_TRUE(runUntil([&] { return closed_ == 1; }));
}

TEST_F(HttpSessionTest, Http1_ExpectContinueAnsweredOnceAllowed) {
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send(
      "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return h1_client_->raw.find("100 Continue") != std::string::npos; }));
  h1_client_->send("abc");
  ASSERT_TRUE(runUntil([&] { return h1_client_->raw.find("hello") != std::string::npos; }));
  ASSERT_EQ(h1_app_->requests.size(), 1u);
  EXPECT_EQ(h1_app_->requests[0].body, "abc");
  EXPECT_EQ(value(h1_app_->requests[0].headers, "expect"), std::nullopt);
}

TEST_F(HttpSessionTest, RepeatedHeaderIsJoinedForAuthorization) {
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Role: admin\r\nAccept: */*\r\nx-role: dev\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(values(seen_[0].headers, "x-role"), std::vector<std::string>{"admin,dev"});
  EXPECT_EQ(seen_[0].header("accept"), "*/*");
  // The app still gets the fields as sent.
  EXPECT_EQ(values(h1_app_->requests[0].headers, "x-role"),
            (std::vector<std::string>{"admin", "dev"}));
}

TEST_F(HttpSessionTest, Http2_RepeatedHeaderIsJoinedForAuthorization) {
  start(Codec::kHttp2, Codec::kHttp1);
  std::int32_t id =
      h2_client_->request(h2Get("/", {{"x-role", "a"}, {"x-role", "b"}, {"x-role", "c"}}));
  ASSERT_TRUE(waitStream(id));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].host, "web.app");
  EXPECT_EQ(values(seen_[0].headers, "x-role"), std::vector<std::string>{"a,b,c"});
}

// ---------------------------------------------------------------------------------------------
// Denied requests never reach the app.

TEST_F(HttpSessionTest, Http1_DeniedGets403AndTheConnectionStaysUsable) {
  outcome_.allowed = false;
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send(
      "POST /admin HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(waitResponses(2));
  const Message& r = h1_client_->parser.messages[0];
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "RBAC: access denied");
  EXPECT_EQ(value(r.headers, "content-type"), "text/plain");
  EXPECT_EQ(value(r.headers, "x-palisade-denied-reason"), std::nullopt);
  EXPECT_EQ(h1_client_->parser.messages[1].status, 403);
  EXPECT_TRUE(h1_app_->requests.empty());
  EXPECT_TRUE(h1_app_->conns.empty()) << "the app is not even contacted";
  EXPECT_EQ(session_->stats().denied, 2u);
}

TEST_F(HttpSessionTest, Http2_DeniedReasonHeaderWhenGiven) {
  outcome_.allowed = false;
  outcome_.denied_reason = "policy ns/deny-all rule 0";
  start(Codec::kHttp2, Codec::kHttp1);
  std::int32_t id = h2_client_->request(
      {{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}},
      std::string(100000, 'b'));
  ASSERT_TRUE(waitStream(id));
  const H2Peer::Stream& s = h2_client_->streams[id];
  EXPECT_EQ(s.msg.status, 403);
  EXPECT_EQ(s.msg.body, "RBAC: access denied");
  EXPECT_EQ(value(s.msg.headers, "x-palisade-denied-reason"), "policy ns/deny-all rule 0");
  EXPECT_EQ(value(s.msg.headers, "content-type"), "text/plain");
  EXPECT_TRUE(h1_app_->requests.empty());
  // The discarded body was consumed: the connection still carries requests.
  outcome_.allowed = true;
  std::int32_t id2 = h2_client_->request(h2Get("/ok"));
  ASSERT_TRUE(waitStream(id2));
  EXPECT_EQ(h2_client_->streams[id2].msg.status, 200);
}

TEST_F(HttpSessionTest, Http2_GrpcDeniedIsTrailersOnlyStatus7) {
  outcome_.allowed = false;
  start(Codec::kHttp2, Codec::kHttp2);
  std::int32_t id = h2_client_->request(grpcHeaders(), std::string("\0\0\0\0\x01z", 6));
  ASSERT_TRUE(waitStream(id));
  const H2Peer::Stream& s = h2_client_->streams[id];
  EXPECT_EQ(s.msg.status, 200);
  EXPECT_EQ(s.header_blocks, 1) << "trailers-only: one HEADERS frame";
  EXPECT_FALSE(s.data_seen);
  EXPECT_EQ(value(s.msg.headers, "grpc-status"), "7");
  EXPECT_EQ(value(s.msg.headers, "grpc-message"), "RBAC: access denied");
  EXPECT_EQ(value(s.msg.headers, "content-type"), "application/grpc");
  EXPECT_TRUE(h2_app_->requests.empty());
}

// ---------------------------------------------------------------------------------------------
// Bounds and failures.

TEST_F(HttpSessionTest, Http1_OversizedHeaderBlockGets431AndClose) {
  options_.limits.max_header_bytes = 1024;
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(2000, 'v') + "\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(h1_client_->parser.messages[0].status, 431);
  ASSERT_TRUE(runUntil([&] { return closed_ == 1 && h1_client_->eof; }));
  EXPECT_TRUE(seen_.empty());
}

TEST_F(HttpSessionTest, Http1_TooManyHeaderFieldsGets431) {
  options_.limits.max_headers = 10;
  start(Codec::kHttp1, Codec::kHttp1);
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 11; ++i) {
    req += "X-" + std::to_string(i) + ": v\r\n";
  }
  h1_client_->send(req + "\r\n");
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(h1_client_->parser.messages[0].status, 431);
}

TEST_F(HttpSessionTest, Http1_MalformedRequestGets400AndClose) {
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send("GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(h1_client_->parser.messages[0].status, 400);
  ASSERT_TRUE(runUntil([&] { return closed_ == 1; }));
}

TEST_F(HttpSessionTest, Http2_OversizedHeaderListGets431) {
  options_.limits.max_header_bytes = 1024;
  start(Codec::kHttp2, Codec::kHttp1);
  std::int32_t id = h2_client_->request(h2Get("/", {{"x-big", std::string(2000, 'v')}}));
  ASSERT_TRUE(waitStream(id));
  EXPECT_EQ(h2_client_->streams[id].msg.status, 431);
  EXPECT_TRUE(seen_.empty());
}

TEST_F(HttpSessionTest, Http1_AppDownGets503) {
  app_down_ = true;
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(h1_client_->parser.messages[0].status, 503);
  EXPECT_EQ(h1_client_->parser.messages[0].body, "upstream connect error");
}

TEST_F(HttpSessionTest, Http2_AppDownGets503AndGrpcGetsUnavailable) {
  app_down_ = true;
  start(Codec::kHttp2, Codec::kHttp2);
  std::int32_t id = h2_client_->request(h2Get("/"));
  std::int32_t grpc = h2_client_->request(grpcHeaders(), std::string("\0\0\0\0\0", 5));
  ASSERT_TRUE(waitStream(id));
  ASSERT_TRUE(waitStream(grpc));
  EXPECT_EQ(h2_client_->streams[id].msg.status, 503);
  EXPECT_EQ(h2_client_->streams[id].msg.body, "upstream connect error");
  const H2Peer::Stream& g = h2_client_->streams[grpc];
  EXPECT_EQ(g.msg.status, 200);
  EXPECT_EQ(value(g.msg.headers, "grpc-status"), "14");
  EXPECT_EQ(g.header_blocks, 1);
}

TEST_F(HttpSessionTest, Http2ToHttp1_AppClosingMidResponseResetsTheStream) {
  h1_app_ = std::make_unique<H1App>(base_);
  h1_app_->handler = [](H1App& app, H1App::Conn& c, const Message&) {
    app.write(c, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly-ten!!");
    bufferevent_flush(c.bev, EV_WRITE, BEV_FLUSH);
    // Closed once the bytes are out: the app dies mid-response.
    bufferevent_setcb(
        c.bev, nullptr,
        [](bufferevent* bev, void* arg) {
          auto* conn = static_cast<H1App::Conn*>(arg);
          if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
            conn->app->closeConn(*conn);
          }
        },
        nullptr, &c);
  };
  start(Codec::kHttp2, Codec::kHttp1);
  std::int32_t id = h2_client_->request(h2Get("/"));
  ASSERT_TRUE(waitStream(id));
  EXPECT_EQ(h2_client_->streams[id].msg.status, 200);
  EXPECT_NE(h2_client_->streams[id].error, 0u) << "RST_STREAM, not a clean end";
}

TEST_F(HttpSessionTest, Http2ToHttp2_AppResetMidResponseResetsTheStream) {
  h2_app_ = std::make_unique<H2App>(base_);
  h2_app_->handler = [](H2Peer& p, std::int32_t id, H2Peer::Stream&) {
    p.respond(id, {{":status", "200"}}, "", {}, true);
  };
  // Trailers-only from the app passes as one HEADERS frame.
  start(Codec::kHttp2, Codec::kHttp2);
  std::int32_t id = h2_client_->request(h2Get("/"));
  ASSERT_TRUE(waitStream(id));
  EXPECT_EQ(h2_client_->streams[id].msg.status, 200);
  EXPECT_EQ(h2_client_->streams[id].error, 0u);

  h2_app_->handler = [](H2Peer& p, std::int32_t id, H2Peer::Stream&) { p.reset(id); };
  std::int32_t id2 = h2_client_->request(h2Get("/2"));
  ASSERT_TRUE(waitStream(id2));
  EXPECT_EQ(h2_client_->streams[id2].msg.status, 503) << "reset before a response head";
}

// ---------------------------------------------------------------------------------------------
// Drain, abort, idle.

TEST_F(HttpSessionTest, Http2_DrainSendsGoawayAndLetsTheOpenStreamFinish) {
  h1_app_ = std::make_unique<H1App>(base_);
  H1App::Conn* held = nullptr;
  h1_app_->handler = [&](H1App&, H1App::Conn& c, const Message&) { held = &c; };
  start(Codec::kHttp2, Codec::kHttp1);
  std::int32_t id = h2_client_->request(h2Get("/slow"));
  ASSERT_TRUE(runUntil([&] { return held != nullptr; }));
  session_->drain();
  ASSERT_TRUE(runUntil([&] { return h2_client_->goaway; }));
  EXPECT_EQ(h2_client_->goaway_last_stream, id);
  EXPECT_EQ(closed_, 0) << "the stream is still open";
  h1_app_->write(*held, "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone");
  ASSERT_TRUE(waitStream(id));
  EXPECT_EQ(h2_client_->streams[id].msg.body, "done");
  EXPECT_EQ(h2_client_->streams[id].error, 0u);
  ASSERT_TRUE(runUntil([&] { return closed_ == 1; }));
}

TEST_F(HttpSessionTest, Http1_DrainFinishesTheRequestInFlightWithConnectionClose) {
  h1_app_ = std::make_unique<H1App>(base_);
  H1App::Conn* held = nullptr;
  h1_app_->handler = [&](H1App&, H1App::Conn& c, const Message&) { held = &c; };
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return held != nullptr; }));
  session_->drain();
  h1_app_->write(*held, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(value(h1_client_->parser.messages[0].headers, "connection"), "close");
  ASSERT_TRUE(runUntil([&] { return closed_ == 1 && h1_client_->eof; }));
}

TEST_F(HttpSessionTest, AbortClosesNowAndOnClosedRunsOnce) {
  start(Codec::kHttp2, Codec::kHttp1);
  std::int32_t id = h2_client_->request(h2Get("/"));
  ASSERT_TRUE(waitStream(id));
  session_->abort();
  EXPECT_EQ(closed_, 1);
  ASSERT_TRUE(runUntil([&] { return h2_client_->eof; }));
  EXPECT_EQ(closed_, 1);
}

TEST_F(HttpSessionTest, IdleTimeoutClosesAConnectionWithoutStreams) {
  options_.limits.idle_timeout = 50ms;
  start(Codec::kHttp2, Codec::kHttp1);
  ASSERT_TRUE(runUntil([&] { return closed_ == 1; }, 5s));
  EXPECT_TRUE(runUntil([&] { return h2_client_->goaway; }));
}

// ---------------------------------------------------------------------------------------------
// Back-pressure: a client that does not read while the app streams 50 MB. The session's
// buffers stay bounded and the app is held back; once the client reads, everything arrives.

constexpr std::uint64_t kBig = 50ull * 1024 * 1024;
constexpr std::size_t kLimit = 256 * 1024;

TEST_F(HttpSessionTest, Http1_SlowClientHoldsBackTheApp) {
  options_.limits.buffer_limit = kLimit;
  h1_app_ = std::make_unique<H1App>(base_);
  h1_app_->handler = [](H1App& app, H1App::Conn& c, const Message&) { app.stream(c, kBig); };
  start(Codec::kHttp1, Codec::kHttp1);
  h1_client_->keep_raw = false;
  h1_client_->parser.count_body_only = true;
  h1_client_->setReading(false);
  h1_client_->send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  runFor(300ms);
  EXPECT_LT(h1_app_->streamed, kBig / 4) << "the app was not held back";
  EXPECT_LE(session_->stats().peak_buffered_bytes, 2 * kLimit);
  h1_client_->setReading(true);
  ASSERT_TRUE(waitResponses(1));
  EXPECT_EQ(h1_client_->parser.body_bytes, kBig);
  EXPECT_LE(session_->stats().peak_buffered_bytes, 2 * kLimit);
}

TEST_F(HttpSessionTest, Http2_SlowClientHoldsBackTheApp) {
  options_.limits.buffer_limit = kLimit;
  h1_app_ = std::make_unique<H1App>(base_);
  h1_app_->handler = [](H1App& app, H1App::Conn& c, const Message&) { app.stream(c, kBig); };
  start(Codec::kHttp2, Codec::kHttp1);
  h2_client_->count_body_only = true;
  std::int32_t id = h2_client_->request(h2Get("/big"));
  ASSERT_TRUE(runUntil([&] { return h1_app_->streamed > 0; }));
  h2_client_->setReading(false);
  runFor(300ms);
  EXPECT_LT(h1_app_->streamed, kBig / 4) << "the app was not held back";
  EXPECT_LE(session_->stats().peak_buffered_bytes, 2 * kLimit);
  h2_client_->setReading(true);
  ASSERT_TRUE(waitStream(id));
  EXPECT_EQ(h2_client_->body_bytes, kBig);
  EXPECT_LE(session_->stats().peak_buffered_bytes, 2 * kLimit);
}

TEST_F(HttpSessionTest, Http2_SlowAppHoldsBackTheUpload) {
  options_.limits.buffer_limit = kLimit;
  h1_app_ = std::make_unique<H1App>(base_);
  h1_app_->reading = false;
  h1_app_->handler = [](H1App& app, H1App::Conn& c, const Message& m) {
    app.write(c, "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(m.body.size()) +
                     "\r\n\r\n" + std::string(m.body.size(), 'y'));
  };
  start(Codec::kHttp2, Codec::kHttp1);
  h2_client_->count_body_only = true;
  constexpr std::size_t kUpload = 20 * 1024 * 1024;
  std::int32_t id = h2_client_->request({{":method", "POST"},
                                         {":scheme", "https"},
                                         {":authority", "a"},
                                         {":path", "/upload"},
                                         {"content-length", std::to_string(kUpload)}},
                                        std::string(kUpload, 'u'));
  runFor(300ms);
  EXPECT_LE(session_->stats().peak_buffered_bytes, 2 * kLimit);
  h1_app_->startReading();
  ASSERT_TRUE(waitStream(id));
  EXPECT_EQ(h2_client_->streams[id].error, 0u);
  ASSERT_EQ(h1_app_->requests.size(), 1u);
  EXPECT_EQ(h1_app_->requests[0].body.size(), kUpload);
  EXPECT_EQ(h2_client_->body_bytes, kUpload);
  EXPECT_LE(session_->stats().peak_buffered_bytes, 2 * kLimit);
}

// ---------------------------------------------------------------------------------------------
// A shared upstream (the outbound sidecar's pool): one self-flushing h2c connection to the app,
// owned outside the sessions, carrying the streams of two sessions.

class SharedH2 final : public UpstreamConnectionOwner, public UpstreamProvider {
 public:
  SharedH2(event_base* base, const SessionOptions& options) : options_(options) {
    conn_ = std::make_unique<Http2Upstream>(base, *this, options_);
    conn_->enablePooledMode();
    conn_->connect();
  }
  // UpstreamProvider:
  UpstreamRequest* newStream(Exchange& ex, UpstreamCallbacks& callbacks) override {
    ++streams;
    return conn_->newStream(ex, callbacks);
  }
  // UpstreamConnectionOwner:
  void enter() override {}
  void leave() override {}
  void onUpstreamClosed(UpstreamConnection*) override { closed = true; }

  Http2Upstream& conn() { return *conn_; }
  int streams = 0;
  bool closed = false;

 private:
  SessionOptions options_;
  std::unique_ptr<Http2Upstream> conn_;
};

class SharedUpstreamTest : public HttpSessionTest {
 protected:
  ~SharedUpstreamTest() override {
    // Both sessions go before the shared connection their streams point into.
    if (session_ != nullptr && closed_ == 0) {
      session_->abort();
      runUntil([&] { return closed_ > 0; });
    }
    if (second_ != nullptr && second_closed_ == 0) {
      second_->abort();
      runUntil([&] { return second_closed_ > 0; });
    }
    second_client_.reset();
    shared_.reset();
  }

  // The fixture's session (a `first` client) plus a second one (HTTP/1.1), both over
  // `shared_`.
  void startTwo(Codec first = Codec::kHttp1) {
    h2_app_ = std::make_unique<H2App>(base_);
    options_.app_address = h2_app_->address();
    options_.app_address_len = h2_app_->addressLen();
    shared_ = std::make_unique<SharedH2>(base_, options_);
    options_.upstream_provider = shared_.get();
    start(first, Codec::kHttp2);
    SessionOptions o = options_;
    o.downstream = Codec::kHttp1;
    o.on_closed = [this] { ++second_closed_; };
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    second_client_ = std::make_unique<H1Client>(base_, sv[1]);
    second_ = HttpSession::start(base_, bufferevent_socket_new(base_, sv[0], BEV_OPT_CLOSE_ON_FREE),
                                 std::move(o));
  }

  std::unique_ptr<SharedH2> shared_;
  HttpSession* second_ = nullptr;
  int second_closed_ = 0;
  std::unique_ptr<H1Client> second_client_;
};

TEST_F(SharedUpstreamTest, TwoSessionsShareOneHttp2Connection) {
  startTwo();
  h1_client_->send("GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n");
  second_client_->send("GET /three HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(waitResponses(2));
  ASSERT_TRUE(runUntil([&] { return second_client_->parser.completeCount() >= 1; }));
  EXPECT_EQ(h1_client_->parser.messages[1].body, "hello");
  EXPECT_EQ(second_client_->parser.messages[0].body, "hello");
  EXPECT_EQ(h2_app_->conns.size(), 1u) << "one connection for both sessions";
  EXPECT_EQ(h2_app_->requests.size(), 3u);
  EXPECT_EQ(shared_->streams, 3);
  EXPECT_EQ(shared_->conn().openStreams(), 0u);
}

TEST_F(SharedUpstreamTest, AbortedSessionResetsOnlyItsOwnStream) {
  std::vector<std::pair<H2Peer*, std::int32_t>> held;
  startTwo();
  h2_app_->handler = [&](H2Peer& peer, std::int32_t id, H2Peer::Stream& s) {
    if (s.msg.url == "/hold") {
      held.emplace_back(&peer, id);
      return;
    }
    peer.respond(id, {{":status", "200"}}, "ok", {});
  };
  h1_client_->send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return held.size() == 1; }));
  session_->abort();
  ASSERT_TRUE(runUntil([&] { return closed_ == 1; }));
  H2Peer& app_side = *held[0].first;
  ASSERT_TRUE(runUntil([&] { return app_side.streams[held[0].second].closed; }));
  EXPECT_EQ(app_side.streams[held[0].second].error, static_cast<std::uint32_t>(NGHTTP2_CANCEL));
  // The connection and the other session carry on.
  second_client_->send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return second_client_->parser.completeCount() >= 1; }));
  EXPECT_EQ(second_client_->parser.messages[0].status, 200);
  EXPECT_EQ(second_client_->parser.messages[0].body, "ok");
  EXPECT_FALSE(shared_->closed);
  EXPECT_EQ(h2_app_->conns.size(), 1u);
}

TEST_F(SharedUpstreamTest, SlowClientHoldsBackOnlyItsOwnStreamsNotTheSharedConnection) {
  options_.limits.buffer_limit = kLimit;
  startTwo(Codec::kHttp2);
  const std::string big(8 * kLimit, 'x');
  h2_app_->handler = [&](H2Peer& peer, std::int32_t id, H2Peer::Stream& s) {
    peer.respond(id, {{":status", "200"}}, s.msg.url == "/big" ? big : "ok", {});
  };
  // More paused streams than the connection window holds stream windows.
  h2_client_->count_body_only = true;
  h2_client_->setReading(false);
  for (int i = 0; i < 8; ++i) {
    h2_client_->request(h2Get("/big"));
  }
  ASSERT_TRUE(runUntil([&] { return h2_app_->requests.size() == 8; }));
  runFor(300ms);
  second_client_->send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return second_client_->parser.completeCount() >= 1; }, 3s))
      << "the other session's stream waited for the slow one: " << second_client_->raw.substr(0, 300);
  EXPECT_EQ(second_client_->parser.messages[0].body, "ok");
  EXPECT_LE(session_->stats().peak_buffered_bytes, 8 * 2 * kLimit);
  h2_client_->setReading(true);
  ASSERT_TRUE(runUntil([&] { return h2_client_->body_bytes == 8 * big.size(); }));
}

TEST_F(SharedUpstreamTest, SharedConnectionFailureFailsEverySessionsStreamWith503) {
  startTwo();
  h2_app_->handler = [](H2Peer&, std::int32_t, H2Peer::Stream&) {};  // never answers
  h1_client_->send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
  second_client_->send("GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return h2_app_->requests.size() == 2; }));
  h2_app_->conns.clear();  // the app goes away with both streams open
  ASSERT_TRUE(waitResponses(1));
  ASSERT_TRUE(runUntil([&] { return second_client_->parser.completeCount() >= 1; }));
  EXPECT_EQ(h1_client_->parser.messages[0].status, 503);
  EXPECT_EQ(second_client_->parser.messages[0].status, 503);
  EXPECT_TRUE(shared_->closed);
}

}  // namespace
}  // namespace palisade::proxy::http
