#include "proxy/http/http1_server_codec.h"

#include <event2/buffer.h>

#include <cstring>

namespace palisade::proxy::http {

namespace {

constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

Http1ServerCodec* self(http_parser* p) { return static_cast<Http1ServerCodec*>(p->data); }

const char* reasonPhrase(int status) {
  const char* s = http_status_str(static_cast<http_status>(status));
  return (s != nullptr && std::strcmp(s, "<unknown>") != 0) ? s : "Unknown";
}

}  // namespace

Http1ServerCodec::Http1ServerCodec(bufferevent* bev, ServerCodecCallbacks& callbacks,
                                   const SessionLimits& limits)
    : bev_(bev), callbacks_(callbacks), limits_(limits) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  settings_.on_message_begin = onMessageBegin;
  settings_.on_url = onUrl;
  settings_.on_header_field = onHeaderField;
  settings_.on_header_value = onHeaderValue;
  settings_.on_headers_complete = onHeadersComplete;
  settings_.on_body = onBody;
  settings_.on_chunk_header = onChunkHeader;
  settings_.on_message_complete = onMessageComplete;
}

Http1ServerCodec::~Http1ServerCodec() { close(); }

void Http1ServerCodec::start() {
  bufferevent_setcb(bev_, onRead, onWrite, onEvent, this);
  // Pipelined requests and a paused body wait in the input buffer, up to the limit.
  bufferevent_setwatermark(bev_, EV_READ, 0, limits_.buffer_limit);
  bufferevent_setwatermark(bev_, EV_WRITE, limits_.buffer_limit / 2, 0);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  process();
}

void Http1ServerCodec::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  closing_ = true;
  bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
}

void Http1ServerCodec::onRead(bufferevent*, void* arg) {
  auto* c = static_cast<Http1ServerCodec*>(arg);
  CallbackScope scope(c->callbacks_);
  c->process();
}

void Http1ServerCodec::onWrite(bufferevent* bev, void* arg) {
  auto* c = static_cast<Http1ServerCodec*>(arg);
  CallbackScope scope(c->callbacks_);
  if (c->closing_) {
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
      c->closed();
    }
    return;
  }
  if (c->current_ != nullptr) {
    c->callbacks_.onResponseDrained(*c->current_);
  }
}

void Http1ServerCodec::onEvent(bufferevent*, short what, void* arg) {
  auto* c = static_cast<Http1ServerCodec*>(arg);
  CallbackScope scope(c->callbacks_);
  if ((what & BEV_EVENT_EOF) != 0 && (what & BEV_EVENT_ERROR) == 0 && !c->closing_) {
    // A half-close after complete requests still gets the responses (HTTP/1.1 clients such
    // as `printf ... | nc` do this); a request cut short ends the connection.
    c->peer_eof_ = true;
    if (c->current_ != nullptr && c->current_->request_complete) {
      return;
    }
    if (c->current_ == nullptr && evbuffer_get_length(bufferevent_get_input(c->bev_)) != 0) {
      c->process();
      return;
    }
  }
  c->closed();
}

void Http1ServerCodec::closed() {
  if (closed_) {
    return;
  }
  Exchange* ex = current_;
  current_ = nullptr;
  close();
  if (ex != nullptr) {
    callbacks_.onExchangeDone(*ex);
  }
  callbacks_.onDownstreamClosed();
}

void Http1ServerCodec::process() {
  if (in_process_) {
    return;  // the running loop picks the change up
  }
  in_process_ = true;
  evbuffer* input = bufferevent_get_input(bev_);
  while (!closing_) {
    maybeFinishExchange();
    if (closing_ || waiting_response_ || body_paused_) {
      break;
    }
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1 || vec.iov_len == 0) {
      break;
    }
    std::size_t n = http_parser_execute(&parser_, &settings_,
                                        static_cast<const char*>(vec.iov_base), vec.iov_len);
    if (closing_) {
      break;
    }
    http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err != HPE_OK && err != HPE_PAUSED) {
      fail(too_large_ || err == HPE_HEADER_OVERFLOW ? 431 : 400);
      break;
    }
    evbuffer_drain(input, n);
    if (err == HPE_OK && n < vec.iov_len) {
      // An upgrade (or CONNECT) stops the parser; we do not tunnel, so this connection
      // carries nothing more.
      evbuffer_drain(input, evbuffer_get_length(input));
      keep_alive_ = false;
      if (current_ != nullptr) {
        current_->request.keep_alive = false;
      }
      break;
    }
  }
  in_process_ = false;
  if (!closing_ && peer_eof_ && (current_ == nullptr || !current_->request_complete)) {
    closeAfterFlush();
  }
}

