// posix_spawn rather than fork+exec: the test binary may have threads (GoogleTest's death
// tests, gmock), and spawn leaves nothing half-initialised in the child. Output is read from
// two pipes with poll() so a program that fills stderr cannot block on a full stdout.

#include "tests/cli/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

extern char** environ;

namespace palisade::cli {
namespace {

// argv as execve wants it; `store` owns the strings.
std::vector<char*> argvOf(std::vector<std::string>& store) {
  std::vector<char*> argv;
  for (std::string& a : store) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  return argv;
}

// Waits for `pid`; fills exit_code or term_signal. False (with a test failure) if it cannot.
bool reap(pid_t pid, RunResult& result) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      ADD_FAILURE() << "waitpid: " << std::strerror(errno);
      return false;
    }
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return true;
}

}  // namespace

std::string RunResult::dump() const {
  return "exit=" + std::to_string(exit_code) + " signal=" + std::to_string(term_signal) +
         "\n--- stdout ---\n" + out + "--- stderr ---\n" + err + "--------------";
}

RunResult runProgram(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  RunResult result;
  if (args.empty()) {
    ADD_FAILURE() << "runProgram: empty argv";
    return result;
  }
  std::vector<char*> argv = argvOf(args);

  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(spawned);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return result;
  }

  std::array<pollfd, 2> fds{{{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_streams = 2;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (open_streams > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    const int ready = poll(fds.data(), fds.size(), static_cast<int>(left));
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      char buf[4096];
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(got));
        continue;
      }
      if (got < 0 && errno == EINTR) {
        continue;
      }
      close(fds[i].fd);
      fds[i].fd = -1;
      --open_streams;
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) {
      close(p.fd);
    }
  }
  if (timed_out) {
    kill(pid, SIGKILL);
    ADD_FAILURE() << args[0] << " did not finish within " << timeout.count() << "ms";
  }
  reap(pid, result);
  return result;
}

RunResult run(std::vector<std::string> args) {
  args.insert(args.begin(), PALISADECTL_PATH);
  return runProgram(std::move(args));
}

bool inPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) {
    return false;
  }
  std::string dirs = path;
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) {
      colon = dirs.size();
    }
    const std::string dir = dirs.substr(start, colon - start);
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) {
      return true;
    }
    start = colon + 1;
  }
  return false;
}

ChildProcess::~ChildProcess() { stop(); }

bool ChildProcess::start(std::vector<std::string> args, const std::string& log_path) {
  if (pid_ > 0) {
    ADD_FAILURE() << "ChildProcess::start: already running as " << pid_;
    return false;
  }
  if (args.empty()) {
    ADD_FAILURE() << "ChildProcess::start: empty argv";
    return false;
  }
  std::vector<char*> argv = argvOf(args);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(spawned);
    return false;
  }
  pid_ = pid;
  return true;
}

bool ChildProcess::running() {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  pid_t got = waitpid(pid_, &status, WNOHANG);
  while (got < 0 && errno == EINTR) {
    got = waitpid(pid_, &status, WNOHANG);
  }
  if (got == 0) {
    return true;
  }
  pid_ = -1;  // exited and reaped (or not our child any more)
  return false;
}

void ChildProcess::stop() {
  if (pid_ <= 0) {
    return;
  }
  kill(pid_, SIGKILL);
  RunResult ignored;
  reap(pid_, ignored);
  pid_ = -1;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      out.push_back(text.substr(start));
      break;
    }
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace palisade::cli
