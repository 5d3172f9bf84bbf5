#include "policy/dns_name.h"

namespace palisade::policy {

bool isDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  std::string_view rest = name;
  if (rest.starts_with("*.")) {
    rest.remove_prefix(2);  // a wildcard only as the whole leftmost label
  }
  std::size_t label = 0;
  for (std::size_t i = 0; i <= rest.size(); ++i) {
    if (i == rest.size() || rest[i] == '.') {
      if (label == 0 || label > 63 || rest[i - 1] == '-' || rest[i - label] == '-') {
        return false;
      }
      label = 0;
      continue;
    }
    const char c = rest[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-') {
      return false;
    }
    ++label;
  }
  return true;
}

}  // namespace palisade::policy
