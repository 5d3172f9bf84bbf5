#pragma once

// Dispatcher: one libevent event loop, owned and run by one worker thread (STYLE.md "Threads
// and the event loop"). Everything made on a worker lives on its dispatcher; other threads
// reach it only through post(), which hands a function to the loop through an eventfd.
// Thread: post() and exit() from any thread; everything else on the dispatcher's thread.

#include <event2/event.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace palisade::proxy {

struct EventBaseDeleter {
  void operator()(event_base* b) const { event_base_free(b); }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
struct EventDeleter {
  void operator()(event* e) const { event_free(e); }
};
using EventPtr = std::unique_ptr<event, EventDeleter>;

// A duration as libevent takes it.
inline timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

class Dispatcher {
 public:
  Dispatcher();
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Runs `fn` on the dispatcher's thread, after the functions posted before it. Any thread.
  void post(std::function<void()> fn);
  // Makes run() return once the functions already posted have run. Any thread.
  void exit();
  // Runs the loop on the calling thread, which becomes the dispatcher's thread, until exit().
  void run();

  // The dispatcher's thread only.
  event_base* base() const { return base_.get(); }
  bool isDispatcherThread() const { return std::this_thread::get_id() == thread_.load(); }

 private:
  static void onWake(evutil_socket_t fd, short what, void* arg);
  void runPosted();

  EventBasePtr base_;
  int wake_fd_ = -1;  // eventfd
  EventPtr wake_event_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;  // guarded by mu_
  std::atomic<std::thread::id> thread_{};
};

}  // namespace palisade::proxy
