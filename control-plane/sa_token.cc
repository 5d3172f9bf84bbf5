#include "control-plane/sa_token.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <system_error>

namespace palisade::cp {

namespace {

using Json = nlohmann::json;
using common::BignumPtr;
using common::Deleter;
using common::EvpPkeyPtr;
using OsslParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using OsslParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;

// 9999-12-31T23:59:59Z. NumericDates are clamped to [0, this] so leeway arithmetic cannot
// overflow and every expiry prints as a date.
constexpr std::int64_t kMaxTime = 253402300799;
constexpr std::size_t kMaxRsaExponentBytes = 8;
constexpr std::size_t kP256CoordinateBytes = 32;
constexpr std::size_t kEs256SignatureBytes = 2 * kP256CoordinateBytes;
constexpr std::size_t kMaxQuoted = 64;

constexpr std::string_view kSubjectPrefix = "system:serviceaccount:";

struct ReasonRule {
  std::string_view message;
  SaTokenReason reason;
};
// Every kSaToken* constant and what it counts as. No constant is a prefix of another (tested).
constexpr ReasonRule kReasonRules[] = {
    {kSaTokenNoAudienceConfigured, SaTokenReason::kMisconfigured},
    {kSaTokenNegativeLeeway, SaTokenReason::kMisconfigured},
    {kSaTokenTooLong, SaTokenReason::kMalformed},
    {kSaTokenNotCompact, SaTokenReason::kMalformed},
    {kSaTokenBadBase64url, SaTokenReason::kMalformed},
    {kSaTokenBadHeader, SaTokenReason::kMalformed},
    {kSaTokenHeaderMember, SaTokenReason::kMalformed},
    {kSaTokenCritical, SaTokenReason::kMalformed},
    {kSaTokenUnsupportedAlg, SaTokenReason::kUnsupportedAlg},
    {kSaTokenUnknownKid, SaTokenReason::kUnknownKey},
    {kSaTokenKeyTypeMismatch, SaTokenReason::kUnknownKey},
    {kSaTokenNoKeyForAlg, SaTokenReason::kUnknownKey},
    {kSaTokenBadSignatureLength, SaTokenReason::kBadSignature},
    {kSaTokenBadSignature, SaTokenReason::kBadSignature},
    {kSaTokenBadClaims, SaTokenReason::kMalformed},
    {kSaTokenClaimType, SaTokenReason::kMalformed},
    {kSaTokenNoExp, SaTokenReason::kMalformed},
    {kSaTokenExpired, SaTokenReason::kExpired},
    {kSaTokenNotYetValid, SaTokenReason::kNotYetValid},
    {kSaTokenIssuedInFuture, SaTokenReason::kNotYetValid},
    {kSaTokenNoAudience, SaTokenReason::kWrongAudience},
    {kSaTokenWrongAudience, SaTokenReason::kWrongAudience},
    {kSaTokenNoIssuer, SaTokenReason::kWrongIssuer},
    {kSaTokenWrongIssuer, SaTokenReason::kWrongIssuer},
    {kSaTokenNoSubject, SaTokenReason::kBadSubject},
    {kSaTokenBadSubject, SaTokenReason::kBadSubject},
    {kSaTokenClaimsDisagree, SaTokenReason::kBadSubject},
};

Error refuse(std::string_view rule, std::string_view detail = {}) {
  std::string message(rule);
  message += detail;
  return invalidArgument(std::move(message));
}

Error refuseUnsupported(std::string_view rule, std::string_view detail) {
  std::string message(rule);
  message += detail;
  return unsupported(std::move(message));
}

// Outside text in an error message: quoted, printable ASCII only, at most kMaxQuoted bytes,
// so a hostile token cannot forge log lines or flood them.
std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < std::min(s.size(), kMaxQuoted); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (s.size() > kMaxQuoted) {
    out += "...";
  }
  out += '"';
  return out;
}

int base64urlValue(unsigned char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '-') {
    return 62;
  }
  if (c == '_') {
    return 63;
  }
  return -1;
}

