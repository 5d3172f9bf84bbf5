#include "cli/duration.h"

#include <cctype>

namespace palisade::cli {

Result<std::chrono::seconds> parseDuration(std::string_view text) {
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
    switch (text[digits]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        return invalidArgument("duration: bad unit in \"" + original + "\" (s, m, h or d)");
    }
    total += n * unit;
    text.remove_prefix(digits + 1);
  }
  return std::chrono::seconds(total);
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

}  // namespace palisade::cli