void Http1ServerCodec::updateParserPause() {
  http_parser_pause(&parser_, (waiting_response_ || body_paused_) ? 1 : 0);
}

void Http1ServerCodec::maybeFinishExchange() {
  if (current_ == nullptr || !current_->request_complete || !current_->response_complete) {
    return;
  }
  Exchange* ex = current_;
  current_ = nullptr;
  waiting_response_ = false;
  body_paused_ = false;
  callbacks_.onExchangeDone(*ex);
  if (!keep_alive_ || draining_) {
    closeAfterFlush();
    return;
  }
  updateParserPause();
}

bool Http1ServerCodec::addHeaderBytes(std::size_t n) {
  current_->header_bytes += n;
  if (current_->header_bytes > limits_.max_header_bytes) {
    too_large_ = true;
    return false;
  }
  return true;
}

int Http1ServerCodec::onMessageBegin(http_parser* p) {
  Http1ServerCodec* c = self(p);
  if (c->draining_) {
    c->closeAfterFlush();
    return -1;
  }
  c->current_ = c->callbacks_.newExchange(++c->sequence_);
  c->in_value_ = false;
  c->in_trailers_ = false;
  c->has_body_ = false;
  c->chunked_ = false;
  c->no_body_ = false;
  c->keep_alive_ = true;
  return 0;
}

int Http1ServerCodec::onUrl(http_parser* p, const char* at, std::size_t len) {
  Http1ServerCodec* c = self(p);
  if (!c->addHeaderBytes(len)) {
    return -1;
  }
  c->current_->request.path.append(at, len);
  return 0;
}

int Http1ServerCodec::onHeaderField(http_parser* p, const char* at, std::size_t len) {
  Http1ServerCodec* c = self(p);
  HeaderList& list = c->in_trailers_ ? c->current_->request.trailers : c->current_->request.headers;
  // A new field starts after a value; fragments of one name arrive back to back.
  if (c->in_value_ || list.empty()) {
    if (list.size() + 1 > c->limits_.max_headers) {
      c->too_large_ = true;
      return -1;
    }
    list.addEmpty();
    c->in_value_ = false;
    if (!c->addHeaderBytes(4)) {  // ": " and CRLF
      return -1;
    }
  }
  if (!c->addHeaderBytes(len)) {
    return -1;
  }
  list[list.size() - 1].name.append(at, len);
  return 0;
}

int Http1ServerCodec::onHeaderValue(http_parser* p, const char* at, std::size_t len) {
  Http1ServerCodec* c = self(p);
  HeaderList& list = c->in_trailers_ ? c->current_->request.trailers : c->current_->request.headers;
  c->in_value_ = true;
  if (!c->addHeaderBytes(len)) {
    return -1;
  }
  list[list.size() - 1].value.append(at, len);
  return 0;
}

