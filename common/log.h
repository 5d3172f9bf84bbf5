#pragma once

// The process log: one line per event on stderr, "<RFC 3339 UTC time> <level> <component>:
// <message>". The level is changed at run time (the admin API's /logging?level=) and read
// with one relaxed atomic load, so a disabled debug line costs a branch. No info line per
// request (STYLE.md); denials are the exception the operator asked for. Thread: any; a line
// is written with one write(2), so lines from workers never interleave.

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

namespace palisade::common {

enum class LogLevel { kTrace, kDebug, kInfo, kWarning, kError, kOff };

const char* logLevelName(LogLevel level);
// "trace", "debug", "info", "warning" (or "warn"), "error", "off".
std::optional<LogLevel> parseLogLevel(std::string_view name);

void setLogLevel(LogLevel level);
LogLevel logLevel();
inline bool logEnabled(LogLevel level) { return level >= logLevel(); }

void logLine(LogLevel level, std::string_view component, std::string_view message);

}  // namespace palisade::common

#define PALISADE_LOG(level, component, message)                                             \
  do {                                                                                      \
    if (::palisade::common::logEnabled(::palisade::common::LogLevel::level)) {              \
      ::palisade::common::logLine(::palisade::common::LogLevel::level, component, message); \
    }                                                                                       \
  } while (0)
