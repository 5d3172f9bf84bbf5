#pragma once

// Matchers: the compiled form of policy rules. Each is a small immutable object with one
// `matches(const RequestView&)`; And, Or and Not compose them. They are built once per
// config version by the compiler and evaluated per request without allocating.
// Thread: any, after construction (they are never mutated).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "policy/ip_address.h"
#include "policy/path_template.h"
#include "policy/request_view.h"
#include "policy/string_pattern.h"

namespace palisade::policy {

class Matcher {
 public:
  virtual ~Matcher() = default;
  virtual bool matches(const RequestView& request) const = 0;
};
using MatcherPtr = std::unique_ptr<const Matcher>;

class AnyMatcher final : public Matcher {
 public:
  bool matches(const RequestView&) const override { return true; }
};

class AndMatcher final : public Matcher {
 public:
  explicit AndMatcher(std::vector<MatcherPtr> all) : all_(std::move(all)) {}
  bool matches(const RequestView& r) const override;

 private:
  std::vector<MatcherPtr> all_;
};

class OrMatcher final : public Matcher {
 public:
  explicit OrMatcher(std::vector<MatcherPtr> any) : any_(std::move(any)) {}
  bool matches(const RequestView& r) const override;

 private:
  std::vector<MatcherPtr> any_;
};

class NotMatcher final : public Matcher {
 public:
  explicit NotMatcher(MatcherPtr inner) : inner_(std::move(inner)) {}
  bool matches(const RequestView& r) const override { return !inner_->matches(r); }

 private:
  MatcherPtr inner_;
};

// Hashing that lets an unordered_set<std::string> be searched with a string_view.
struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringSet = std::unordered_set<std::string, TransparentHash, std::equal_to<>>;

// A set of exact strings. A few values are compared one by one (a length mismatch costs
// nothing, and there is no hash to compute); many go into a hash set.
class ExactSet {
 public:
  void insert(std::string value);
  bool contains(std::string_view value) const;
  bool empty() const { return small_.empty() && large_.empty(); }

 private:
  static constexpr std::size_t kSmall = 8;
  std::vector<std::string> small_;
  StringSet large_;
};

// source.principals / source.principal: the peer's SPIFFE ID without "spiffe://".
// Exact values become a hash set; "*" means any authenticated peer.
class PrincipalMatcher final : public Matcher {
 public:
  explicit PrincipalMatcher(const std::vector<std::string>& values);
  bool matches(const RequestView& r) const override;

 private:
  ExactSet exact_;
  std::vector<StringPattern> patterns_;
};

// source.namespaces / source.namespace. Istio matches the peer's URI SAN against the
// regular expression ".*/ns/<value>/.*" with each "*" of the value turned into ".*".
class NamespaceMatcher final : public Matcher {
 public:
  explicit NamespaceMatcher(const std::vector<std::string>& values);
  bool matches(const RequestView& r) const override;

 private:
  ExactSet exact_;
  std::vector<std::string> globs_;  // "*/ns/<value>/*", "*" as a wildcard
};

// source.serviceAccounts: "name" (in the policy's namespace) or "namespace/name", matched as
// Istio's regular expression "spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?".
class ServiceAccountMatcher final : public Matcher {
 public:
  ServiceAccountMatcher(const std::vector<std::string>& values, std::string_view policy_ns);
  bool matches(const RequestView& r) const override;

 private:
  std::vector<std::pair<std::string, std::string>> accounts_;  // {"/ns/<ns>/", "sa/<sa>"}
};

class IpMatcher final : public Matcher {
 public:
  enum class Which { kSource, kRemote, kDestination };
  IpMatcher(Which which, std::vector<CidrRange> ranges)
      : which_(which), ranges_(std::move(ranges)) {}
  bool matches(const RequestView& r) const override;

 private:
  Which which_;
  std::vector<CidrRange> ranges_;
};

class PortMatcher final : public Matcher {
 public:
  explicit PortMatcher(std::vector<std::uint16_t> ports) : ports_(std::move(ports)) {}
  bool matches(const RequestView& r) const override;

 private:
  std::vector<std::uint16_t> ports_;
};

// A string attribute of the request matched against Istio value patterns.
class AttributeMatcher final : public Matcher {
 public:
  enum class Attribute { kHost, kMethod, kPath, kSni, kHeader };
  AttributeMatcher(Attribute attribute, const std::vector<std::string>& values,
                   std::string header_name = {});
  bool matches(const RequestView& r) const override;

 private:
  Attribute attribute_;
  std::string header_name_;
  // For kHeader: a pseudo-header (":authority"/"host", ":method", ":path") read straight
  // from the request's fields, decided once here rather than per request.
  enum class Pseudo : std::uint8_t { kNone, kAuthority, kMethod, kPath } pseudo_ = Pseudo::kNone;
  std::vector<StringPattern> patterns_;
  std::vector<PathTemplate> templates_;  // kPath only
};

// "*" used as a wildcard in a pattern where everything else is literal. No allocation.
bool globMatch(std::string_view pattern, std::string_view text);

}  // namespace palisade::policy
