#include "proxy/tcp_proxy.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

namespace palisade::proxy {

Pump::Pump(Side a, Side b, std::size_t limit, std::function<void(const char*)> on_done)
    : limit_(limit), on_done_(std::move(on_done)) {
  a_.side = a;
  b_.side = b;
  last_activity_ = std::time(nullptr);
}

Pump::~Pump() {
  for (End* e : {&a_, &b_}) {
    if (e->side.bev != nullptr) {
      bufferevent_free(e->side.bev);
    }
  }
}

void Pump::start() {
  for (End* e : {&a_, &b_}) {
    bufferevent_setcb(e->side.bev, &Pump::onRead, &Pump::onWrite, &Pump::onEvent, this);
    bufferevent_setwatermark(e->side.bev, EV_WRITE, 0, 0);
    bufferevent_enable(e->side.bev, EV_READ | EV_WRITE);
  }
  // Bytes that arrived before the pump started (a sniffed request, a handshake's tail).
  transfer(a_, b_);
  transfer(b_, a_);
}

void Pump::transfer(End& from, End& to) {
  if (done_) {
    return;
  }
  evbuffer* in = bufferevent_get_input(from.side.bev);
  const std::size_t n = evbuffer_get_length(in);
  if (n > 0) {
    (&from == &a_ ? from_a_ : from_b_) += n;
    last_activity_ = std::time(nullptr);
    evbuffer_add_buffer(bufferevent_get_output(to.side.bev), in);
  }
  if (evbuffer_get_length(bufferevent_get_output(to.side.bev)) >= limit_) {
    // Back-pressure: stop reading until `to` drains below half the limit.
    from.throttled = true;
    bufferevent_disable(from.side.bev, EV_READ);
    bufferevent_setwatermark(to.side.bev, EV_WRITE, limit_ / 2, 0);
  }
}

void Pump::maybeCloseWrite(End& to) {
  End& from = &to == &a_ ? b_ : a_;
  if (!from.eof || to.write_closed ||
      evbuffer_get_length(bufferevent_get_output(to.side.bev)) > 0) {
    return;
  }
  to.write_closed = true;
  if (to.side.tls) {
    SSL* ssl = bufferevent_openssl_get_ssl(to.side.bev);
    if (ssl != nullptr) {
      SSL_shutdown(ssl);  // close_notify: the peer reads an end of stream
    }
  } else {
    ::shutdown(bufferevent_getfd(to.side.bev), SHUT_WR);
  }
  if (a_.eof && b_.eof && a_.write_closed && b_.write_closed) {
    finish("closed");
  }
}

void Pump::onRead(bufferevent* bev, void* arg) {
  auto* p = static_cast<Pump*>(arg);
  p->transfer(p->end(bev), p->other(bev));
}

void Pump::onWrite(bufferevent* bev, void* arg) {
  auto* p = static_cast<Pump*>(arg);
  End& to = p->end(bev);
  End& from = p->other(bev);
  if (from.throttled && evbuffer_get_length(bufferevent_get_output(bev)) < p->limit_) {
    from.throttled = false;
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (!from.eof) {
      bufferevent_enable(from.side.bev, EV_READ);
    }
    // The input may hold bytes read before the pause.
    p->transfer(from, to);
  }
  p->maybeCloseWrite(to);
}

void Pump::onEvent(bufferevent* bev, short what, void* arg) {
  auto* p = static_cast<Pump*>(arg);
  End& from = p->end(bev);
  End& to = p->other(bev);
  if (what & BEV_EVENT_ERROR) {
    p->finish("reset");
    return;
  }
  if (what & BEV_EVENT_EOF) {
    // Whatever is left in the input still goes to the other side, ahead of the end.
    p->transfer(from, to);
    from.eof = true;
    p->maybeCloseWrite(to);  // may finish, and the owner may destroy the pump: return now
  }
}

void Pump::finish(const char* why) {
  if (done_) {
    return;
  }
  done_ = true;
  for (End* e : {&a_, &b_}) {
    bufferevent_disable(e->side.bev, EV_READ | EV_WRITE);
  }
  if (on_done_) {
    auto cb = std::move(on_done_);
    on_done_ = nullptr;
    cb(why);
  }
}

}  // namespace palisade::proxy
