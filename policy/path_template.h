#pragma once

// PathTemplate: Istio's path templates in AuthorizationPolicy `paths` (Istio 1.22+), read
// as Envoy's URI templates: "{*}" matches exactly one path segment (one or more characters,
// no "/"), "{**}" matches the rest of the path across segments and must be the last
// operator. Named variables ("{name}", "{name=*}"), "{}" and bare "*" / "**" segments are
// refused, as Istio's validation does. match() allocates nothing. Thread: any.

#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"

namespace palisade::policy {

class PathTemplate {
 public:
  // True if `value` contains "{*}" or "{**}" and must be read as a template.
  static bool isTemplate(std::string_view value);
  // Ok for a plain path or a supported template; an error naming the problem otherwise.
  static Status validate(std::string_view value);
  // Precondition: validate(value) is ok and isTemplate(value).
  static PathTemplate compile(std::string_view value);

  // `path` without query or fragment.
  bool matches(std::string_view path) const;

 private:
  enum class Kind { kLiteral, kOne, kAny };
  struct Token {
    Kind kind;
    std::string literal;
  };
  bool matchFrom(std::size_t token, std::string_view rest) const;

  std::vector<Token> tokens_;
};

}  // namespace palisade::policy
