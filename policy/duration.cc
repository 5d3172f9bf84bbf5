#include "policy/duration.h"

#include <cctype>

namespace palisade::policy {

namespace {

// Sums "<digits><unit>" groups; units s, m, h, d, and ms when `millis` is allowed.
Result<std::chrono::milliseconds> parse(std::string_view text, bool millis) {
  const std::string original(text);
  if (text.empty()) {
    return invalidArgument("duration: empty (expected e.g. 90s, 2m, 1h30m, 7d)");
  }
  long long total = 0;
  while (!text.empty()) {
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
      ++digits;
    }
    if (digits == 0 || digits > 9 || digits == text.size()) {
      return invalidArgument("duration: bad \"" + original +
                             "\" (expected e.g. 90s, 2m, 1h30m, 7d)");
    }
    long long n = std::stoll(std::string(text.substr(0, digits)));
    long long unit = 0;
    std::size_t unit_len = 1;
    switch (text[digits]) {
      case 's':
        unit = 1000;
        break;
      case 'm':
        if (millis && digits + 1 < text.size() && text[digits + 1] == 's') {
          unit = 1;
          unit_len = 2;
        } else {
          unit = 60'000;
        }
        break;
      case 'h':
        unit = 3'600'000;
        break;
      case 'd':
        unit = 86'400'000;
        break;
      default:
        return invalidArgument("duration: bad unit in \"" + original + "\" (" +
                               (millis ? "ms, " : "") + "s, m, h or d)");
    }
    total += n * unit;
    text.remove_prefix(digits + unit_len);
  }
  return std::chrono::milliseconds(total);
}

}  // namespace

Result<std::chrono::seconds> parseDuration(std::string_view text) {
  auto ms = parse(text, false);
  if (!ms.ok()) {
    return ms.error();
  }
  return std::chrono::duration_cast<std::chrono::seconds>(*ms);
}

Result<std::chrono::milliseconds> parseDurationMillis(std::string_view text) {
  return parse(text, true);
}

std::string shortDuration(std::chrono::seconds d) {
  const long long s = d.count();
  if (s < 0) {
    return "<invalid>";
  }
  if (s < 120) {
    return std::to_string(s) + "s";
  }
  if (s < 3600 * 2) {
    return std::to_string(s / 60) + "m";
  }
  if (s < 86400 * 2) {
    return std::to_string(s / 3600) + "h";
  }
  return std::to_string(s / 86400) + "d";
}

}  // namespace palisade::policy
