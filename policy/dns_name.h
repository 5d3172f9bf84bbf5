#pragma once

// DNS names as hosts and certificates carry them (RFC 1123 labels: letters, digits, inner
// hyphens, 1-63 bytes each, 253 in all), with an optional "*." wildcard as the whole leftmost
// label. Thread: any.

#include <string_view>

namespace palisade::policy {

bool isDnsName(std::string_view name);

}  // namespace palisade::policy
