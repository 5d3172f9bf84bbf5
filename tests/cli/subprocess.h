#pragma once

// Running programs from the CLI tests, never through a shell: run() and runProgram() start a
// program, wait for it and capture its stdout and stderr separately; ChildProcess keeps a
// server (openssl s_server) running in the background for the length of a test.
// Failures to start, poll or reap a process are reported as GoogleTest failures.
// Thread: the test's own thread.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace palisade::cli {

struct RunResult {
  int exit_code = -1;   // -1 when the process did not exit normally
  int term_signal = 0;  // the signal that ended it, if one did
  std::string out;
  std::string err;

  std::string dump() const;
};

inline constexpr std::chrono::seconds kRunTimeout{30};

// Runs argv[0] (a path, or a name looked up in PATH) with argv[1..], stdin from /dev/null,
// capturing stdout and stderr separately. A run that outlives `timeout` is killed and fails
// the test.
RunResult runProgram(std::vector<std::string> argv,
                     std::chrono::milliseconds timeout = kRunTimeout);

// Runs the palisadectl under test (PALISADECTL_PATH) with `args` as argv[1..].
RunResult run(std::vector<std::string> args);

// Lines of `text`, without their '\n'; a final newline does not add an empty line.
std::vector<std::string> lines(const std::string& text);

// Whether `name` is an executable file in a directory of PATH.
bool inPath(const std::string& name);

// A program running in the background, its stdin from /dev/null and its stdout and stderr
// appended to a log file. The destructor stops it, so a test that fails halfway never leaves it
// behind.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // Starts argv (argv[0] as in runProgram). False, with a test failure, if it cannot.
  bool start(std::vector<std::string> argv, const std::string& log_path);
  // Whether it is still running; reaps it if it has exited.
  bool running();
  // Kills it (SIGKILL: nothing it holds needs a clean shutdown) and reaps it.
  void stop();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

}  // namespace palisade::cli
