#pragma once

// Offline verification of Kubernetes projected service-account tokens, for workload
// attestation: a sidecar presents its pod's token, palisade-cp checks it against the cluster's
// JWKS (the API server's /openid/v1/jwks, configured, never fetched) and maps it to the SPIFFE
// ID spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
//
// Tokens are JWS compact serializations (RFC 7515 §7.1) of JWT claims (RFC 7519) signed with
// RS256 or ES256 (RFC 7518 §3.3, §3.4); nothing else is accepted: no "none", no HMAC, no JWE,
// no key embedded in or linked from the header ("jwk", "jku", "x5u" are ignored), no critical
// header extensions. A key verifies only the algorithm of its type, so an RSA key can never be
// used as an HMAC secret or an EC key (no algorithm confusion).
//
// Every refusal message starts with one of the constants below (some are followed by detail),
// so tests compare exact text and saTokenReason() names the rule for metrics.
// Thread: any; a Jwks is immutable after parse() and may be shared by threads.

#include <chrono>
#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "common/openssl.h"
#include "policy/result.h"
#include "policy/spiffe_id.h"

namespace palisade::cp {

inline constexpr std::size_t kSaTokenMaxLength = 16 * 1024;
inline constexpr std::size_t kJwksMaxLength = 256 * 1024;
inline constexpr std::size_t kJwksMaxKeys = 64;
inline constexpr int kJwksMinRsaBits = 2048;
inline constexpr int kJwksMaxRsaBits = 8192;
inline constexpr std::chrono::seconds kDefaultSaTokenLeeway{60};

// JWKS refusals.
inline constexpr std::string_view kJwksTooLarge = "jwks: larger than 262144 bytes";
inline constexpr std::string_view kJwksNotJson = "jwks: not a JSON object";
inline constexpr std::string_view kJwksNoKeys = "jwks: \"keys\" must be a non-empty array";
inline constexpr std::string_view kJwksTooManyKeys = "jwks: more than 64 keys";
inline constexpr std::string_view kJwksKeyNotObject = "jwks: a key is not a JSON object: ";
inline constexpr std::string_view kJwksMissingMember = "jwks: a key lacks a required member: ";
inline constexpr std::string_view kJwksMemberNotString = "jwks: a key member is not a string: ";
inline constexpr std::string_view kJwksUnsupportedKty =
    "jwks: unsupported key type (kty RSA or EC expected): ";
inline constexpr std::string_view kJwksUnsupportedCurve =
    "jwks: unsupported EC curve (crv P-256 expected): ";
inline constexpr std::string_view kJwksUnsupportedAlg =
    "jwks: unsupported alg for the key type (RS256 for RSA, ES256 for EC): ";
inline constexpr std::string_view kJwksUnsupportedUse = "jwks: unsupported use (sig expected): ";
inline constexpr std::string_view kJwksBadBase64url =
    "jwks: a key member is not unpadded base64url: ";
inline constexpr std::string_view kJwksRsaTooSmall = "jwks: RSA key shorter than 2048 bits: ";
inline constexpr std::string_view kJwksRsaTooLarge = "jwks: RSA key longer than 8192 bits: ";
inline constexpr std::string_view kJwksBadCoordinate =
    "jwks: EC coordinate is not 32 bytes (RFC 7518 §6.2.1.2): ";
inline constexpr std::string_view kJwksBadKey = "jwks: not a valid public key: ";
inline constexpr std::string_view kJwksDuplicateKid = "jwks: two keys share a kid: ";
inline constexpr std::string_view kJwksPrivateKey =
    "jwks: a key holds private material (publish public keys only): ";

// Token refusals. The reason each one counts under (saTokenReason) follows in a comment.
inline constexpr std::string_view kSaTokenNoAudienceConfigured =
    "sa_token: no audience configured";  // misconfigured
inline constexpr std::string_view kSaTokenNegativeLeeway =
    "sa_token: leeway cannot be negative";  // misconfigured
inline constexpr std::string_view kSaTokenTooLong =
    "sa_token: longer than 16384 bytes";  // malformed
inline constexpr std::string_view kSaTokenNotCompact =
    "sa_token: not a JWS compact serialization (three base64url parts separated by "
    "dots)";  // malformed
inline constexpr std::string_view kSaTokenBadBase64url =
    "sa_token: a part is not unpadded base64url: ";  // malformed; the part follows
inline constexpr std::string_view kSaTokenBadHeader =
    "sa_token: the header is not a JSON object";  // malformed
inline constexpr std::string_view kSaTokenHeaderMember =
    "sa_token: a header member is missing or not a string: ";  // malformed
inline constexpr std::string_view kSaTokenCritical =
    "sa_token: the header has critical extensions, none is supported";  // malformed
inline constexpr std::string_view kSaTokenUnsupportedAlg =
    "sa_token: unsupported alg (RS256 or ES256 expected): ";  // unsupported_alg
inline constexpr std::string_view kSaTokenUnknownKid =
    "sa_token: no key in the JWKS has the token's kid: ";  // unknown_key
inline constexpr std::string_view kSaTokenKeyTypeMismatch =
    "sa_token: the key named by kid cannot verify the token's alg: ";  // unknown_key
inline constexpr std::string_view kSaTokenNoKeyForAlg =
    "sa_token: the JWKS has no key for the token's alg: ";  // unknown_key
inline constexpr std::string_view kSaTokenBadSignatureLength =
    "sa_token: the signature has the wrong length for its alg: ";  // bad_signature
inline constexpr std::string_view kSaTokenBadSignature =
    "sa_token: the signature does not verify";  // bad_signature
inline constexpr std::string_view kSaTokenBadClaims =
    "sa_token: the claims are not a JSON object";  // malformed
inline constexpr std::string_view kSaTokenClaimType =
    "sa_token: a claim has the wrong type: ";  // malformed; the claim's name follows
inline constexpr std::string_view kSaTokenNoExp =
    "sa_token: the exp claim is missing";                                     // malformed
inline constexpr std::string_view kSaTokenExpired = "sa_token: expired at ";  // expired
inline constexpr std::string_view kSaTokenNotYetValid =
    "sa_token: not valid before ";  // not_yet_valid
inline constexpr std::string_view kSaTokenIssuedInFuture =
    "sa_token: issued in the future at ";  // not_yet_valid
inline constexpr std::string_view kSaTokenNoAudience =
    "sa_token: the aud claim is missing";  // wrong_audience
inline constexpr std::string_view kSaTokenWrongAudience =
    "sa_token: aud does not name the expected audience: ";  // wrong_audience
inline constexpr std::string_view kSaTokenNoIssuer =
    "sa_token: the iss claim is missing";  // wrong_issuer
inline constexpr std::string_view kSaTokenWrongIssuer =
    "sa_token: iss is not the expected issuer: ";  // wrong_issuer
inline constexpr std::string_view kSaTokenNoSubject =
    "sa_token: the sub claim is missing";  // bad_subject
inline constexpr std::string_view kSaTokenBadSubject =
    "sa_token: sub is not system:serviceaccount:<namespace>:<name>: ";  // bad_subject
inline constexpr std::string_view kSaTokenClaimsDisagree =
    "sa_token: a kubernetes.io claim disagrees with sub: ";  // bad_subject

// Why a token was refused, for metrics labels (reasonName) and callers' decisions.
enum class SaTokenReason {
  kMalformed,
  kUnsupportedAlg,
  kUnknownKey,
  kBadSignature,
  kExpired,
  kNotYetValid,
  kWrongAudience,
  kWrongIssuer,
  kBadSubject,
  kMisconfigured,  // the options, not the token
};
// "malformed", "unsupported_alg", "unknown_key", "bad_signature", "expired", "not_yet_valid",
// "wrong_audience", "wrong_issuer", "bad_subject", "misconfigured".
std::string_view reasonName(SaTokenReason reason);
// The reason of an error returned by verifySaToken (found from its message's constant). An
// error that did not come from verifySaToken counts as kMalformed.
SaTokenReason saTokenReason(const Error& error);

// RFC 4648 §5 base64url without padding, strictly: only A-Z a-z 0-9 - _, no '=', no
// whitespace, no length of 4n+1, and unused bits of the last character must be zero (one text
// per byte string). Errors carry no detail; callers say which field failed.
Result<std::string> decodeBase64url(std::string_view text);

enum class JwkType { kRsa, kEcP256 };

// One verification key of a JWKS (RFC 7517 §4). `kid`, `alg` and `use` are "" when absent.
struct Jwk {
  std::string kid;
  JwkType type = JwkType::kRsa;
  std::string alg;
  std::string use;
  common::EvpPkeyPtr key;  // public key, checked with EVP_PKEY_public_check
};

// A JWK Set holding RSA (>= 2048 bits) and EC P-256 signature keys. The whole document is
// refused when any key is unsupported or broken (never skipped), and kids are unique.
class Jwks {
 public:
  // Errors carry a kJwks* message, then detail naming the key ("keys[1]: ...").
  static Result<Jwks> parse(std::string_view json);
  // parse() of the file's content; errors start with "<path>: ".
  static Result<Jwks> load(const std::string& path);