// Never throws: parse errors (including invalid UTF-8 and trailing text) give nullopt.
std::optional<Json> parseJson(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return std::nullopt;
  }
  return j;
}

const Json* member(const Json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

// RFC 1123 label, as Kubernetes namespaces are: [a-z0-9-], 1-63 bytes, alphanumeric ends.
bool isDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// RFC 1123 subdomain, as Kubernetes service account names are: labels joined by dots, at
// most 253 bytes.
bool isDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  for (;;) {
    const std::size_t dot = s.find('.');
    if (!isDnsLabel(s.substr(0, dot))) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    s.remove_prefix(dot + 1);
  }
}

// RFC 7519 §2: a NumericDate is a JSON number of seconds, possibly not an integer.
std::optional<std::int64_t> numericDate(const Json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    return u > static_cast<std::uint64_t>(kMaxTime) ? kMaxTime : static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) {
    return std::clamp<std::int64_t>(v.get<std::int64_t>(), 0, kMaxTime);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(std::floor(std::clamp(d, 0.0, static_cast<double>(kMaxTime))));
  }
  return std::nullopt;
}

// ---- JWKS ----

// A string member of a key: "" when absent and optional.
Result<std::string> keyString(const Json& key, const char* name, bool required,
                              const std::string& where) {
  const Json* v = member(key, name);
  if (v == nullptr) {
    if (required) {
      return refuse(kJwksMissingMember, where + "." + name);
    }
    return std::string();
  }
  if (!v->is_string()) {
    return refuse(kJwksMemberNotString, where + "." + name);
  }
  return v->get<std::string>();
}

// A required base64url member of a key, decoded; never empty.
Result<std::string> keyBytes(const Json& key, const char* name, const std::string& where) {
  auto text = keyString(key, name, true, where);
  if (!text.ok()) {
    return text.error();
  }
  auto bytes = decodeBase64url(*text);
  if (!bytes.ok() || bytes->empty()) {
    return refuse(kJwksBadBase64url, where + "." + name);
  }
  return std::move(*bytes);
}

Result<EvpPkeyPtr> publicKeyFromParams(const char* type, OSSL_PARAM_BLD* bld,
                                       const std::string& where) {
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return refuse(kJwksBadKey, where);
  }
  EvpPkeyPtr key(raw);
  // RSA: n odd and not prime, e odd and above 2^16 (SP 800-56B); EC: the point is on the curve
  // and not the identity.
  EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return refuse(kJwksBadKey, where);
  }
  return key;
}

Result<EvpPkeyPtr> rsaKey(const Json& key, const std::string& where) {
  auto n = keyBytes(key, "n", where);
  if (!n.ok()) {
    return n.error();
  }
  auto e = keyBytes(key, "e", where);
  if (!e.ok()) {
    return e.error();
  }
  // Sizes are checked before OpenSSL sees the key: verifying with a huge modulus or exponent
  // costs CPU an attacker who plants a JWKS should not get.
  const auto* n_data = reinterpret_cast<const unsigned char*>(n->data());
  BignumPtr n_bn(BN_bin2bn(n_data, static_cast<int>(n->size()), nullptr));
  const int bits = BN_num_bits(n_bn.get());
  if (bits < kJwksMinRsaBits) {
    return refuse(kJwksRsaTooSmall, where + " has " + std::to_string(bits));
  }
  if (bits > kJwksMaxRsaBits) {
    return refuse(kJwksRsaTooLarge, where + " has " + std::to_string(bits));
  }
  if (e->size() > kMaxRsaExponentBytes) {
    return refuse(kJwksBadKey, where + ".e is longer than 64 bits");
  }
  const auto* e_data = reinterpret_cast<const unsigned char*>(e->data());
  BignumPtr e_bn(BN_bin2bn(e_data, static_cast<int>(e->size()), nullptr));
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr || n_bn == nullptr || e_bn == nullptr ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1) {
    ERR_clear_error();
    return refuse(kJwksBadKey, where);
  }
  return publicKeyFromParams("RSA", bld.get(), where);
}

