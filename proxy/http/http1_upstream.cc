#include "proxy/http/http1_upstream.h"
#include "proxy/dispatcher.h"
#include "proxy/socket_util.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

namespace palisade::proxy::http {

namespace {

Http1Upstream* self(http_parser* p) { return static_cast<Http1Upstream*>(p->data); }

bool methodUsuallyHasBody(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

}  // namespace

Http1Upstream::Http1Upstream(event_base* base, UpstreamCallbacks& callbacks,
                             const SessionOptions& options)
    : base_(base), callbacks_(callbacks), options_(options) {
  parser_.data = this;
  settings_.on_message_begin = onMessageBegin;
  settings_.on_header_field = onHeaderField;
  settings_.on_header_value = onHeaderValue;
  settings_.on_headers_complete = onHeadersComplete;
  settings_.on_body = onBody;
  settings_.on_chunk_header = onChunkHeader;
  settings_.on_message_complete = onMessageComplete;
}

Http1Upstream::~Http1Upstream() { close(); }

void Http1Upstream::close() {
  ex_ = nullptr;
  state_ = State::kClosed;
  if (timer_ != nullptr) {
    event_free(timer_);
    timer_ = nullptr;
  }
  if (bev_ != nullptr) {
    bufferevent_free(bev_);
    bev_ = nullptr;
  }
}

void Http1Upstream::connect() {
  timer_ = evtimer_new(base_, onTimer, this);
  bev_ = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(bev_, onRead, onWrite, onEvent, this);
  bufferevent_setwatermark(bev_, EV_WRITE, options_.limits.buffer_limit / 2, 0);
  if (bufferevent_socket_connect(bev_, reinterpret_cast<const sockaddr*>(&options_.app_address),
                                 static_cast<int>(options_.app_address_len)) != 0) {
    timeval zero{0, 0};
    evtimer_add(timer_, &zero);  // reported from the loop, not from inside sendHead
    return;
  }
  timeval tv = toTimeval(options_.limits.connect_timeout);
  evtimer_add(timer_, &tv);
}

void Http1Upstream::attach(Exchange& ex) {
  ex_ = &ex;
  if (state_ == State::kIdle) {
    state_ = State::kBusy;
  }
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  chunked_request_ = false;
  request_complete_ = false;
  response_complete_ = false;
  head_received_ = false;
  interim_ = false;
  keep_alive_ = true;
  paused_ = false;
  blocked_ = false;
}

void Http1Upstream::onTimer(evutil_socket_t, short, void* arg) {
  auto* u = static_cast<Http1Upstream*>(arg);
  CallbackScope scope(u->callbacks_);
  u->fail();
}

void Http1Upstream::fail() {
  if (state_ == State::kClosed) {
    return;
  }
  Exchange* ex = ex_;
  bool before_head = !head_received_;
  close();
  if (ex != nullptr) {
    callbacks_.onUpstreamFailed(*ex,
                                before_head ? UpstreamFailure::kConnect : UpstreamFailure::kReset);
  }
  callbacks_.onUpstreamClosed(this);
}

void Http1Upstream::onEvent(bufferevent* bev, short what, void* arg) {
  auto* u = static_cast<Http1Upstream*>(arg);
  CallbackScope scope(u->callbacks_);
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    u->connected_ = true;
    evtimer_del(u->timer_);
    setNoDelay(bufferevent_getfd(bev));
    if (u->state_ == State::kConnecting) {
      u->state_ = u->ex_ != nullptr ? State::kBusy : State::kIdle;
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return;
  }
  if ((what & BEV_EVENT_EOF) != 0 && u->ex_ != nullptr && u->head_received_ &&
      !u->response_complete_) {
    // A body delimited by the end of the connection ends here.
    http_parser_execute(&u->parser_, &u->settings_, nullptr, 0);
    if (u->response_complete_) {
      u->fail();  // nothing left to report: the connection just closes
      return;
    }
  }
  u->fail();
}

void Http1Upstream::onRead(bufferevent*, void* arg) {
  auto* u = static_cast<Http1Upstream*>(arg);
  CallbackScope scope(u->callbacks_);
  u->process();
}

void Http1Upstream::onWrite(bufferevent*, void* arg) {
  auto* u = static_cast<Http1Upstream*>(arg);
  CallbackScope scope(u->callbacks_);
  if (u->blocked_ && u->ex_ != nullptr) {
    u->blocked_ = false;
    u->callbacks_.onUpstreamWritable(*u->ex_);
  }
}

void Http1Upstream::process() {
  if (in_process_ || state_ == State::kClosed) {
    return;
  }
  in_process_ = true;
  evbuffer* input = bufferevent_get_input(bev_);
  while (state_ != State::kClosed && !paused_) {
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1 || vec.iov_len == 0) {
      break;
    }
    if (ex_ == nullptr) {
      // Bytes nobody asked for: the connection cannot be trusted with another request.
      in_process_ = false;
      fail();
      return;
    }
    std::size_t n = http_parser_execute(&parser_, &settings_,
                                        static_cast<const char*>(vec.iov_base), vec.iov_len);
    if (state_ == State::kClosed) {
      break;
    }
    http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err != HPE_OK && err != HPE_PAUSED) {
      in_process_ = false;
      fail();
      return;
    }
    evbuffer_drain(input, n);
    if (err == HPE_PAUSED && response_complete_) {
      break;
    }
  }
  in_process_ = false;
  if (state_ != State::kClosed && response_complete_ && ex_ == nullptr) {
    maybeIdle();
  }
}

