#include "proxy/dispatcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

namespace palisade::proxy {
namespace {

TEST(DispatcherTest, PostedFunctionsRunInOrderOnTheDispatcherThread) {
  Dispatcher d;
  std::vector<int> seen;
  std::atomic<bool> on_thread{true};
  std::thread loop([&] { d.run(); });
  for (int i = 0; i < 100; ++i) {
    d.post([&, i] {
      on_thread = on_thread && d.isDispatcherThread();
      seen.push_back(i);
    });
  }
  d.exit();
  loop.join();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(seen[static_cast<std::size_t>(i)], i);
  }
  EXPECT_TRUE(on_thread);
  EXPECT_FALSE(d.isDispatcherThread()) << "the test thread is not the dispatcher's";
}

TEST(DispatcherTest, PostsFromManyThreadsAllRun) {
  Dispatcher d;
  int count = 0;  // touched only on the dispatcher's thread
  std::thread loop([&] { d.run(); });
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        d.post([&] { ++count; });
      }
    });
  }
  for (auto& p : posters) {
    p.join();
  }
  std::promise<int> result;
  d.post([&] { result.set_value(count); });
  EXPECT_EQ(result.get_future().get(), 4000);
  d.exit();
  loop.join();
}

TEST(DispatcherTest, ExitBeforeRunStopsTheFirstRun) {
  Dispatcher d;
  bool ran = false;
  d.post([&] { ran = true; });
  d.exit();
  d.run();  // returns: the exit was already posted
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace palisade::proxy