Result<EvpPkeyPtr> ecKey(const Json& key, const std::string& where) {
  auto crv = keyString(key, "crv", true, where);
  if (!crv.ok()) {
    return crv.error();
  }
  if (*crv != "P-256") {
    return refuseUnsupported(kJwksUnsupportedCurve, where + " crv " + printable(*crv));
  }
  auto x = keyBytes(key, "x", where);
  if (!x.ok()) {
    return x.error();
  }
  auto y = keyBytes(key, "y", where);
  if (!y.ok()) {
    return y.error();
  }
  // "The length of this octet string MUST be the full size of a coordinate for the curve".
  if (x->size() != kP256CoordinateBytes) {
    return refuse(kJwksBadCoordinate, where + ".x");
  }
  if (y->size() != kP256CoordinateBytes) {
    return refuse(kJwksBadCoordinate, where + ".y");
  }
  const std::string point = "\x04" + *x + *y;  // SEC 1 uncompressed
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
                                      0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    ERR_clear_error();
    return refuse(kJwksBadKey, where);
  }
  return publicKeyFromParams("EC", bld.get(), where);
}

Result<Jwk> parseJwk(const Json& key, std::size_t index) {
  const std::string where = "keys[" + std::to_string(index) + "]";
  if (!key.is_object()) {
    return refuse(kJwksKeyNotObject, where);
  }
  Jwk out;
  auto kty = keyString(key, "kty", true, where);
  if (!kty.ok()) {
    return kty.error();
  }
  const std::pair<const char*, std::string*> optional_members[] = {
      {"kid", &out.kid}, {"alg", &out.alg}, {"use", &out.use}};
  for (const auto& [name, field] : optional_members) {
    auto value = keyString(key, name, false, where);
    if (!value.ok()) {
      return value.error();
    }
    *field = std::move(*value);
  }
  if (member(key, "d") != nullptr || member(key, "p") != nullptr) {
    return refuse(kJwksPrivateKey, where);
  }
  if (!out.use.empty() && out.use != "sig") {
    return refuseUnsupported(kJwksUnsupportedUse, where + " use " + printable(out.use));
  }
  Result<EvpPkeyPtr> pkey = Error{};
  if (*kty == "RSA") {
    out.type = JwkType::kRsa;
    if (!out.alg.empty() && out.alg != "RS256") {
      return refuseUnsupported(kJwksUnsupportedAlg, where + " alg " + printable(out.alg));
    }
    pkey = rsaKey(key, where);
  } else if (*kty == "EC") {
    out.type = JwkType::kEcP256;
    if (!out.alg.empty() && out.alg != "ES256") {
      return refuseUnsupported(kJwksUnsupportedAlg, where + " alg " + printable(out.alg));
    }
    pkey = ecKey(key, where);
  } else {
    return refuseUnsupported(kJwksUnsupportedKty, where + " kty " + printable(*kty));
  }
  if (!pkey.ok()) {
    return pkey.error();
  }
  out.key = std::move(*pkey);
  return out;
}

// ---- JWS ----

enum class Alg { kRs256, kEs256 };

JwkType keyTypeFor(Alg alg) { return alg == Alg::kRs256 ? JwkType::kRsa : JwkType::kEcP256; }
const char* algName(Alg alg) { return alg == Alg::kRs256 ? "RS256" : "ES256"; }

// RFC 7518 §3.4: the JWS signature is R || S, 32 bytes each; EVP wants a DER ECDSA-Sig-Value.
std::optional<std::string> es256ToDer(std::string_view raw) {
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  constexpr int kHalf = static_cast<int>(kP256CoordinateBytes);
  BIGNUM* r = BN_bin2bn(p, kHalf, nullptr);
  BIGNUM* s = BN_bin2bn(p + kHalf, kHalf, nullptr);
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) {
    return std::nullopt;
  }
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

// `signature` in EVP's form: PKCS #1 v1.5 bytes for RS256, DER for ES256.
bool verifiesWith(EVP_PKEY* key, std::string_view signing_input, std::string_view signature) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx != nullptr && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
          reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
  ERR_clear_error();  // a failed verification queues errors nobody will read
  return ok;
}