int Http1ServerCodec::onHeadersComplete(http_parser* p) {
  Http1ServerCodec* c = self(p);
  Exchange& ex = *c->current_;
  RequestHead& r = ex.request;
  r.method = http_method_str(static_cast<http_method>(p->method));
  r.http_minor = p->http_major == 1 ? p->http_minor : 1;
  r.keep_alive = http_should_keep_alive(p) != 0;
  c->keep_alive_ = r.keep_alive;
  int hosts = 0;
  for (std::size_t i = 0; i < r.headers.size(); ++i) {
    toLower(r.headers[i].name);
    if (r.headers[i].name == "host") {
      ++hosts;
      r.authority = r.headers[i].value;
    }
  }
  r.headers.remove("host");
  // "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
  // message that lacks a Host header field and to any request message that contains more
  // than one Host header field line" (RFC 9112 section 3.2).
  if (hosts > 1 || (hosts == 0 && r.http_minor >= 1)) {
    return -1;
  }
  if (const std::string* expect = r.headers.find("expect")) {
    r.expect_continue = r.http_minor >= 1 && equalsLower(*expect, "100-continue");
    r.headers.remove("expect");
  }
  if (const std::string* ct = r.headers.find("content-type")) {
    r.grpc =
        ct->size() >= 16 && equalsLower(std::string_view(*ct).substr(0, 16), "application/grpc");
  }
  bool chunked = (p->flags & F_CHUNKED) != 0;
  if (chunked) {
    r.headers.remove("content-length");
  }
  if (p->method == HTTP_CONNECT) {
    ex.reject_status = 405;
    c->keep_alive_ = false;
  }
  if (p->upgrade) {
    c->keep_alive_ = false;
  }
  c->has_body_ = chunked || ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > 0);
  ex.request_complete = !c->has_body_;
  c->callbacks_.onRequestHead(ex, !c->has_body_);
  return c->closing_ ? -1 : 0;
}

int Http1ServerCodec::onBody(http_parser* p, const char* at, std::size_t len) {
  Http1ServerCodec* c = self(p);
  if (!c->callbacks_.onRequestData(*c->current_, reinterpret_cast<const std::uint8_t*>(at), len)) {
    c->body_paused_ = true;
    c->updateParserPause();
  }
  return c->closing_ ? -1 : 0;
}

int Http1ServerCodec::onChunkHeader(http_parser* p) {
  Http1ServerCodec* c = self(p);
  if (p->content_length == 0) {
    c->in_trailers_ = true;
    c->in_value_ = false;
  }
  return 0;
}

int Http1ServerCodec::onMessageComplete(http_parser* p) {
  Http1ServerCodec* c = self(p);
  Exchange& ex = *c->current_;
  for (std::size_t i = 0; i < ex.request.trailers.size(); ++i) {
    toLower(ex.request.trailers[i].name);
  }
  if (c->has_body_) {
    ex.request_complete = true;
    c->callbacks_.onRequestEnd(ex);
  }
  if (c->closing_) {
    return -1;
  }
  // One exchange at a time: the next pipelined request waits until this response is out.
  c->waiting_response_ = true;
  c->updateParserPause();
  return 0;
}

void Http1ServerCodec::sendHead(Exchange& ex, const ResponseHead& head, bool end_stream) {
  if (closing_ || &ex != current_) {
    return;
  }
  evbuffer* out = bufferevent_get_output(bev_);
  const RequestHead& r = ex.request;
  int status = head.status;
  no_body_ = r.isHead() || status == 204 || status == 304 || (status >= 100 && status < 200);
  const std::string* content_length = head.headers.find("content-length");
  chunked_ = false;
  if (!keep_alive_ || draining_ || !r.keep_alive) {
    keep_alive_ = false;
  }
  if (!no_body_ && content_length == nullptr && !end_stream) {
    if (r.http_minor >= 1) {
      chunked_ = true;
    } else {
      keep_alive_ = false;  // the body ends when the connection does
    }
  }
  // A client waiting for `100 Continue` that gets a final answer may never send the body;
  // it cannot be told apart from the next request, so the connection ends with this one.
  if (r.expect_continue && !ex.request_complete && ex.local_reply) {
    keep_alive_ = false;
  }
  evbuffer_add_printf(out, "HTTP/1.%d %d %s\r\n", r.http_minor >= 1 ? 1 : 0, status,
                      reasonPhrase(status));
  for (const Header& h : head.headers) {
    if (isConnectionSpecific(head.headers, h.name)) {
      continue;
    }
    evbuffer_add(out, h.name.data(), h.name.size());
    evbuffer_add(out, ": ", 2);
    evbuffer_add(out, h.value.data(), h.value.size());
    evbuffer_add(out, "\r\n", 2);
  }
  if (!no_body_ && content_length == nullptr && end_stream) {
    evbuffer_add(out, "content-length: 0\r\n", 19);
  }
  if (chunked_) {
    evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
  }
  if (!keep_alive_) {
    evbuffer_add(out, "connection: close\r\n", 19);
  } else if (r.http_minor == 0) {
    evbuffer_add(out, "connection: keep-alive\r\n", 24);
  }
  evbuffer_add(out, "\r\n", 2);
  ex.response_started = true;
  if (end_stream) {
    ex.response_complete = true;
    process();
  }
}

