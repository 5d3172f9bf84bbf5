#include "proxy/dispatcher.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace palisade::proxy {

namespace {
[[noreturn]] void fatal(const char* what) {
  // Cannot happen after startup but for fd or memory exhaustion, which is fatal (STYLE.md).
  std::perror(what);
  std::abort();
}
}  // namespace

namespace {

// One loop per thread, never entered by another thread (post() goes through our own eventfd
// and mutex), so no locks; and epoll changes are batched per loop iteration: a bufferevent
// that turns its write interest on and off within one iteration costs no epoll_ctl.
event_base* newBase() {
  event_config* cfg = event_config_new();
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}

}  // namespace

Dispatcher::Dispatcher() : base_(newBase()) {
  if (!base_) {
    fatal("dispatcher: event_base_new");
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    fatal("dispatcher: eventfd");
  }
  wake_event_.reset(event_new(base_.get(), wake_fd_, EV_READ | EV_PERSIST, onWake, this));
  if (!wake_event_ || event_add(wake_event_.get(), nullptr) != 0) {
    fatal("dispatcher: event_add");
  }
}

Dispatcher::~Dispatcher() {
  wake_event_.reset();
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
  }
}

void Dispatcher::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
  }
  const std::uint64_t one = 1;
  // The counter saturates long after any real backlog; EAGAIN then still leaves it readable.
  while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void Dispatcher::exit() {
  post([this] { event_base_loopbreak(base_.get()); });
}

void Dispatcher::run() {
  thread_.store(std::this_thread::get_id());
  event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY);
  thread_.store(std::thread::id());
}

void Dispatcher::onWake(evutil_socket_t fd, short, void* arg) {
  std::uint64_t count = 0;
  while (::read(fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
  static_cast<Dispatcher*>(arg)->runPosted();
}

void Dispatcher::runPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) {
    fn();
  }
}

}  // namespace palisade::proxy
