#pragma once

// StringPattern: one Istio match value compiled once. Istio's forms are exact ("abc"),
// prefix ("abc*"), suffix ("*abc") and "*"; a leading "*" wins over a trailing one, as in
// Istio's matcher package. What "*" means depends on the attribute (a non-empty value for
// principals and paths, a present header for methods, hosts and headers), so the caller
// says which. matches() allocates nothing. Thread: any after construction.

#include <string>
#include <string_view>

namespace palisade::policy {

class StringPattern {
 public:
  enum class Kind { kExact, kPrefix, kSuffix, kAny };
  enum class Case { kSensitive, kInsensitive };

  StringPattern(std::string_view istio_value, Case c);

  // `present` says whether the attribute exists at all (a header may be absent).
  // kAny matches any present value when `any_requires_non_empty` is false, and only
  // non-empty values otherwise (Istio's ".+" for principals, paths and SNI).
  bool matches(std::string_view value, bool any_requires_non_empty) const;

  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }  // without the "*"
  bool caseInsensitive() const { return case_ == Case::kInsensitive; }

 private:
  Kind kind_;
  Case case_;
  std::string text_;
};

bool equalsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace palisade::policy