void Http1ServerCodec::sendData(Exchange& ex, const std::uint8_t* data, std::size_t len) {
  if (closing_ || &ex != current_ || no_body_ || len == 0) {
    return;
  }
  evbuffer* out = bufferevent_get_output(bev_);
  if (chunked_) {
    evbuffer_add_printf(out, "%zx\r\n", len);
    evbuffer_add(out, data, len);
    evbuffer_add(out, "\r\n", 2);
  } else {
    evbuffer_add(out, data, len);
  }
}

void Http1ServerCodec::sendEnd(Exchange& ex) {
  if (closing_ || &ex != current_) {
    return;
  }
  if (chunked_ && !no_body_) {
    evbuffer* out = bufferevent_get_output(bev_);
    evbuffer_add(out, "0\r\n", 3);
    for (const Header& h : ex.response.trailers) {
      evbuffer_add(out, h.name.data(), h.name.size());
      evbuffer_add(out, ": ", 2);
      evbuffer_add(out, h.value.data(), h.value.size());
      evbuffer_add(out, "\r\n", 2);
    }
    evbuffer_add(out, "\r\n", 2);
  }
  ex.response_complete = true;
  if (!keep_alive_ && !ex.request_complete) {
    // The rest of the request is not worth waiting for.
    ex.request_complete = true;
  }
  process();
}

void Http1ServerCodec::sendContinue(Exchange& ex) {
  if (closing_ || &ex != current_ || ex.request_complete || ex.response_started) {
    return;
  }
  evbuffer_add(bufferevent_get_output(bev_), kContinue, sizeof(kContinue) - 1);
}

void Http1ServerCodec::resetStream(Exchange& ex) {
  if (&ex != current_) {
    return;
  }
  // HTTP/1.1 has no stream reset: the truncated response ends with the connection.
  keep_alive_ = false;
  closeAfterFlush();
}

void Http1ServerCodec::resumeRequest(Exchange& ex) {
  if (&ex != current_ || !body_paused_) {
    return;
  }
  body_paused_ = false;
  updateParserPause();
  process();
}

std::size_t Http1ServerCodec::bufferedResponseBytes(const Exchange&) const {
  return evbuffer_get_length(bufferevent_get_output(bev_));
}

std::size_t Http1ServerCodec::bufferedBytes() const {
  return evbuffer_get_length(bufferevent_get_output(bev_)) +
         evbuffer_get_length(bufferevent_get_input(bev_));
}

void Http1ServerCodec::drain() {
  if (draining_) {
    return;
  }
  draining_ = true;
  if (current_ == nullptr) {
    closeAfterFlush();
  } else if (current_->response_started && current_->response_complete) {
    maybeFinishExchange();
  }
  // Otherwise the response in flight carries `connection: close` (or, already started,
  // the connection closes after it).
}

void Http1ServerCodec::fail(int status) {
  const char* reason = reasonPhrase(status);
  if (current_ == nullptr || !current_->response_started) {
    evbuffer_add_printf(bufferevent_get_output(bev_),
                        "HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", status,
                        reason);
  }
  closeAfterFlush();
}

void Http1ServerCodec::closeAfterFlush() {
  if (closing_) {
    return;
  }
  closing_ = true;
  keep_alive_ = false;
  if (current_ != nullptr) {
    Exchange* ex = current_;
    current_ = nullptr;
    callbacks_.onExchangeDone(*ex);
  }
  bufferevent_disable(bev_, EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    closed();
  } else {
    bufferevent_setwatermark(bev_, EV_WRITE, 0, 0);
  }
}

}  // namespace palisade::proxy::http
