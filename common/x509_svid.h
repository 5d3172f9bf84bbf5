#pragma once

// X509-SVID validation per the SPIFFE X509-SVID standard (github.com/spiffe/spiffe,
// standards/X509-SVID.md), on OpenSSL 3:
//   - the leaf has exactly one URI SAN, a valid SPIFFE ID with a path (section 2, 3.1);
//   - the leaf is not a CA and sets neither keyCertSign nor cRLSign (section 5.2), and its key
//     usage includes digitalSignature (section 4.3);
//   - every signing certificate is a CA with keyCertSign (sections 3.2, 4.1, 4.3);
//   - the chain verifies per RFC 5280 to a root of the bundle of the leaf's own trust domain,
//     at the given time (section 5.1).
// Thread: verifySvid() runs on any thread; VerifiedChainCache belongs to one thread.

#include <cstddef>
#include <cstring>
#include <ctime>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/openssl.h"
#include "common/trust_bundle.h"
#include "policy/spiffe_id.h"

namespace palisade::common {

// One constant per rule, so tests compare exact text. Some are prefixes followed by detail.
inline constexpr std::string_view kSvidNoUriSan = "x509svid: certificate has no URI SAN";
inline constexpr std::string_view kSvidManyUriSans =
    "x509svid: certificate has more than one URI SAN";
inline constexpr std::string_view kSvidBadSpiffeId = "x509svid: URI SAN is not a SPIFFE ID: ";
inline constexpr std::string_view kSvidLeafWithoutPath =
    "x509svid: leaf SPIFFE ID has no path (a trust domain ID cannot identify a workload)";
inline constexpr std::string_view kSvidLeafIsCa = "x509svid: leaf certificate has the CA flag set";
inline constexpr std::string_view kSvidLeafKeyCertSign =
    "x509svid: leaf certificate has the keyCertSign key usage";
inline constexpr std::string_view kSvidLeafCrlSign =
    "x509svid: leaf certificate has the cRLSign key usage";
inline constexpr std::string_view kSvidLeafNoDigitalSignature =
    "x509svid: leaf certificate lacks the digitalSignature key usage";
inline constexpr std::string_view kSvidSignerNotCa = "x509svid: signing certificate is not a CA: ";
inline constexpr std::string_view kSvidSignerNoKeyCertSign =
    "x509svid: signing certificate lacks the keyCertSign key usage: ";
inline constexpr std::string_view kSvidWrongTrustDomain = "x509svid: SPIFFE ID is in trust domain ";
inline constexpr std::string_view kSvidNoBundle = "x509svid: no trust bundle for trust domain ";
inline constexpr std::string_view kSvidChain = "x509svid: chain does not verify: ";

// The URI SANs of a certificate, in order.
std::vector<std::string> uriSans(X509* cert);
std::vector<std::string> dnsSans(X509* cert);

// The SPIFFE ID of a certificate: exactly one URI SAN, a valid SPIFFE ID. No chain checks.
Result<policy::SpiffeId> spiffeIdOf(X509* cert);

struct VerifyOptions {
  std::optional<std::time_t> at;            // default: now
  std::optional<std::string> trust_domain;  // the leaf must be in it, when set
};

struct VerifiedSvid {
  policy::SpiffeId id;
  std::time_t expires = 0;  // the earliest notAfter of the verified chain
};

// Verifies `leaf` with the untrusted `intermediates` the peer sent.
Result<VerifiedSvid> verifySvid(X509* leaf, const std::vector<X509*>& intermediates,
                                const BundleSet& bundles, const VerifyOptions& options = {});

// Verified chains by the SHA-256 of the leaf, so a peer that reconnects with the same SVID
// costs a hash rather than a chain verification. Bounded (least recently used goes first);
// an entry lives until the chain's earliest notAfter. Clear it when the bundles change.
// Thread: one owner (a worker); not synchronized.
class VerifiedChainCache {
 public:
  explicit VerifiedChainCache(std::size_t capacity) : capacity_(capacity) {}

  // The cached identity of `leaf` at time `now`, or nullptr. Allocates nothing on a hit.
  std::shared_ptr<const policy::SpiffeId> find(X509* leaf, std::time_t now);
  std::shared_ptr<const policy::SpiffeId> insert(X509* leaf, const VerifiedSvid& verified);
  // The earliest notAfter of the cached chain of `leaf`; 0 when not cached.
  std::time_t expiresOf(X509* leaf) const;
  void clear();
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Sha256 key;
    std::shared_ptr<const policy::SpiffeId> id;
    std::time_t expires;
  };
  struct KeyHash {
    std::size_t operator()(const Sha256& k) const {
      std::size_t h;
      std::memcpy(&h, k.data(), sizeof h);
      return h;
    }
  };
  std::size_t capacity_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<Sha256, std::list<Entry>::iterator, KeyHash> entries_;
};

}  // namespace palisade::common
