#pragma once

// Durations as operators type them ("90s", "2m", "1h30m", "24h", "7d") and as kubectl prints
// them ("59m", "23h", "364d"). Thread: any.

#include <chrono>
#include <string>
#include <string_view>

#include "policy/result.h"

namespace palisade::policy {

Result<std::chrono::seconds> parseDuration(std::string_view text);
// The same, with "ms" also allowed ("100ms", "1s500ms"): timeouts in config files.
Result<std::chrono::milliseconds> parseDurationMillis(std::string_view text);
// kubectl's short human form: "45s", "59m", "23h", "364d"; "<invalid>" when negative.
std::string shortDuration(std::chrono::seconds d);

}  // namespace palisade::policy
