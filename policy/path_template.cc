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
    case '-':
    case '.':
    case '_':
    case '~':
    case '%':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '+':
    case ',':
    case ';':
    case ':':
    case '@':
    case '=':
      return true;
    default:
      return false;
  }
}

// RFC 3986 pchar without "*" (an operator character here) and "/" (a separator).
bool isLiteralChar(char c) { return isSegmentChar(c); }

Error templateError(std::string_view value, std::string_view why) {
  return invalidArgument("invalid path template \"" + std::string(value) +
                         "\": " + std::string(why));
}

// What Envoy's URI template parser adds to Istio's checks: the template is an absolute path;
// a segment is a literal or one operator, except that the last segment may be an operator
// followed by a literal suffix ("/{*}.json"); literals are path characters.
Status validateSegments(std::string_view value) {
  if (!value.starts_with('/')) {
    return templateError(value, "must start with /");
  }
  std::size_t begin = 1;
  while (begin <= value.size()) {
    std::size_t end = value.find('/', begin);
    const bool last = end == std::string_view::npos;
    std::string_view segment = value.substr(begin, last ? std::string_view::npos : end - begin);
    std::string_view literal = segment;
    if (segment.starts_with(kAny) || segment.starts_with(kOne)) {
      literal = segment.substr(segment.starts_with(kAny) ? kAny.size() : kOne.size());
      if (!literal.empty() && !last) {
        return templateError(value,
                             "text after an operator is only allowed in the last "
                             "segment");
      }
    }
    if (literal.find('{') != std::string_view::npos) {
      return templateError(value, "an operator must start its segment");
    }
    for (char c : literal) {
      if (!isLiteralChar(c)) {
        return templateError(value, std::string("'") + c + "' is not a path character");
      }
    }
    if (last) {
      break;
    }
    begin = end + 1;
  }
  return Ok{};
}

}  // namespace

bool PathTemplate::isTemplate(std::string_view value) {
  return value.find(kOne) != std::string_view::npos || value.find(kAny) != std::string_view::npos;
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
  return validateSegments(value);
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
