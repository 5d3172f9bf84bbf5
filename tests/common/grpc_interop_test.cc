#include <event2/event.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "tests/mocks/common/temp_dir.h"

// Our gRPC transport against one nobody here wrote: python3-grpcio. Our Channel calls
// tests/integration/apps/grpc_app.py (a grpcio server), and a grpcio client
// (tests/common/grpc_interop_client.py) calls our Server running on a thread of the test.
// Skipped when /usr/bin/python3 cannot import grpc. Child processes are stopped by PID in the
// destructors, so a failing test leaves none behind; every wait is bounded.

extern char** environ;

namespace palisade::common::grpc {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";
const std::string kSourceDir = PALISADE_SOURCE_DIR;

// ---------------------------------------------------------------------------------------------
// Child processes

// A program whose stdout we read through a pipe and whose stderr goes to a file. Killed
// (SIGKILL) and reaped by the destructor if still running.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  bool start(std::vector<std::string> args, const std::string& stderr_path) {
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
      return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      pid_ = -1;
      ADD_FAILURE() << "posix_spawn " << args[0] << ": " << std::strerror(rc);
      return false;
    }
    out_ = out[0];
    return true;
  }

  // The next line of stdout (without '\n'), or nullopt at EOF or after `timeout`.
  std::optional<std::string> readLine(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      if (!fill(deadline)) {
        return std::nullopt;
      }
    }
  }

  // All of stdout until EOF; nullopt after `timeout`.
  std::optional<std::string> readAll(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (fill(deadline)) {
    }
    if (!eof_) {
      return std::nullopt;
    }
    return std::exchange(buf_, {});
  }

  // Waits for the exit status (after stdout reached EOF); -1 when killed or unknown.
  int wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (Clock::now() >= deadline) {
        stop();
        return -1;
      }
      usleep(10'000);
    }
    return -1;
  }

  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (out_ >= 0) {
      close(out_);
      out_ = -1;
    }
  }

 private:
  // Reads what stdout has; false at EOF or when the deadline passed.
  bool fill(Clock::time_point deadline) {
    if (out_ < 0 || eof_) {
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{out_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n <= 0) {
      return n < 0 && errno == EINTR;
    }
    char chunk[4096];
    ssize_t got = read(out_, chunk, sizeof chunk);
    if (got <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(chunk, static_cast<std::size_t>(got));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
  bool eof_ = false;
};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whether /usr/bin/python3 can import grpc; the reason when it cannot.
std::optional<std::string> pythonGrpcMissing() {
  static const std::optional<std::string> missing = []() -> std::optional<std::string> {
    if (access(kPython, X_OK) != 0) {
      return std::string(kPython) + " is not installed";
    }
    test_env::TempDir dir;
    Child c;
    if (!c.start({kPython, "-c", "import grpc"}, dir.file("stderr"))) {
      return std::string("cannot run ") + kPython;
    }
    (void)c.readAll(30s);
    if (c.wait(30s) != 0) {
      return std::string(kPython) + " cannot import grpc: " + readFile(dir.file("stderr"));
    }
    return std::nullopt;
  }();
  return missing;
}

#define SKIP_WITHOUT_PYTHON_GRPC()                            \
  do {                                                        \
    if (auto why = pythonGrpcMissing()) {                     \
      GTEST_SKIP() << "python3-grpcio unavailable: " << *why; \
    }                                                         \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Our Channel against grpc_app.py

struct Outcome {
  bool done = false;
  Status status;
  std::vector<std::string> messages;
};

constexpr char kSvc[] = "/palisade.test.Echo/";
std::string method(const std::string& name) { return kSvc + name; }

class GrpcInteropTest : public ::testing::Test {
 protected:
  // One python server for the suite: starting grpcio takes a good part of a second.
  static void SetUpTestSuite() {
    if (pythonGrpcMissing()) {
      return;
    }
    dir_ = new test_env::TempDir();
    app_ = new Child();
    std::string app = kSourceDir + "/tests/integration/apps/grpc_app.py";
    if (!app_->start({kPython, app, "--port", "0", "--log", dir_->file("app.log")},
                     dir_->file("app.stderr"))) {
      return;
    }
    auto line = app_->readLine(20s);
    if (line && line->starts_with("READY ")) {
      port_ = static_cast<std::uint16_t>(std::stoi(line->substr(6)));
    } else {
      start_error_ = "grpc_app.py did not print READY: " + line.value_or("<nothing>") + "\n" +
                     readFile(dir_->file("app.stderr"));
    }
  }
  static void TearDownTestSuite() {
    delete app_;  // stops it by PID
    app_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    SKIP_WITHOUT_PYTHON_GRPC();
    ASSERT_NE(port_, 0) << start_error_;
    base_ = event_base_new();
    tick_ = event_new(
        base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tv{0, 10'000};
    event_add(tick_, &tv);
    ChannelOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    channel_ = std::make_unique<Channel>(base_, std::move(o));
  }
  void TearDown() override {
    if (base_ == nullptr) {
      return;
    }
    channel_.reset();
    event_free(tick_);
    event_base_free(base_);
  }

  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() >= deadline) {
        return false;
      }
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }

  std::pair<std::shared_ptr<ClientCall>, std::shared_ptr<Outcome>> start(
      const std::string& name, std::vector<std::pair<std::string, std::string>> metadata = {},
      std::optional<std::chrono::nanoseconds> timeout = 5s) {
    auto out = std::make_shared<Outcome>();
    auto call = channel_->start(method(name), timeout, std::move(metadata));
    call->on_message = [out](std::string m) { out->messages.push_back(std::move(m)); };
    call->on_finish = [out](const Status& st) {
      out->done = true;
      out->status = st;
    };
    return {call, out};
  }

  std::shared_ptr<Outcome> unary(const std::string& name, std::string_view request,
                                 std::optional<std::chrono::nanoseconds> timeout = 5s) {
    auto [call, out] = start(name, {}, timeout);
    call->send(request);
    call->closeSend();
    return out;
  }

  static inline test_env::TempDir* dir_ = nullptr;
  static inline Child* app_ = nullptr;
  static inline std::uint16_t port_ = 0;
  static inline std::string start_error_;

  event_base* base_ = nullptr;
  event* tick_ = nullptr;
  std::unique_ptr<Channel> channel_;
};

TEST_F(GrpcInteropTest, Echo_EchoesRequestAndOurMetadata) {
  auto [call, o] = start("Echo", {{"x-interop", "palisade"}, {"x-number", "42"}});
  call->send("hello from c++");
  call->closeSend();
  ASSERT_TRUE(runUntil([&] { return o->done; }));
  ASSERT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  ASSERT_EQ(o->messages.size(), 1u);
  json j = json::parse(o->messages[0]);
  EXPECT_EQ(j["method"], "Echo");
  EXPECT_EQ(j["request"], "hello from c++");
  EXPECT_EQ(j["metadata"]["x-interop"], "palisade");
  EXPECT_EQ(j["metadata"]["x-number"], "42");
  EXPECT_TRUE(j["metadata"]["user-agent"].get<std::string>().find("palisade-grpc") !=
              std::string::npos)
      << j.dump();
  // Response metadata: the status came in trailers.
  bool saw_status = false;
  for (const auto& [k, v] : call->metadata()) {
    if (k == "grpc-status") {
      saw_status = v == "0";
    }
  }
  EXPECT_TRUE(saw_status);
}

TEST_F(GrpcInteropTest, Echo_EmptyAndOneMebibyte) {
  auto empty = unary("Echo", "");
  std::string big(1 << 20, 'm');
  auto large = unary("Echo", big);
  ASSERT_TRUE(runUntil([&] { return empty->done && large->done; }));
  ASSERT_EQ(empty->status.code, StatusCode::kOk) << empty->status.message;
  EXPECT_EQ(json::parse(empty->messages.at(0))["request"], "");
  ASSERT_EQ(large->status.code, StatusCode::kOk) << large->status.message;
  EXPECT_EQ(json::parse(large->messages.at(0))["request"].get<std::string>().size(), big.size());
}

TEST_F(GrpcInteropTest, Echo_OverGrpciosDefaultLimit_ResourceExhausted) {
  auto o = unary("Echo", std::string(4 * 1024 * 1024 + 1, 'x'));
  ASSERT_TRUE(runUntil([&] { return o->done; }));
  EXPECT_EQ(o->status.code, StatusCode::kResourceExhausted) << o->status.message;
  // The connection is still good.
  auto after = unary("Echo", "after");
  ASSERT_TRUE(runUntil([&] { return after->done; }));
  EXPECT_EQ(after->status.code, StatusCode::kOk) << after->status.message;
}

TEST_F(GrpcInteropTest, Slow_ShorterDeadline_DeadlineExceeded) {
  auto t0 = Clock::now();
  auto o = unary("Slow", "2000", 300ms);
  ASSERT_TRUE(runUntil([&] { return o->done; }));
  auto took = Clock::now() - t0;
  EXPECT_EQ(o->status.code, StatusCode::kDeadlineExceeded) << o->status.message;
  EXPECT_LT(took, 1500ms);
  EXPECT_GE(took, 250ms);
}

TEST_F(GrpcInteropTest, Slow_LongerDeadline_Ok) {
  auto o = unary("Slow", "50", 5s);
  ASSERT_TRUE(runUntil([&] { return o->done; }));
  EXPECT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  EXPECT_EQ(json::parse(o->messages.at(0))["method"], "Slow");
}

// grpcio enforces the grpc-timeout we send: without our own timer (metadata only, no client
// deadline) the call still ends DEADLINE_EXCEEDED, from the server.
TEST_F(GrpcInteropTest, Slow_ServerEnforcesOurGrpcTimeout) {
  auto [call, o] = start("Slow", {{"grpc-timeout", "200m"}}, std::nullopt);
  call->send("2000");
  call->closeSend();
  ASSERT_TRUE(runUntil([&] { return o->done; }, 3s));
  EXPECT_EQ(o->status.code, StatusCode::kDeadlineExceeded) << o->status.message;
}

TEST_F(GrpcInteropTest, Stream_FiftyMessages) {
  auto o = unary("Stream", "50");
  ASSERT_TRUE(runUntil([&] { return o->done; }));
  ASSERT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  ASSERT_EQ(o->messages.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    json j = json::parse(o->messages[i]);
    EXPECT_EQ(j["index"], i);
    EXPECT_EQ(j["method"], "Stream");
  }
}

TEST_F(GrpcInteropTest, Chat_TwentyRoundTrips) {
  auto [call, o] = start("Chat");
  ClientCall* raw = call.get();
  auto sent = std::make_shared<int>(0);
  call->on_message = [raw, sent, o = o](std::string m) {
    o->messages.push_back(std::move(m));
    if (*sent < 20) {
      raw->send("msg " + std::to_string((*sent)++));
    } else {
      raw->closeSend();
    }
  };
  call->send("msg " + std::to_string((*sent)++));
  ASSERT_TRUE(runUntil([&] { return o->done; }));
  ASSERT_EQ(o->status.code, StatusCode::kOk) << o->status.message;
  ASSERT_EQ(o->messages.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    json j = json::parse(o->messages[i]);
    EXPECT_EQ(j["request"], "msg " + std::to_string(i));
    EXPECT_EQ(j["index"], i);
  }
}

TEST_F(GrpcInteropTest, UnknownMethod_Unimplemented) {
  auto o = unary("NoSuchMethod", "x");
  auto o2 = std::make_shared<Outcome>();
  auto other = channel_->start("/no.such.Service/Method", 5s);
  other->on_finish = [o2](const Status& st) {
    o2->done = true;
    o2->status = st;
  };
  other->send("x");
  other->closeSend();
  ASSERT_TRUE(runUntil([&] { return o->done && o2->done; }));
  EXPECT_EQ(o->status.code, StatusCode::kUnimplemented) << o->status.message;
  EXPECT_EQ(o2->status.code, StatusCode::kUnimplemented) << o2->status.message;
}

TEST_F(GrpcInteropTest, HundredConcurrentCalls) {
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 100; ++i) {
    outs.push_back(unary("Echo", "n" + std::to_string(i)));
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
    ASSERT_EQ(outs[i]->status.code, StatusCode::kOk) << outs[i]->status.message;
    EXPECT_EQ(json::parse(outs[i]->messages.at(0))["request"], "n" + std::to_string(i));
  }
}

TEST_F(GrpcInteropTest, CancelSlowCall_ThenChannelStillWorks) {
  auto [call, o] = start("Slow");
  call->send("1000");
  call->closeSend();
  auto until = Clock::now() + 100ms;
  runUntil([&] { return Clock::now() >= until; });
  call->cancel();
  EXPECT_EQ(o->status.code, StatusCode::kCancelled);
  auto after = unary("Echo", "after cancel");
  ASSERT_TRUE(runUntil([&] { return after->done; }));
  EXPECT_EQ(after->status.code, StatusCode::kOk) << after->status.message;
}

// Keepalive PINGs on an idle connection to grpcio. grpcio's server allows a client PING only
// every 5 minutes when no call is open (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS
// and permit_without_calls=0) and answers repeated ones with GOAWAY(ENHANCE_YOUR_CALM,
// "too_many_pings"). Our default keepalive_time (30s) breaks that policy the same way this
// short one does, only slower.
TEST_F(GrpcInteropTest, Keepalive_IdlePingsKeepTheConnection) {
  ChannelOptions o;
  o.host = "127.0.0.1";
  o.port = port_;
  o.limits.keepalive_time = 100ms;
  o.limits.keepalive_timeout = 1s;
  Channel ch(base_, std::move(o));
  auto first = std::make_shared<Outcome>();
  ch.unary(method("Echo"), "1", 5s, [first](const Status& st, std::string) {
    first->done = true;
    first->status = st;
  });
  ASSERT_TRUE(runUntil([&] { return first->done; }));
  ASSERT_EQ(first->status.code, StatusCode::kOk);
  auto until = Clock::now() + 1500ms;
  runUntil([&] { return Clock::now() >= until; }, 2s);
  EXPECT_TRUE(ch.connected()) << "closed: " << ch.lastError();
  EXPECT_EQ(ch.lastError(), "");
}

// ---------------------------------------------------------------------------------------------
// A grpcio client against our Server

// Our Server on its own thread and event loop. Everything on the loop is made and destroyed on
// that thread; the test thread only reads the port and asks it to stop through a pipe.
class ServerThread {
 public:
  ServerThread() {
    if (pipe2(stop_, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    std::promise<std::uint16_t> port;
    auto ready = port.get_future();
    thread_ = std::thread([this, p = std::move(port)]() mutable { run(p); });
    if (ready.wait_for(10s) == std::future_status::ready) {
      port_ = ready.get();
    }
  }
  ~ServerThread() {
    if (thread_.joinable()) {
      char x = 'x';
      (void)!write(stop_[1], &x, 1);
      thread_.join();
    }
    close(stop_[0]);
    close(stop_[1]);
  }
  std::uint16_t port() const { return port_; }
  // What the loop recorded; read only after the thread ended or while the test thread waits.
  int cancels() const { return cancels_.load(); }

 private:
  void run(std::promise<std::uint16_t>& port) {
    event_base* base = event_base_new();
    {
      std::vector<std::shared_ptr<ServerCall>> held;
      ServerOptions o;
      o.port = 0;
      Server server(base, std::move(o));
      registerHandlers(server, held);
      auto st = server.start();
      port.set_value(st.ok() ? server.port() : 0);
      event* stop = event_new(
          base, stop_[0], EV_READ,
          [](evutil_socket_t, short, void* arg) {
            event_base_loopbreak(static_cast<event_base*>(arg));
          },
          base);
      event_add(stop, nullptr);
      event_base_dispatch(base);
      event_free(stop);
      held.clear();
    }
    event_base_free(base);
  }

  void registerHandlers(Server& s, std::vector<std::shared_ptr<ServerCall>>& held) {
    s.handleUnary(method("Echo"), [](const std::shared_ptr<ServerCall>& call,
                                     const std::string& request) { reply(*call, request); });
    s.handleUnary(method("Whoami"),
                  [](const std::shared_ptr<ServerCall>& call, const std::string& request) {
                    json j;
                    j["request"] = request;
                    j["method"] = call->method();
                    j["deadline"] = call->deadline().has_value();
                    json md = json::object();
                    for (const auto& [k, v] : call->metadata()) {
                      md[k] = v;
                    }
                    j["metadata"] = md;
                    reply(*call, j.dump());
                  });
    s.handleUnary(method("Fail"), [](const std::shared_ptr<ServerCall>& call, const std::string&) {
      call->finish({StatusCode::kFailedPrecondition, "n\xc3\xa4y 100% \xe6\x97\xa5"});
    });
    s.handleUnary(method("Never"),
                  [this, &held](const std::shared_ptr<ServerCall>& call, const std::string&) {
                    call->on_cancel = [this](const Status&) { ++cancels_; };
                    held.push_back(call);
                  });
    s.handleUnary(method("Count"),
                  [](const std::shared_ptr<ServerCall>& call, const std::string& request) {
                    int n = std::stoi(request);
                    for (int i = 0; i < n; ++i) {
                      call->send("item " + std::to_string(i));
                    }
                    call->finish(Status::Ok());
                  });
    s.handleStream(method("Chat"), [](const std::shared_ptr<ServerCall>& call) {
      ServerCall* raw = call.get();
      call->on_message = [raw](std::string m) { raw->send("pong " + m); };
      call->on_half_close = [raw] { raw->finish(Status::Ok()); };
    });
    s.handleStream(method("Sum"), [](const std::shared_ptr<ServerCall>& call) {
      auto total = std::make_shared<std::size_t>(0);
      ServerCall* raw = call.get();
      call->on_message = [total](std::string m) { *total += m.size(); };
      call->on_half_close = [raw, total] { reply(*raw, std::to_string(*total)); };
    });
  }

  int stop_[2] = {-1, -1};
  std::thread thread_;
  std::uint16_t port_ = 0;
  std::atomic<int> cancels_{0};
};

TEST(GrpcInteropReverseTest, GrpcioClientAgainstOurServer) {
  SKIP_WITHOUT_PYTHON_GRPC();
  ServerThread server;
  ASSERT_NE(server.port(), 0);
  test_env::TempDir dir;
  Child client;
  ASSERT_TRUE(client.start(
      {kPython, kSourceDir + "/tests/common/grpc_interop_client.py", std::to_string(server.port())},
      dir.file("stderr")));
  auto out = client.readAll(30s);
  int rc = client.wait(5s);
  std::string err = readFile(dir.file("stderr"));
  ASSERT_TRUE(out.has_value()) << "the client did not finish\n" << err;
  ASSERT_EQ(rc, 0) << *out << "\n" << err;
  json j = json::parse(*out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << *out;

  json who = json::parse(j["whoami"]["response"].get<std::string>());
  EXPECT_EQ(j["whoami"]["code"], "OK");
  EXPECT_EQ(who["request"], "hello");
  EXPECT_EQ(who["method"], "/palisade.test.Echo/Whoami");
  EXPECT_EQ(who["deadline"], true) << "grpcio's timeout arrives as grpc-timeout";
  EXPECT_EQ(who["metadata"]["x-interop"], "grpcio");
  EXPECT_TRUE(who["metadata"].contains("user-agent")) << who.dump();

  EXPECT_EQ(j["echo"], "ping");
  EXPECT_EQ(j["empty"], 0);
  EXPECT_EQ(j["big_ok"], true);

  EXPECT_EQ(j["Fail"]["code"], "FAILED_PRECONDITION");
  EXPECT_EQ(j["Fail"]["details"], "n\xc3\xa4y 100% \xe6\x97\xa5") << "decoded by grpcio";
  EXPECT_EQ(j["NoSuchMethod"]["code"], "UNIMPLEMENTED");
  // Our server's own deadline timer usually fires first: its status must reach the client.
  EXPECT_EQ(j["deadline"]["code"], "DEADLINE_EXCEEDED") << j["deadline"].dump();
  // grpcio sends a message over our 4 MiB limit: the client must learn why.
  EXPECT_EQ(j["too_big"]["code"], "RESOURCE_EXHAUSTED") << j["too_big"].dump();

  ASSERT_EQ(j["count"].size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(j["count"][i], "item " + std::to_string(i));
  }
  ASSERT_EQ(j["chat"].size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(j["chat"][i], "pong " + std::to_string(i));
  }
  EXPECT_EQ(j["chat_status"]["code"], "OK");
  EXPECT_EQ(j["sum"], "45");
  EXPECT_EQ(j["after"], "last");
  // The Never call's deadline passed: grpcio reset the stream (or our server's own timer
  // fired), and the handler heard of it.
  auto until = Clock::now() + 2s;
  while (server.cancels() == 0 && Clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(server.cancels(), 1);
}

}  // namespace
}  // namespace palisade::common::grpc
