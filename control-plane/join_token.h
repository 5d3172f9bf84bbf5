#pragma once

// JoinTokenStore: join tokens, the simplest workload attestation (SPIRE's join tokens,
// kubeadm's bootstrap tokens). An operator makes a token bound to one SPIFFE ID; a workload
// presents it once (or up to N times) before it expires and is then given that identity.
//
// Token text: "pjt_" followed by 32 random bytes in base64url without padding (47 bytes in
// all), shown once by create(). The store keeps only the token's SHA-256, never the token:
// whoever reads the directory learns which identities have pending tokens, not how to redeem
// them.
//
// On disk, DIR (normally <data dir>/join-tokens, see joinTokenDir()) is created 0700 and
// holds one file per token, written 0600 and atomically:
//   <sha256 of the token, 64 lowercase hex digits>.json
//   {"version": 1, "sha256": "<same hex>", "spiffe_id": "spiffe://TD/ns/NS/sa/SA",
//    "created": "2026-01-02T15:04:05Z", "expires": "2026-01-02T16:04:05Z",
//    "max_uses": 1, "uses_left": 1}
// plus ".lock", the file redeem(), revoke() and pruneExpired() hold an exclusive flock(2) on,
// so that several processes sharing DIR (palisadectl and palisade-cp, or replicas on one
// host) never spend a use twice. flock is advisory and may not hold on network filesystems:
// DIR belongs on a local disk. The record whose last use is spent is deleted.
//
// Bounds: a TTL is 1s to kJoinTokenMaxTtl (30 days: a join token bootstraps a workload, it
// is not a long-lived credential; kubeadm's default is 24h, SPIRE's 10m); uses are 1 to
// kJoinTokenMaxUses; token input is refused as malformed before any hashing or file access
// unless it has exactly the shape create() makes; a record file larger than 4 KiB is refused.
//
// Thread: every method may run on any thread; a mutex orders them within the process and the
// lock file across processes. Methods block on disk I/O (fsync), so not for a worker thread.

#include <chrono>
#include <cstddef>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"
#include "policy/spiffe_id.h"

