#include "cli/command.h"

#include <algorithm>
#include <ostream>

namespace palisade::cli {

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = flags.find(name);
  return it == flags.end() || it->second.empty() ? fallback : it->second.back();
}

const std::vector<std::string>& Args::all(const std::string& name) const {
  static const std::vector<std::string> kNone;
  auto it = flags.find(name);
  return it == flags.end() ? kNone : it->second;
}

namespace {

void printHelp(const Command& cmd, const std::string& path, std::ostream& out) {
  if (!cmd.long_help.empty()) {
    out << cmd.long_help << "\n\n";
  } else {
    out << cmd.summary << "\n\n";
  }
  out << "Usage:\n";
  if (cmd.run) {
    out << "  " << cmd.usage << "\n";
  }
  if (!cmd.children.empty()) {
    out << "  " << path << " [command]\n";
  }
  if (!cmd.examples.empty()) {
    out << "\nExamples:\n" << cmd.examples;
    if (!cmd.examples.ends_with('\n')) {
      out << '\n';
    }
  }
  if (!cmd.children.empty()) {
    out << "\nAvailable Commands:\n";
    std::size_t width = 0;
    for (const Command& c : cmd.children) {
      width = std::max(width, c.name.size());
    }
    for (const Command& c : cmd.children) {
      out << "  " << c.name << std::string(width + 3 - c.name.size(), ' ') << c.summary << "\n";
    }
  }
  out << "\nFlags:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const FlagSpec& f : cmd.flags) {
    std::string left = "      --" + f.name + (f.value.empty() ? "" : " " + f.value);
    rows.emplace_back(left, f.help + (f.repeated ? " (repeatable)" : ""));
  }
  rows.emplace_back("  -h, --help", "help for " + cmd.name);
  std::size_t width = 0;
  for (const auto& r : rows) {
    width = std::max(width, r.first.size());
  }
  for (const auto& [left, help] : rows) {
    out << left << std::string(width + 3 - left.size(), ' ') << help << "\n";
  }
  if (!cmd.children.empty()) {
    out << "\nUse \"" << path << " [command] --help\" for more information about a command.\n";
  }
}

const FlagSpec* findFlag(const Command& cmd, const std::string& name) {
  for (const FlagSpec& f : cmd.flags) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

}  // namespace

int runCommand(const Command& root, int argc, const char* const* argv, Io& io) {
  const Command* cmd = &root;
  std::string path = root.name;
  int i = 1;
  bool asked_help_word = false;
  // Walk down the tree while the next word names a child.
  while (i < argc && !cmd->children.empty()) {
    std::string word = argv[i];
    if (word == "help") {
      // "palisadectl help authz check" == "palisadectl authz help check"
      //   == "palisadectl authz check --help"
      asked_help_word = true;
      ++i;
      continue;
    }
    auto it = std::find_if(cmd->children.begin(), cmd->children.end(),
                           [&](const Command& c) { return c.name == word; });
    if (it == cmd->children.end()) {
      break;
    }
    cmd = &*it;
    path += " " + cmd->name;
    ++i;
  }

  Args args;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      printHelp(*cmd, path, io.out);
      return kExitOk;
    }
    if (a == "--") {
      for (++i; i < argc; ++i) {
        args.positional.emplace_back(argv[i]);
      }
      break;
    }
    if (a.starts_with("--")) {
      std::string name = a.substr(2);
      std::string value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      const FlagSpec* spec = findFlag(*cmd, name);
      if (spec == nullptr) {
        io.err << "Error: unknown flag: --" << name << "\nRun '" << path << " --help' for usage.\n";
        return kExitUsage;
      }
      if (!spec->value.empty() && !has_value) {
        if (i + 1 >= argc) {
          io.err << "Error: flag needs an argument: --" << name << "\n";
          return kExitUsage;
        }
        value = argv[++i];
      } else if (spec->value.empty() && has_value) {
        io.err << "Error: flag --" << name << " takes no value\n";
        return kExitUsage;
      }
      auto& slot = args.flags[name];
      if (!spec->repeated && !slot.empty()) {
        io.err << "Error: flag --" << name << " given more than once\n";
        return kExitUsage;
      }
      slot.push_back(value);
      continue;
    }
    args.positional.push_back(a);
  }

  if (!cmd->run) {
    if (!args.positional.empty()) {
      io.err << "Error: unknown command \"" << args.positional.front() << "\" for \"" << path
             << "\"\nRun '" << path << " --help' for usage.\n";
      return kExitUsage;
    }
    // A group of commands run bare prints its help, as kubectl does.
    printHelp(*cmd, path, io.out);
    return kExitOk;
  }
  if (asked_help_word) {
    printHelp(*cmd, path, io.out);
    return kExitOk;
  }
  return cmd->run(args, io);
}

}  // namespace palisade::cli
