#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <ctime>

namespace palisade::common {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};

constexpr std::array<const char*, 6> kNames = {"trace", "debug", "info", "warning", "error", "off"};

}  // namespace

const char* logLevelName(LogLevel level) { return kNames[static_cast<int>(level)]; }

std::optional<LogLevel> parseLogLevel(std::string_view name) {
  if (name == "warn") {
    return LogLevel::kWarning;
  }
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (name == kNames[i]) {
      return static_cast<LogLevel>(i);
    }
  }
  return std::nullopt;
}

void setLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel logLevel() { return g_level.load(std::memory_order_relaxed); }

void logLine(LogLevel level, std::string_view component, std::string_view message) {
  timeval now{};
  gettimeofday(&now, nullptr);
  std::tm tm{};
  gmtime_r(&now.tv_sec, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(now.tv_usec / 1000));
  std::string line;
  line.reserve(64 + component.size() + message.size());
  line.append(stamp).append(" ").append(logLevelName(level)).append(" ");
  line.append(component).append(": ").append(message).append("\n");
  // One write per line: lines from several threads do not interleave.
  std::size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) {
      break;
    }
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace palisade::common
