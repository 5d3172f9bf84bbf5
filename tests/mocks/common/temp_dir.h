#pragma once

// Test helpers for code that touches files or runs the openssl command-line tool: a throw-away
// directory and a way to run a program and read what it printed. Thread: one thread.

#include <string>
#include <vector>

namespace palisade::common::test_env {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name
  std::string file(const std::string& name) const;
  // Writes `data` to path()/name and returns that path.
  std::string write(const std::string& name, const std::string& data) const;
  // The names of the entries of path(), sorted.
  std::vector<std::string> list() const;

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // -1 when the program could not be started or did not exit
  std::string output;  // stdout and stderr, interleaved
};

// Runs `argv` (argv[0] looked up in PATH) without a shell, so nothing needs quoting.
CommandResult runCommand(const std::vector<std::string>& argv);

// Whether the openssl command-line tool runs here.
bool haveOpensslCli();

}  // namespace palisade::common::test_env