void Http1Upstream::maybeIdle() {
  evbuffer* input = bufferevent_get_input(bev_);
  if (!keep_alive_ || !request_complete_ || evbuffer_get_length(input) != 0) {
    fail();
    return;
  }
  state_ = State::kIdle;
  http_parser_pause(&parser_, 0);
}

int Http1Upstream::onMessageBegin(http_parser* p) {
  Http1Upstream* u = self(p);
  u->ex_->response.clear();
  u->in_value_ = false;
  u->in_trailers_ = false;
  u->header_bytes_ = 0;
  return 0;
}

int Http1Upstream::onHeaderField(http_parser* p, const char* at, std::size_t len) {
  Http1Upstream* u = self(p);
  HeaderList& list = u->in_trailers_ ? u->ex_->response.trailers : u->ex_->response.headers;
  if (u->in_value_ || list.empty()) {
    if (list.size() >= u->options_.limits.max_headers) {
      return -1;
    }
    list.addEmpty();
    u->in_value_ = false;
  }
  u->header_bytes_ += len;
  if (u->header_bytes_ > u->options_.limits.max_header_bytes) {
    return -1;
  }
  list[list.size() - 1].name.append(at, len);
  return 0;
}

int Http1Upstream::onHeaderValue(http_parser* p, const char* at, std::size_t len) {
  Http1Upstream* u = self(p);
  HeaderList& list = u->in_trailers_ ? u->ex_->response.trailers : u->ex_->response.headers;
  u->in_value_ = true;
  u->header_bytes_ += len;
  if (u->header_bytes_ > u->options_.limits.max_header_bytes) {
    return -1;
  }
  list[list.size() - 1].value.append(at, len);
  return 0;
}

int Http1Upstream::onHeadersComplete(http_parser* p) {
  Http1Upstream* u = self(p);
  ResponseHead& r = u->ex_->response;
  r.status = p->status_code;
  if (r.status >= 100 && r.status < 200) {
    // Interim responses are not relayed (the session answers `Expect: 100-continue`
    // itself); 101 would switch protocols, which we do not tunnel.
    if (r.status == 101) {
      return -1;
    }
    u->interim_ = true;
    return 0;
  }
  for (std::size_t i = 0; i < r.headers.size(); ++i) {
    toLower(r.headers[i].name);
  }
  if ((p->flags & F_CHUNKED) != 0) {
    r.headers.remove("content-length");
  }
  r.headers.remove("transfer-encoding");
  u->keep_alive_ = http_should_keep_alive(p) != 0;
  u->head_received_ = true;
  bool head = u->ex_->request.isHead();
  u->callbacks_.onUpstreamHead(*u->ex_, false);
  if (u->state_ == State::kClosed || u->ex_ == nullptr) {
    return -1;
  }
  // "1" tells http-parser that a response to HEAD has no body.
  return head ? 1 : 0;
}

int Http1Upstream::onBody(http_parser* p, const char* at, std::size_t len) {
  Http1Upstream* u = self(p);
  u->callbacks_.onUpstreamData(*u->ex_, reinterpret_cast<const std::uint8_t*>(at), len);
  if (u->state_ == State::kClosed || u->ex_ == nullptr) {
    return -1;
  }
  if (u->paused_) {
    http_parser_pause(p, 1);
  }
  return 0;
}

int Http1Upstream::onChunkHeader(http_parser* p) {
  Http1Upstream* u = self(p);
  if (p->content_length == 0) {
    u->in_trailers_ = true;
    u->in_value_ = false;
  }
  return 0;
}

