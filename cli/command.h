#pragma once

// A small command framework for palisadectl: nested commands, `--flag value` and
// `--flag=value`, repeated flags, and help in the layout kubectl and istioctl users know.
// Thread: main thread only.

#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

namespace palisade::cli {

struct FlagSpec {
  std::string name;   // without "--"
  std::string value;  // placeholder shown in help ("FILE"); empty for a boolean flag
  std::string help;
  bool repeated = false;
};

// Parsed arguments of one command.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> flags;

  bool has(const std::string& name) const { return flags.count(name) != 0; }
  // The last value given for a flag, or `fallback`.
  std::string get(const std::string& name, const std::string& fallback = {}) const;
  const std::vector<std::string>& all(const std::string& name) const;
};

struct Io {
  std::ostream& out;
  std::ostream& err;
};

struct Command {
  std::string name;
  std::string summary;    // one line, for the parent's list
  std::string usage;      // "palisadectl spiffe parse ID"
  std::string long_help;  // paragraphs
  std::string examples;   // indented lines
  std::vector<FlagSpec> flags;
  std::vector<Command> children;
  // Runs the command; returns the exit code. Absent for a group of commands.
  std::function<int(const Args&, Io&)> run;
};

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitNegative = 1;  // a negative answer: DENY, an invalid ID
inline constexpr int kExitUsage = 2;     // bad input: flags, files, policies

// Dispatches argv through the tree rooted at `root`.
int runCommand(const Command& root, int argc, const char* const* argv, Io& io);

}  // namespace palisade::cli