namespace palisade::cp {

inline constexpr std::string_view kJoinTokenPrefix = "pjt_";
inline constexpr std::size_t kJoinTokenRandomBytes = 32;
// "pjt_" + 43 base64url characters (256 bits, the last character carrying 4 of them).
inline constexpr std::size_t kJoinTokenLength = kJoinTokenPrefix.size() + 43;
inline constexpr std::chrono::seconds kJoinTokenMaxTtl{30 * 24 * 3600};
inline constexpr int kJoinTokenMaxUses = 1000;
// How many hex digits of the hash name a token in lists, logs and metrics.
inline constexpr std::size_t kJoinTokenIdLength = 12;
// The shortest hash prefix revoke() accepts.
inline constexpr std::size_t kJoinTokenMinRevokePrefix = 8;
inline constexpr std::string_view kJoinTokenDirName = "join-tokens";

// One constant per refusal, so tests compare exact text (some are followed by detail).
// Redemption refusals are never followed by the token: error text ends up in logs.
inline constexpr std::string_view kJoinTokenMalformed =
    "join_token: malformed token (expected pjt_ and 43 base64url characters)";
inline constexpr std::string_view kJoinTokenUnknown = "join_token: unknown token";
inline constexpr std::string_view kJoinTokenExpired = "join_token: the token has expired";
inline constexpr std::string_view kJoinTokenExhausted = "join_token: the token has no uses left";
inline constexpr std::string_view kJoinTokenTtlNotPositive = "join_token: ttl must be at least 1s";
inline constexpr std::string_view kJoinTokenTtlTooLong =
    "join_token: ttl must be at most 720h (30 days)";
inline constexpr std::string_view kJoinTokenUsesRange =
    "join_token: uses must be between 1 and 1000";
inline constexpr std::string_view kJoinTokenIdWithoutPath =
    "join_token: a workload SPIFFE ID needs a path (spiffe://TD/...): ";
inline constexpr std::string_view kJoinTokenBadPrefix =
    "join_token: expected a token id (8 to 64 hex digits of the token's SHA-256) or the token";
inline constexpr std::string_view kJoinTokenNoMatch = "join_token: no token id starts with ";
inline constexpr std::string_view kJoinTokenAmbiguous =
    "join_token: more than one token id starts with ";
inline constexpr std::string_view kJoinTokenCorrupt = "join_token: unreadable token record: ";
inline constexpr std::string_view kJoinTokenDirWritable =
    "join_token: the directory is writable by group or others (want 0700): ";

// Machine reasons for a refused redemption, for metric labels.
inline constexpr std::string_view kJoinTokenReasonMalformed = "malformed";
inline constexpr std::string_view kJoinTokenReasonUnknown = "unknown";
inline constexpr std::string_view kJoinTokenReasonExpired = "expired";
inline constexpr std::string_view kJoinTokenReasonExhausted = "exhausted";
inline constexpr std::string_view kJoinTokenReasonError = "error";  // I/O, corrupt record

// The reason for an error redeem() returned: one of the kJoinTokenReason* constants.
std::string_view joinTokenRefusalReason(const Error& error);

// A token's id: the first kJoinTokenIdLength hex digits of its SHA-256, which list() shows and
// revoke() takes. Safe to log; the token is not.
std::string joinTokenId(std::string_view token);

// "<data_dir>/join-tokens".
std::string joinTokenDir(const std::string& data_dir);

// A successful redemption.
struct RedeemedJoinToken {
  policy::SpiffeId spiffe_id;
  std::string id;  // the first kJoinTokenIdLength hex digits of the hash, for logs
  std::time_t expires = 0;
  int uses_left = 0;  // after this redemption
  int max_uses = 0;
};

// What list() shows of a token: never the token, which the store does not have.
struct JoinTokenInfo {
  std::string sha256;     // 64 lowercase hex digits; the first kJoinTokenIdLength are its id
  std::string spiffe_id;  // empty when revoke() removed an unreadable record
  std::time_t created = 0;
  std::time_t expires = 0;
  int uses_left = 0;
  int max_uses = 0;
  bool expired = false;  // at the `now` list() was given
};

class JoinTokenStore {
 public:
  // Opens DIR, creating it (and missing parents) 0700. Refused when DIR exists and is
  // writable by group or others: whoever can write there can mint identities.
  static Result<std::unique_ptr<JoinTokenStore>> open(const std::string& dir);

  // Makes a token for `spiffe_id` (a workload ID: it needs a path) that expires `ttl` after
  // `now` and can be redeemed `max_uses` times. Returns the token: the only copy there is.
  Result<std::string> create(std::string_view spiffe_id, std::chrono::seconds ttl, int max_uses = 1,
                             std::time_t now = 0);

  // Spends one use of `token`. Refusals: kJoinTokenMalformed, kJoinTokenUnknown (also a
  // one-time token presented again), kJoinTokenExpired (the record is deleted),
  // kJoinTokenExhausted; joinTokenRefusalReason() names them for metrics. Success means the
  // use is already spent on disk.
  Result<RedeemedJoinToken> redeem(std::string_view token, std::time_t now = 0);

  // Every token, sorted by expiry then hash. A record that cannot be read is an error.
  Result<std::vector<JoinTokenInfo>> list(std::time_t now = 0) const;

  // Deletes the one token whose hash starts with `id_or_token` (at least
  // kJoinTokenMinRevokePrefix hex digits, any case), or the token itself when given one (a
  // leaked token is revoked by pasting it). Errors: kJoinTokenBadPrefix, kJoinTokenNoMatch
  // (code kNotFound), kJoinTokenAmbiguous. An unreadable record is removed all the same; its
  // info then has only `sha256`.
  Result<JoinTokenInfo> revoke(std::string_view id_or_token);

  // Deletes expired and used-up records; returns how many. Unreadable records are left for an
  // operator to look at.
  Result<std::size_t> pruneExpired(std::time_t now = 0);

  const std::string& dir() const { return dir_; }

 private:
  explicit JoinTokenStore(std::string dir) : dir_(std::move(dir)) {}

  std::string dir_;
  std::mutex mutex_;  // orders mutations within the process; the lock file, across them
};

}  // namespace palisade::cp