  const std::vector<Jwk>& keys() const { return keys_; }
  // The key with this kid, or null.
  const Jwk* find(std::string_view kid) const;

 private:
  std::vector<Jwk> keys_;
};

struct SaTokenOptions {
  std::string audience;  // required: aud must contain it
  std::string issuer;    // when not empty, iss must equal it
  // Allowed clock skew for exp, nbf and iat.
  std::chrono::seconds leeway = kDefaultSaTokenLeeway;
  std::time_t now = 0;  // 0: the current time
};

// What a verified token says about its workload.
struct SaIdentity {
  std::string ns;  // namespace
  std::string service_account;
  std::string pod_name;  // "" when the token is not bound to a pod
  std::string pod_uid;   // "" when the token is not bound to a pod
  std::time_t expiry = 0;

  // spiffe://<trust_domain>/ns/<ns>/sa/<service_account>. Fails only on a bad trust domain.
  Result<policy::SpiffeId> spiffeId(std::string_view trust_domain) const;
};

// Verifies `token` against `jwks` (signature first, then the claims) and reads the identity.
// Errors carry one of the kSaToken* messages; saTokenReason() classifies them.
Result<SaIdentity> verifySaToken(std::string_view token, const Jwks& jwks,
                                 const SaTokenOptions& options);

}  // namespace palisade::cp