int Http1Upstream::onMessageComplete(http_parser* p) {
  Http1Upstream* u = self(p);
  if (u->interim_) {
    u->interim_ = false;
    return 0;
  }
  u->response_complete_ = true;
  Exchange* ex = u->ex_;
  for (std::size_t i = 0; i < ex->response.trailers.size(); ++i) {
    toLower(ex->response.trailers[i].name);
  }
  u->ex_ = nullptr;
  http_parser_pause(p, 1);
  u->callbacks_.onUpstreamEnd(*ex);
  return 0;
}

void Http1Upstream::sendHead(Exchange& ex, bool end_stream) {
  const RequestHead& r = ex.request;
  evbuffer* out = bufferevent_get_output(bev_);
  evbuffer_add(out, r.method.data(), r.method.size());
  evbuffer_add(out, " ", 1);
  if (r.path.empty()) {
    evbuffer_add(out, "/", 1);
  } else {
    evbuffer_add(out, r.path.data(), r.path.size());
  }
  evbuffer_add(out, " HTTP/1.1\r\nhost: ", 17);
  if (r.authority.empty()) {
    // An HTTP/1.0 request may have no Host; HTTP/1.1 requires one (RFC 9112 3.2): name the
    // app's address, as a client dialing it would.
    const std::string app = fromSockaddr(reinterpret_cast<const sockaddr*>(&options_.app_address),
                                         options_.app_address_len)
                                .toString();
    evbuffer_add(out, app.data(), app.size());
  } else {
    evbuffer_add(out, r.authority.data(), r.authority.size());
  }
  evbuffer_add(out, "\r\n", 2);
  bool has_length = false;
  for (const Header& h : r.headers) {
    if (isConnectionSpecific(r.headers, h.name)) {
      continue;
    }
    if (h.name == "content-length") {
      if (end_stream) {
        continue;  // rewritten below
      }
      has_length = true;
    }
    evbuffer_add(out, h.name.data(), h.name.size());
    evbuffer_add(out, ": ", 2);
    evbuffer_add(out, h.value.data(), h.value.size());
    evbuffer_add(out, "\r\n", 2);
  }
  if (end_stream) {
    request_complete_ = true;
    if (methodUsuallyHasBody(r.method) || r.headers.find("content-length") != nullptr) {
      evbuffer_add(out, "content-length: 0\r\n", 19);
    }
  } else if (!has_length) {
    chunked_request_ = true;
    evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
  }
  evbuffer_add(out, "\r\n", 2);
}

bool Http1Upstream::sendData(const std::uint8_t* data, std::size_t len) {
  if (state_ == State::kClosed) {
    return true;
  }
  evbuffer* out = bufferevent_get_output(bev_);
  if (len != 0) {
    if (chunked_request_) {
      evbuffer_add_printf(out, "%zx\r\n", len);
      evbuffer_add(out, data, len);
      evbuffer_add(out, "\r\n", 2);
    } else {
      evbuffer_add(out, data, len);
    }
  }
  if (evbuffer_get_length(out) > options_.limits.buffer_limit) {
    blocked_ = true;
    return false;
  }
  return true;
}

void Http1Upstream::sendEnd() {
  if (state_ == State::kClosed) {
    return;
  }
  request_complete_ = true;
  if (!chunked_request_) {
    return;
  }
  evbuffer* out = bufferevent_get_output(bev_);
  evbuffer_add(out, "0\r\n", 3);
  if (ex_ != nullptr) {
    for (const Header& h : ex_->request.trailers) {
      evbuffer_add(out, h.name.data(), h.name.size());
      evbuffer_add(out, ": ", 2);
      evbuffer_add(out, h.value.data(), h.value.size());
      evbuffer_add(out, "\r\n", 2);
    }
  }
  evbuffer_add(out, "\r\n", 2);
}

void Http1Upstream::pauseResponse(bool paused) {
  if (state_ == State::kClosed || paused_ == paused) {
    return;
  }
  paused_ = paused;
  if (paused) {
    bufferevent_disable(bev_, EV_READ);
    return;
  }
  if (!response_complete_) {
    http_parser_pause(&parser_, 0);
  }
  if (connected_) {
    bufferevent_enable(bev_, EV_READ);
  }
  process();
}

void Http1Upstream::cancel() {
  // The exchange ended before the response did: the connection is in an unknown state.
  if (state_ == State::kClosed) {
    return;
  }
  ex_ = nullptr;
  close();
  callbacks_.onUpstreamClosed(this);
}

std::size_t Http1Upstream::bufferedBytes() const {
  if (bev_ == nullptr) {
    return 0;
  }
  return evbuffer_get_length(bufferevent_get_output(bev_)) +
         evbuffer_get_length(bufferevent_get_input(bev_));
}

}  // namespace palisade::proxy::http
