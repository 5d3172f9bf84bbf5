#include "policy/string_pattern.h"

namespace palisade::policy {

namespace {
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

StringPattern::StringPattern(std::string_view v, Case c) : case_(c) {
  // Istio checks "*" first, then a leading "*", then a trailing one.
  if (v == "*") {
    kind_ = Kind::kAny;
  } else if (v.starts_with('*')) {
    kind_ = Kind::kSuffix;
    text_ = v.substr(1);
  } else if (v.ends_with('*')) {
    kind_ = Kind::kPrefix;
    text_ = v.substr(0, v.size() - 1);
  } else {
    kind_ = Kind::kExact;
    text_ = v;
  }
}

bool StringPattern::matches(std::string_view value, bool any_requires_non_empty) const {
  auto eq = [this](std::string_view a, std::string_view b) {
    return case_ == Case::kInsensitive ? equalsIgnoreCase(a, b) : a == b;
  };
  switch (kind_) {
    case Kind::kAny:
      return !any_requires_non_empty || !value.empty();
    case Kind::kExact:
      return eq(value, text_);
    case Kind::kPrefix:
      return value.size() >= text_.size() && eq(value.substr(0, text_.size()), text_);
    case Kind::kSuffix:
      return value.size() >= text_.size() && eq(value.substr(value.size() - text_.size()), text_);
  }
  return false;
}

}  // namespace palisade::policy