Status verifySignature(Alg alg, const std::vector<const Jwk*>& candidates,
                       std::string_view signing_input, std::string_view signature) {
  std::string der;
  if (alg == Alg::kEs256) {
    if (signature.size() != kEs256SignatureBytes) {
      return refuse(kSaTokenBadSignatureLength,
                    "ES256 wants 64 bytes, got " + std::to_string(signature.size()));
    }
    auto converted = es256ToDer(signature);
    if (!converted) {
      return refuse(kSaTokenBadSignature);
    }
    der = std::move(*converted);
  }
  bool any_size_matched = false;
  for (const Jwk* jwk : candidates) {
    if (alg == Alg::kRs256) {
      // RFC 8017 §8.2.2: "If the length of the signature S is not k octets, output
      // 'invalid signature'" (OpenSSL would accept a shorter S).
      if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(jwk->key.get()))) {
        continue;
      }
      any_size_matched = true;
      if (verifiesWith(jwk->key.get(), signing_input, signature)) {
        return Ok{};
      }
    } else {
      any_size_matched = true;
      if (verifiesWith(jwk->key.get(), signing_input, der)) {
        return Ok{};
      }
    }
  }
  if (!any_size_matched) {
    return refuse(kSaTokenBadSignatureLength,
                  "RS256 got " + std::to_string(signature.size()) + " bytes, no key has that size");
  }
  return refuse(kSaTokenBadSignature);
}

// ---- claims ----

Status checkTimes(const Json& claims, std::int64_t now, std::int64_t leeway, std::int64_t* expiry) {
  const Json* exp = member(claims, "exp");
  if (exp == nullptr) {
    return refuse(kSaTokenNoExp);
  }
  std::optional<std::int64_t> exp_time = numericDate(*exp);
  if (!exp_time) {
    return refuse(kSaTokenClaimType, "exp");
  }
  // RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time".
  if (now - leeway >= *exp_time) {
    return refuse(kSaTokenExpired, common::formatTime(static_cast<std::time_t>(*exp_time)));
  }
  *expiry = *exp_time;
  if (const Json* nbf = member(claims, "nbf"); nbf != nullptr) {
    std::optional<std::int64_t> t = numericDate(*nbf);
    if (!t) {
      return refuse(kSaTokenClaimType, "nbf");
    }
    // §4.1.5: "the current date/time MUST be after or equal to the not-before date/time".
    if (now + leeway < *t) {
      return refuse(kSaTokenNotYetValid, common::formatTime(static_cast<std::time_t>(*t)));
    }
  }
  if (const Json* iat = member(claims, "iat"); iat != nullptr) {
    std::optional<std::int64_t> t = numericDate(*iat);
    if (!t) {
      return refuse(kSaTokenClaimType, "iat");
    }
    if (*t > now + leeway) {
      return refuse(kSaTokenIssuedInFuture, common::formatTime(static_cast<std::time_t>(*t)));
    }
  }
  return Ok{};
}

Status checkIssuer(const Json& claims, const std::string& issuer) {
  const Json* iss = member(claims, "iss");
  if (iss != nullptr && !iss->is_string()) {
    return refuse(kSaTokenClaimType, "iss");
  }
  if (issuer.empty()) {
    return Ok{};
  }
  if (iss == nullptr) {
    return refuse(kSaTokenNoIssuer);
  }
  if (iss->get_ref<const std::string&>() != issuer) {
    return refuse(kSaTokenWrongIssuer, printable(iss->get_ref<const std::string&>()));
  }
  return Ok{};
}

// RFC 7519 §4.1.3: aud is one string or an array of strings, and the token "MUST be
// rejected" unless one of them identifies us.
Status checkAudience(const Json& claims, const std::string& audience) {
  const Json* aud = member(claims, "aud");
  if (aud == nullptr) {
    return refuse(kSaTokenNoAudience);
  }
  bool found = false;
  if (aud->is_string()) {
    found = aud->get_ref<const std::string&>() == audience;
  } else if (aud->is_array()) {
    for (const Json& a : *aud) {
      if (!a.is_string()) {
        return refuse(kSaTokenClaimType, "aud");
      }
      found = found || a.get_ref<const std::string&>() == audience;
    }
  } else {
    return refuse(kSaTokenClaimType, "aud");
  }
  if (!found) {
    return refuse(kSaTokenWrongAudience, printable(audience));
  }
  return Ok{};
}

