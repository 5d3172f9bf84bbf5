#include "policy/spiffe_id.h"

namespace palisade::policy {
namespace {

Error fail(std::string_view message) { return invalidArgument(std::string(message)); }

bool isTrustDomainChar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool isPathChar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// Classifies a byte that is not allowed, so the message names the broken rule rather than
// only "bad character": a query, fragment or percent-encoding are rules of their own.
std::string_view whyNotAllowed(unsigned char c, std::string_view charset_message) {
  switch (c) {
    case '?':
      return kSpiffeQuery;
    case '#':
      return kSpiffeFragment;
    case '%':
      return kSpiffePercent;
    default:
      return charset_message;
  }
}

}  // namespace

Status SpiffeId::validateTrustDomain(std::string_view td) {
  if (td.empty()) {
    return fail(kSpiffeMissingTrustDomain);
  }
  // "a maximum length of a trust domain name is 255 bytes" (SPIFFE-ID 2.3)
  if (td.size() > kTrustDomainMaxLength) {
    return fail(kSpiffeTrustDomainTooLong);
  }
  for (unsigned char c : td) {
    if (isTrustDomainChar(c)) {
      continue;
    }
    // "The userinfo and port parts of the authority component MUST NOT be set, and the
    // `:` delimiter MUST NOT be present." (SPIFFE-ID 2.1)
    if (c == '@') {
      return fail(kSpiffeUserinfo);
    }
    if (c == ':') {
      return fail(kSpiffePort);
    }
    return fail(whyNotAllowed(c, kSpiffeTrustDomainChars));
  }
  return Ok{};
}

Result<SpiffeId> SpiffeId::parse(std::string_view text) {
  if (text.empty()) {
    return fail(kSpiffeEmpty);
  }
  // "SPIFFE implementations MUST support SPIFFE URIs up to 2048 bytes in length and SHOULD
  // NOT generate URIs of length greater than 2048 bytes." (SPIFFE-ID 2.3)
  if (text.size() > kSpiffeMaxLength) {
    return fail(kSpiffeTooLong);
  }
  // The scheme is compared exactly: "SPIFFE://" is not a SPIFFE ID.
  if (!text.starts_with(kSpiffeScheme)) {
    return fail(kSpiffeWrongScheme);
  }
  const std::size_t td_begin = kSpiffeScheme.size();
  std::size_t td_end = td_begin;
  while (td_end < text.size() && text[td_end] != '/' && text[td_end] != '?' &&
         text[td_end] != '#') {
    ++td_end;
  }
  if (Status td = validateTrustDomain(text.substr(td_begin, td_end - td_begin)); !td.ok()) {
    return td.error();
  }

  std::string_view path = text.substr(td_end);
  // Walk the path segment by segment: each one non-empty, not "." or "..", and made only of
  // [A-Za-z0-9._-]. A trailing "/" is an empty last segment with its own message.
  std::size_t pos = 0;
  while (pos < path.size()) {
    unsigned char lead = static_cast<unsigned char>(path[pos]);
    if (lead != '/') {
      return fail(whyNotAllowed(lead, kSpiffePathChars));
    }
    std::size_t seg_begin = pos + 1;
    std::size_t seg_end = seg_begin;
    while (seg_end < path.size() && path[seg_end] != '/') {
      unsigned char c = static_cast<unsigned char>(path[seg_end]);
      if (!isPathChar(c)) {
        return fail(whyNotAllowed(c, kSpiffePathChars));
      }
      ++seg_end;
    }
    std::string_view segment = path.substr(seg_begin, seg_end - seg_begin);
    if (segment.empty()) {
      return fail(seg_end == path.size() ? kSpiffeTrailingSlash : kSpiffeEmptySegment);
    }
    if (segment == "." || segment == "..") {
      return fail(kSpiffeDotSegment);
    }
    pos = seg_end;
  }
  return SpiffeId(std::string(text), td_end);
}

std::optional<KubernetesIdentity> kubernetesIdentity(const SpiffeId& id) {
  std::string_view p = id.path();
  constexpr std::string_view kNs = "/ns/";
  constexpr std::string_view kSa = "/sa/";
  if (!p.starts_with(kNs)) {
    return std::nullopt;
  }
  p.remove_prefix(kNs.size());
  std::size_t slash = p.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view ns = p.substr(0, slash);
  p.remove_prefix(slash);
  if (!p.starts_with(kSa)) {
    return std::nullopt;
  }
  p.remove_prefix(kSa.size());
  if (p.empty() || p.find('/') != std::string_view::npos) {
    return std::nullopt;
  }
  return KubernetesIdentity{ns, p};
}

}  // namespace palisade::policy
