#include "policy/matchers.h"

namespace palisade::policy {

bool AndMatcher::matches(const RequestView& r) const {
  for (const MatcherPtr& m : all_) {
    if (!m->matches(r)) {
      return false;
    }
  }
  return true;
}

bool OrMatcher::matches(const RequestView& r) const {
  for (const MatcherPtr& m : any_) {
    if (m->matches(r)) {
      return true;
    }
  }
  return false;
}

void ExactSet::insert(std::string value) {
  if (contains(value)) {
    return;
  }
  if (!large_.empty() || small_.size() == kSmall) {
    for (std::string& s : small_) {
      large_.insert(std::move(s));
    }
    small_.clear();
    large_.insert(std::move(value));
    return;
  }
  small_.push_back(std::move(value));
}

bool ExactSet::contains(std::string_view value) const {
  if (!large_.empty()) {
    return large_.find(value) != large_.end();
  }
  for (const std::string& s : small_) {
    if (s == value) {
      return true;
    }
  }
  return false;
}

bool globMatch(std::string_view pattern, std::string_view text) {
  // Iterative wildcard matching with one backtrack point: linear in practice, never
  // exponential.
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;
  std::size_t mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

PrincipalMatcher::PrincipalMatcher(const std::vector<std::string>& values) {
  for (const std::string& v : values) {
    StringPattern p(v, StringPattern::Case::kSensitive);
    if (p.kind() == StringPattern::Kind::kExact) {
      exact_.insert(v);
    } else {
      patterns_.push_back(std::move(p));
    }
  }
}

bool PrincipalMatcher::matches(const RequestView& r) const {
  // Principals exist only for authenticated (mTLS) peers.
  if (r.peer == nullptr) {
    return false;
  }
  std::string_view principal = r.peer->principal();
  if (exact_.contains(principal)) {
    return true;
  }
  for (const StringPattern& p : patterns_) {
    if (p.matches(principal, /*any_requires_non_empty=*/true)) {
      return true;
    }
  }
  return false;
}

NamespaceMatcher::NamespaceMatcher(const std::vector<std::string>& values) {
  for (const std::string& v : values) {
    if (v.find_first_of("*/") == std::string::npos) {
      exact_.insert(v);
    } else {
      globs_.push_back("*/ns/" + v + "/*");
    }
  }
}

bool NamespaceMatcher::matches(const RequestView& r) const {
  if (r.peer == nullptr) {
    return false;
  }
  std::string_view uri = r.peer->uri();
  if (!exact_.empty()) {
    // ".*/ns/<ns>/.*": any "/ns/<segment>/" anywhere in the URI.
    constexpr std::string_view kNs = "/ns/";
    for (std::size_t at = uri.find(kNs); at != std::string_view::npos; at = uri.find(kNs, at + 1)) {
      std::size_t begin = at + kNs.size();
      std::size_t end = uri.find('/', begin);
      if (end == std::string_view::npos) {
        break;
      }
      if (exact_.contains(uri.substr(begin, end - begin))) {
        return true;
      }
    }
  }
  for (const std::string& g : globs_) {
    if (globMatch(g, uri)) {
      return true;
    }
  }
  return false;
}

ServiceAccountMatcher::ServiceAccountMatcher(const std::vector<std::string>& values,
                                             std::string_view policy_ns) {
  for (const std::string& v : values) {
    auto slash = v.find('/');
    std::string ns = slash == std::string::npos ? std::string(policy_ns) : v.substr(0, slash);
    std::string sa = slash == std::string::npos ? v : v.substr(slash + 1);
    accounts_.emplace_back("/ns/" + ns + "/", "sa/" + sa);
  }
}

namespace {

// "spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?" matched in full against `uri`, with
// ns_part = "/ns/<ns>/" and sa_part = "sa/<sa>".
bool serviceAccountMatches(std::string_view uri, std::string_view ns_part,
                           std::string_view sa_part) {
  constexpr std::string_view kScheme = "spiffe://";
  if (!uri.starts_with(kScheme)) {
    return false;
  }
  // ".+" before "/ns/": at least one character after the scheme.
  for (std::size_t at = uri.find(ns_part, kScheme.size() + 1); at != std::string_view::npos;
       at = uri.find(ns_part, at + 1)) {
    std::string_view rest = uri.substr(at + ns_part.size());
    for (std::size_t s = rest.find(sa_part); s != std::string_view::npos;
         s = rest.find(sa_part, s + 1)) {
      // "(.+/|)": nothing, or at least one character then "/".
      if (s != 0 && (s < 2 || rest[s - 1] != '/')) {
        continue;
      }
      std::string_view tail = rest.substr(s + sa_part.size());
      // "(/.+)?": the end, or "/" and at least one character.
      if (tail.empty() || (tail.size() >= 2 && tail[0] == '/')) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

bool ServiceAccountMatcher::matches(const RequestView& r) const {
  if (r.peer == nullptr) {
    return false;
  }
  for (const auto& [ns_part, sa_part] : accounts_) {
    if (serviceAccountMatches(r.peer->uri(), ns_part, sa_part)) {
      return true;
    }
  }
  return false;
}

bool IpMatcher::matches(const RequestView& r) const {
  const IpAddress& ip = which_ == Which::kSource   ? r.source_ip
                        : which_ == Which::kRemote ? r.effectiveRemoteIp()
                                                   : r.destination_ip;
  for (const CidrRange& range : ranges_) {
    if (range.contains(ip)) {
      return true;
    }
  }
  return false;
}

bool PortMatcher::matches(const RequestView& r) const {
  for (std::uint16_t p : ports_) {
    if (p == r.destination_port) {
      return true;
    }
  }
  return false;
}

AttributeMatcher::AttributeMatcher(Attribute attribute, const std::vector<std::string>& values,
                                   std::string header_name)
    : attribute_(attribute), header_name_(std::move(header_name)) {
  // Hosts compare case-insensitively (Istio's HostMatcher); everything else exactly.
  const auto c = attribute == Attribute::kHost ? StringPattern::Case::kInsensitive
                                               : StringPattern::Case::kSensitive;
  if (attribute == Attribute::kHeader) {
    if (equalsIgnoreCase(header_name_, ":authority") || equalsIgnoreCase(header_name_, "host")) {
      pseudo_ = Pseudo::kAuthority;
    } else if (equalsIgnoreCase(header_name_, ":method")) {
      pseudo_ = Pseudo::kMethod;
    } else if (equalsIgnoreCase(header_name_, ":path")) {
      pseudo_ = Pseudo::kPath;
    }
  }
  for (const std::string& v : values) {
    if (attribute == Attribute::kPath && PathTemplate::isTemplate(v)) {
      templates_.push_back(PathTemplate::compile(v));
    } else {
      patterns_.emplace_back(v, c);
    }
  }
}

bool AttributeMatcher::matches(const RequestView& r) const {
  std::string_view value;
  bool present = true;
  // Istio's StringMatcher turns "*" into ".+" (non-empty) for paths and SNI; its
  // HeaderMatcher turns "*" into "present" for hosts, methods and headers.
  bool any_requires_non_empty = false;
  switch (attribute_) {
    case Attribute::kHost:
      value = r.host;
      present = !r.host.empty();
      break;
    case Attribute::kMethod:
      value = r.method;
      present = !r.method.empty();
      break;
    case Attribute::kPath:
      value = r.pathWithoutQuery();
      any_requires_non_empty = true;
      break;
    case Attribute::kSni:
      value = r.sni;
      any_requires_non_empty = true;
      break;
    case Attribute::kHeader: {
      if (pseudo_ != Pseudo::kNone && r.protocol == Protocol::kHttp) {
        value = pseudo_ == Pseudo::kAuthority ? r.host
                : pseudo_ == Pseudo::kMethod  ? r.method
                                              : r.path;
        break;
      }
      auto h = r.header(header_name_);
      present = h.has_value();
      value = h.value_or(std::string_view());
      break;
    }
  }
  if (!present) {
    return false;
  }
  for (const StringPattern& p : patterns_) {
    if (p.matches(value, any_requires_non_empty)) {
      return true;
    }
  }
  for (const PathTemplate& t : templates_) {
    if (t.matches(value)) {
      return true;
    }
  }
  return false;
}

}  // namespace palisade::policy