// A string inside the kubernetes.io claim ("" when absent).
Result<std::string> k8sString(const Json* object, const char* name, const std::string& path) {
  if (object == nullptr) {
    return std::string();
  }
  const Json* v = member(*object, name);
  if (v == nullptr) {
    return std::string();
  }
  if (!v->is_string()) {
    return refuse(kSaTokenClaimType, path);
  }
  return v->get<std::string>();
}

// An object inside the kubernetes.io claim (null when absent).
Result<const Json*> k8sObject(const Json* object, const char* name, const std::string& path) {
  if (object == nullptr) {
    return static_cast<const Json*>(nullptr);
  }
  const Json* v = member(*object, name);
  if (v != nullptr && !v->is_object()) {
    return refuse(kSaTokenClaimType, path);
  }
  return v;
}

Status readSubject(const Json& claims, SaIdentity* id) {
  const Json* sub = member(claims, "sub");
  if (sub == nullptr) {
    return refuse(kSaTokenNoSubject);
  }
  if (!sub->is_string()) {
    return refuse(kSaTokenClaimType, "sub");
  }
  const std::string& text = sub->get_ref<const std::string&>();
  std::string_view rest = text;
  const std::size_t colon = rest.find(':', kSubjectPrefix.size());
  if (!rest.starts_with(kSubjectPrefix) || colon == std::string_view::npos ||
      !isDnsLabel(rest.substr(kSubjectPrefix.size(), colon - kSubjectPrefix.size())) ||
      !isDnsSubdomain(rest.substr(colon + 1))) {
    return refuse(kSaTokenBadSubject, printable(text));
  }
  id->ns = std::string(rest.substr(kSubjectPrefix.size(), colon - kSubjectPrefix.size()));
  id->service_account = std::string(rest.substr(colon + 1));

  // Projected tokens also carry {"kubernetes.io": {"namespace", "serviceaccount": {"name",
  // "uid"}, "pod": {"name", "uid"}}}; what is there must name the same account as sub.
  const Json* k8s = member(claims, "kubernetes.io");
  if (k8s != nullptr && !k8s->is_object()) {
    return refuse(kSaTokenClaimType, "kubernetes.io");
  }
  auto ns = k8sString(k8s, "namespace", "kubernetes.io.namespace");
  if (!ns.ok()) {
    return ns.error();
  }
  if (!ns->empty() && *ns != id->ns) {
    return refuse(kSaTokenClaimsDisagree, "kubernetes.io.namespace " + printable(*ns));
  }
  auto sa = k8sObject(k8s, "serviceaccount", "kubernetes.io.serviceaccount");
  if (!sa.ok()) {
    return sa.error();
  }
  auto sa_name = k8sString(*sa, "name", "kubernetes.io.serviceaccount.name");
  if (!sa_name.ok()) {
    return sa_name.error();
  }
  if (!sa_name->empty() && *sa_name != id->service_account) {
    return refuse(kSaTokenClaimsDisagree,
                  "kubernetes.io.serviceaccount.name " + printable(*sa_name));
  }
  auto pod = k8sObject(k8s, "pod", "kubernetes.io.pod");
  if (!pod.ok()) {
    return pod.error();
  }
  auto pod_name = k8sString(*pod, "name", "kubernetes.io.pod.name");
  if (!pod_name.ok()) {
    return pod_name.error();
  }
  auto pod_uid = k8sString(*pod, "uid", "kubernetes.io.pod.uid");
  if (!pod_uid.ok()) {
    return pod_uid.error();
  }
  id->pod_name = std::move(*pod_name);
  id->pod_uid = std::move(*pod_uid);
  return Ok{};
}

}  // namespace

