#include "policy/path_template.h"

namespace palisade::policy {
namespace {

constexpr std::string_view kOne = "{*}";
constexpr std::string_view kAny = "{**}";

// Envoy's URI template character class for a variable's text: pchar without "/".
bool isSegmentChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  switch (c) {
    case '-': case '.': case '_': case '~': case '%': case '!': case '$': case '&':
    case '\'': case '(': case ')': case '+': case ',': case ';': case ':': case '@':
    case '=':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool PathTemplate::isTemplate(std::string_view value) {
  return value.find(kOne) != std::string_view::npos ||
         value.find(kAny) != std::string_view::npos;
}

Status PathTemplate::validate(std::string_view value) {
  if (!isTemplate(value)) {
    return Ok{};
  }
  bool seen_any = false;
  bool prev_operator = false;
  for (std::size_t i = 0; i < value.size();) {
    std::string_view rest = value.substr(i);
    if (rest.starts_with(kAny) || rest.starts_with(kOne)) {
      if (seen_any) {
        return invalidArgument("invalid path template \"" + std::string(value) +
                               "\": {**} must be the last operator");
      }
      if (prev_operator) {
        return invalidArgument("invalid path template \"" + std::string(value) +
                               "\": operators must be separated by text");
      }
      seen_any = rest.starts_with(kAny);
      prev_operator = true;
      i += seen_any ? kAny.size() : kOne.size();
      continue;
    }
    if (value[i] == '{' || value[i] == '}' || value[i] == '*') {
      return invalidArgument("invalid or unsupported path template \"" + std::string(value) +
                             "\": only {*} and {**} operators are supported");
    }
    prev_operator = false;
    ++i;
  }
  return Ok{};
}

PathTemplate PathTemplate::compile(std::string_view value) {
  PathTemplate t;
  std::string literal;
  for (std::size_t i = 0; i < value.size();) {
    std::string_view rest = value.substr(i);
    Kind kind;
    if (rest.starts_with(kAny)) {
      kind = Kind::kAny;
      i += kAny.size();
    } else if (rest.starts_with(kOne)) {
      kind = Kind::kOne;
      i += kOne.size();
    } else {
      literal += value[i++];
      continue;
    }
    if (!literal.empty()) {
      t.tokens_.push_back(Token{Kind::kLiteral, std::move(literal)});
      literal.clear();
    }
    t.tokens_.push_back(Token{kind, {}});
  }
  if (!literal.empty()) {
    t.tokens_.push_back(Token{Kind::kLiteral, std::move(literal)});
  }
  return t;
}

bool PathTemplate::matches(std::string_view path) const { return matchFrom(0, path); }

bool PathTemplate::matchFrom(std::size_t token, std::string_view rest) const {
  if (token == tokens_.size()) {
    return rest.empty();
  }
  const Token& t = tokens_[token];
  switch (t.kind) {
    case Kind::kLiteral:
      return rest.starts_with(t.literal) && matchFrom(token + 1, rest.substr(t.literal.size()));
    case Kind::kOne: {
      // One or more segment characters; try every length (a literal may follow).
      std::size_t n = 0;
      while (n < rest.size() && isSegmentChar(rest[n])) {
        ++n;
      }
      for (std::size_t len = n; len >= 1; --len) {
        if (matchFrom(token + 1, rest.substr(len))) {
          return true;
        }
      }
      return false;
    }
    case Kind::kAny: {
      std::size_t n = 0;
      while (n < rest.size() && (isSegmentChar(rest[n]) || rest[n] == '/')) {
        ++n;
      }
      for (std::size_t len = n + 1; len-- > 0;) {
        if (matchFrom(token + 1, rest.substr(len))) {
          return true;
        }
      }
      return false;
    }
  }
  return false;
}

}  // namespace palisade::policy
