#pragma once

// SpiffeId: a SPIFFE ID parsed strictly per the SPIFFE-ID standard
// (github.com/spiffe/spiffe standards/SPIFFE-ID.md). It keeps one string plus the
// offset where the path starts, so views of the trust domain, path and Istio-style
// principal (the ID without "spiffe://") cost nothing. Thread: any; a plain value.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "policy/result.h"

namespace palisade::policy {

// One constant per rule, so tests can compare exact text.
inline constexpr std::string_view kSpiffeEmpty = "spiffe_id: cannot be empty";
inline constexpr std::string_view kSpiffeTooLong = "spiffe_id: longer than 2048 bytes";
inline constexpr std::string_view kSpiffeWrongScheme =
    "spiffe_id: scheme is missing or invalid (must be \"spiffe://\")";
inline constexpr std::string_view kSpiffeMissingTrustDomain = "spiffe_id: trust domain is missing";
inline constexpr std::string_view kSpiffeTrustDomainTooLong =
    "spiffe_id: trust domain is longer than 255 bytes";
inline constexpr std::string_view kSpiffeTrustDomainChars =
    "spiffe_id: trust domain characters are limited to lowercase letters, numbers, dots, "
    "dashes, and underscores";
inline constexpr std::string_view kSpiffeUserinfo =
    "spiffe_id: trust domain cannot contain userinfo";
inline constexpr std::string_view kSpiffePort = "spiffe_id: trust domain cannot contain a port";
inline constexpr std::string_view kSpiffeQuery = "spiffe_id: cannot contain a query";
inline constexpr std::string_view kSpiffeFragment = "spiffe_id: cannot contain a fragment";
inline constexpr std::string_view kSpiffePercent =
    "spiffe_id: cannot contain percent-encoded characters";
inline constexpr std::string_view kSpiffeEmptySegment =
    "spiffe_id: path cannot contain empty segments";
inline constexpr std::string_view kSpiffeDotSegment = "spiffe_id: path cannot contain dot segments";
inline constexpr std::string_view kSpiffeTrailingSlash =
    "spiffe_id: path cannot have a trailing slash";
inline constexpr std::string_view kSpiffePathChars =
    "spiffe_id: path segment characters are limited to letters, numbers, dots, dashes, and "
    "underscores";

inline constexpr std::string_view kSpiffeScheme = "spiffe://";
inline constexpr std::size_t kSpiffeMaxLength = 2048;
inline constexpr std::size_t kTrustDomainMaxLength = 255;

class SpiffeId {
 public:
  // Parses and validates `text`. Errors carry one of the kSpiffe* messages.
  static Result<SpiffeId> parse(std::string_view text);

  // Validates a bare trust domain name ("example.org").
  static Status validateTrustDomain(std::string_view trust_domain);

  // "spiffe://example.org/ns/default/sa/web"
  std::string_view uri() const { return uri_; }
  // "example.org"
  std::string_view trustDomain() const {
    return std::string_view(uri_).substr(kSpiffeScheme.size(), path_offset_ - kSpiffeScheme.size());
  }
  // "/ns/default/sa/web", or "" for a trust-domain-only ID.
  std::string_view path() const { return std::string_view(uri_).substr(path_offset_); }
  // The ID without its scheme, as Istio policies name principals:
  // "example.org/ns/default/sa/web"; "example" for "spiffe://example".
  std::string_view principal() const { return std::string_view(uri_).substr(kSpiffeScheme.size()); }

  friend bool operator==(const SpiffeId& a, const SpiffeId& b) { return a.uri_ == b.uri_; }

 private:
  SpiffeId(std::string uri, std::size_t path_offset)
      : uri_(std::move(uri)), path_offset_(path_offset) {}

  std::string uri_;
  std::size_t path_offset_;
};

// The Kubernetes reading of a SPIFFE ID path: "/ns/<namespace>/sa/<service-account>",
// exactly four segments. A separate step from parsing (STYLE.md "Policy code").
struct KubernetesIdentity {
  std::string_view ns;
  std::string_view service_account;
};
std::optional<KubernetesIdentity> kubernetesIdentity(const SpiffeId& id);

}  // namespace palisade::policy