std::string_view reasonName(SaTokenReason reason) {
  switch (reason) {
    case SaTokenReason::kMalformed:
      return "malformed";
    case SaTokenReason::kUnsupportedAlg:
      return "unsupported_alg";
    case SaTokenReason::kUnknownKey:
      return "unknown_key";
    case SaTokenReason::kBadSignature:
      return "bad_signature";
    case SaTokenReason::kExpired:
      return "expired";
    case SaTokenReason::kNotYetValid:
      return "not_yet_valid";
    case SaTokenReason::kWrongAudience:
      return "wrong_audience";
    case SaTokenReason::kWrongIssuer:
      return "wrong_issuer";
    case SaTokenReason::kBadSubject:
      return "bad_subject";
    case SaTokenReason::kMisconfigured:
      return "misconfigured";
  }
  return "malformed";
}

SaTokenReason saTokenReason(const Error& error) {
  for (const ReasonRule& rule : kReasonRules) {
    if (std::string_view(error.message).starts_with(rule.message)) {
      return rule.reason;
    }
  }
  return SaTokenReason::kMalformed;
}

Result<std::string> decodeBase64url(std::string_view text) {
  const Error bad = invalidArgument("base64url: not unpadded base64url");
  if (text.size() % 4 == 1) {
    return bad;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : text) {
    const int v = base64urlValue(static_cast<unsigned char>(ch));
    if (v < 0) {
      return bad;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
      acc &= (1u << bits) - 1;
    }
  }
  // RFC 4648 §3.5: canonical encodings leave the pad bits zero.
  if (acc != 0) {
    return bad;
  }
  return out;
}

Result<Jwks> Jwks::parse(std::string_view json) {
  if (json.size() > kJwksMaxLength) {
    return refuse(kJwksTooLarge);
  }
  std::optional<Json> doc = parseJson(json);
  if (!doc || !doc->is_object()) {
    return refuse(kJwksNotJson);
  }
  const Json* keys = member(*doc, "keys");
  if (keys == nullptr || !keys->is_array() || keys->empty()) {
    return refuse(kJwksNoKeys);
  }
  if (keys->size() > kJwksMaxKeys) {
    return refuse(kJwksTooManyKeys);
  }
  Jwks out;
  std::set<std::string, std::less<>> kids;
  for (std::size_t i = 0; i < keys->size(); ++i) {
    auto key = parseJwk((*keys)[i], i);
    if (!key.ok()) {
      return key.error();
    }
    if (!key->kid.empty() && !kids.insert(key->kid).second) {
      return refuse(kJwksDuplicateKid, printable(key->kid));
    }
    out.keys_.push_back(std::move(*key));
  }
  return out;
}

Result<Jwks> Jwks::load(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kJwksMaxLength) {
    return refuse(path + ": ", kJwksTooLarge);
  }
  auto text = common::readFile(path);  // its errors name the path
  if (!text.ok()) {
    return text.error();
  }
  auto jwks = parse(*text);
  if (!jwks.ok()) {
    return Error{jwks.error().code, path + ": " + jwks.error().message};
  }
  return jwks;
}

const Jwk* Jwks::find(std::string_view kid) const {
  for (const Jwk& key : keys_) {
    if (!key.kid.empty() && key.kid == kid) {
      return &key;
    }
  }
  return nullptr;
}

Result<policy::SpiffeId> SaIdentity::spiffeId(std::string_view trust_domain) const {
  // Validated alone first: a trust domain holding '/' would otherwise parse as a longer path.
  if (Status s = policy::SpiffeId::validateTrustDomain(trust_domain); !s.ok()) {
    return s.error();
  }
  std::string uri(policy::kSpiffeScheme);
  uri += trust_domain;
  uri += "/ns/" + ns + "/sa/" + service_account;
  return policy::SpiffeId::parse(uri);
}

Result<SaIdentity> verifySaToken(std::string_view token, const Jwks& jwks,
                                 const SaTokenOptions& options) {
  if (options.audience.empty()) {
    return refuse(kSaTokenNoAudienceConfigured);
  }
  if (options.leeway.count() < 0) {
    return refuse(kSaTokenNegativeLeeway);
  }
  if (token.size() > kSaTokenMaxLength) {
    return refuse(kSaTokenTooLong);
  }
  // RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature). Five
  // parts would be a JWE, which is not accepted either.
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return refuse(kSaTokenNotCompact);
  }
  const std::string_view signing_input = token.substr(0, dot2);
  auto header_json = decodeBase64url(token.substr(0, dot1));
  if (!header_json.ok()) {
    return refuse(kSaTokenBadBase64url, "header");
  }
  auto payload_json = decodeBase64url(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_json.ok()) {
    return refuse(kSaTokenBadBase64url, "payload");
  }
  auto signature = decodeBase64url(token.substr(dot2 + 1));
  if (!signature.ok()) {
    return refuse(kSaTokenBadBase64url, "signature");
  }

  std::optional<Json> header = parseJson(*header_json);
  if (!header || !header->is_object()) {
    return refuse(kSaTokenBadHeader);
  }
  const Json* alg_member = member(*header, "alg");
  if (alg_member == nullptr || !alg_member->is_string()) {
    return refuse(kSaTokenHeaderMember, "alg");
  }
  const Json* kid_member = member(*header, "kid");
  if (kid_member != nullptr && !kid_member->is_string()) {
    return refuse(kSaTokenHeaderMember, "kid");
  }
  // RFC 7515 §4.1.11: extensions listed in crit that are not understood make the JWS invalid.
  if (member(*header, "crit") != nullptr) {
    return refuse(kSaTokenCritical);
  }
  const std::string& alg_text = alg_member->get_ref<const std::string&>();
  Alg alg;
  if (alg_text == "RS256") {
    alg = Alg::kRs256;
  } else if (alg_text == "ES256") {
    alg = Alg::kEs256;
  } else {
    return refuse(kSaTokenUnsupportedAlg, printable(alg_text));
  }

  // A key verifies only the alg of its type and, when it names one, its own alg.
  const auto fits = [alg](const Jwk& key) {
    return key.type == keyTypeFor(alg) && (key.alg.empty() || key.alg == algName(alg));
  };
  std::vector<const Jwk*> candidates;
  if (kid_member != nullptr) {
    const std::string& kid = kid_member->get_ref<const std::string&>();
    const Jwk* key = jwks.find(kid);
    if (key == nullptr) {
      return refuse(kSaTokenUnknownKid, printable(kid));
    }
    if (!fits(*key)) {
      return refuse(kSaTokenKeyTypeMismatch,
                    "kid " + printable(kid) + " is " +
                        (key->type == JwkType::kRsa ? "an RSA key" : "an EC key") + ", alg " +
                        algName(alg));
    }
    candidates.push_back(key);
  } else {
    for (const Jwk& key : jwks.keys()) {
      if (fits(key)) {
        candidates.push_back(&key);
      }
    }
    if (candidates.empty()) {
      return refuse(kSaTokenNoKeyForAlg, algName(alg));
    }
  }
  if (Status s = verifySignature(alg, candidates, signing_input, *signature); !s.ok()) {
    return s.error();
  }

  // The claims are read only once the signature holds.
  std::optional<Json> claims = parseJson(*payload_json);
  if (!claims || !claims->is_object()) {
    return refuse(kSaTokenBadClaims);
  }
  const std::int64_t now =
      std::clamp<std::int64_t>(options.now != 0 ? options.now : std::time(nullptr), 0, kMaxTime);
  const std::int64_t leeway = std::min<std::int64_t>(options.leeway.count(), kMaxTime);
  std::int64_t expiry = 0;
  if (Status s = checkTimes(*claims, now, leeway, &expiry); !s.ok()) {
    return s.error();
  }
  if (Status s = checkIssuer(*claims, options.issuer); !s.ok()) {
    return s.error();
  }
  if (Status s = checkAudience(*claims, options.audience); !s.ok()) {
    return s.error();
  }
  SaIdentity id;
  if (Status s = readSubject(*claims, &id); !s.ok()) {
    return s.error();
  }
  id.expiry = static_cast<std::time_t>(expiry);
  return id;
}

}  // namespace palisade::cp
