#include "control-plane/sa_token.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// Offline verification of Kubernetes projected service-account tokens. Keys are made here
// with OpenSSL (RSA 2048 and P-256), published as a JWKS the way the API server does
// (/openid/v1/jwks) and tokens are minted by a small test-only JWS signer, so every byte of a
// token is under the test's control. Time is test_certs::kNow throughout.

namespace palisade::cp {
namespace {

using common::BignumPtr;
using common::EvpPkeyPtr;
using common::test_certs::kNow;
using Json = nlohmann::json;

constexpr const char* kAudience = "palisade";
constexpr const char* kIssuer = "https://kubernetes.default.svc.cluster.local";

std::string str(std::string_view s) { return std::string(s); }

// ---- a test-only JWT minter ----

std::string b64url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) {
    out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  }
  return out;
}

std::string bnParam(EVP_PKEY* key, const char* name, int pad = 0) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    ADD_FAILURE() << "no parameter " << name;
    return "";
  }
  BignumPtr bn(raw);
  std::string out(pad != 0 ? pad : BN_num_bytes(bn.get()), '\0');
  BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()),
               static_cast<int>(out.size()));
  return out;
}

// The public JWK of `key`, as the API server publishes it.
Json jwkOf(EVP_PKEY* key, const std::string& kid) {
  Json jwk;
  if (EVP_PKEY_is_a(key, "RSA")) {
    jwk = {{"kty", "RSA"},
           {"alg", "RS256"},
           {"use", "sig"},
           {"n", b64url(bnParam(key, OSSL_PKEY_PARAM_RSA_N))},
           {"e", b64url(bnParam(key, OSSL_PKEY_PARAM_RSA_E))}};
  } else {
    jwk = {{"kty", "EC"},
           {"crv", "P-256"},
           {"alg", "ES256"},
           {"use", "sig"},
           {"x", b64url(bnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
           {"y", b64url(bnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
  }
  if (!kid.empty()) {
    jwk["kid"] = kid;
  }
  return jwk;
}

// A JWS signature over `input`: PKCS #1 v1.5 for RSA keys, raw R || S for EC keys.
std::string signRaw(EVP_PKEY* key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, common::Deleter<EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1) {
    ADD_FAILURE() << "cannot sign";
    return "";
  }
  std::string sig(len, '\0');
  EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data, input.size());
  sig.resize(len);
  if (!EVP_PKEY_is_a(key, "EC")) {
    return sig;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  std::unique_ptr<ECDSA_SIG, common::Deleter<ECDSA_SIG_free>> ecdsa(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa.get()), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa.get()), reinterpret_cast<unsigned char*>(raw.data()) + 32,
               32);
  return raw;
}

// The DER signature OpenSSL makes, which JWS does not use for ES256.
std::string signDer(EVP_PKEY* key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, common::Deleter<EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data, input.size());
  sig.resize(len);
  return sig;
}

// header.payload, each the base64url of the given text.
std::string signingInput(std::string_view header, std::string_view payload) {
  return b64url(header) + "." + b64url(payload);
}

// A token of `header` and `payload` texts, signed by `key`.
std::string mintText(std::string_view header, std::string_view payload, EVP_PKEY* key) {
  const std::string input = signingInput(header, payload);
  return input + "." + b64url(signRaw(key, input));
}

std::string mint(const Json& header, const Json& claims, EVP_PKEY* key) {
  return mintText(header.dump(), claims.dump(), key);
}

Json header(const std::string& alg, const std::string& kid) {
  Json h = {{"alg", alg}, {"typ", "JWT"}};
  if (!kid.empty()) {
    h["kid"] = kid;
  }
  return h;
}

// What the API server puts in a pod's projected token.
Json podClaims() {
  return {
      {"aud", {kAudience}},
      {"exp", kNow + 3600},
      {"iat", kNow - 60},
      {"nbf", kNow - 60},
      {"iss", kIssuer},
      {"sub", "system:serviceaccount:shop:web"},
      {"kubernetes.io",
       {{"namespace", "shop"},
        {"pod", {{"name", "web-5d8f9c-x2x7p"}, {"uid", "8c7a3f0e-1b2c-4d5e-8f90-a1b2c3d4e5f6"}}},
        {"serviceaccount", {{"name", "web"}, {"uid", "0d1e2f30-4152-6374-8596-a7b8c9d0e1f2"}}}}}};
}

SaTokenOptions options() {
  SaTokenOptions o;
  o.audience = kAudience;
  o.issuer = kIssuer;
  o.now = kNow;
  return o;
}

Jwks parseJwks(const Json& doc) {
  auto jwks = Jwks::parse(doc.dump());
  if (!jwks.ok()) {
    ADD_FAILURE() << jwks.error().message;
    return Jwks();
  }
  return std::move(*jwks);
}

void expectRefused(const Result<SaIdentity>& r, const std::string& message,
                   std::string_view reason) {
  ASSERT_FALSE(r.ok()) << "accepted";
  EXPECT_EQ(r.error().message, message);
  EXPECT_EQ(reasonName(saTokenReason(r.error())), reason);
}

class SaTokenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = common::test_certs::rsaKey(2048).release();
    rsa2_ = common::test_certs::rsaKey(2048).release();
    ec_ = common::test_certs::p256Key().release();
    ec2_ = common::test_certs::p256Key().release();
  }
  static void TearDownTestSuite() {
    for (EVP_PKEY* k : {rsa_, rsa2_, ec_, ec2_}) {
      EVP_PKEY_free(k);
    }
  }

  // rsa_ as "rsa-1", ec_ as "ec-1".
  static Jwks clusterJwks() {
    return parseJwks({{"keys", {jwkOf(rsa_, "rsa-1"), jwkOf(ec_, "ec-1")}}});
  }

  struct Signer {
    const char* alg;
    const char* kid;
    EVP_PKEY* key;
  };
  // The keys of clusterJwks() with their alg and kid.
  static std::vector<Signer> signers() {
    return {{"RS256", "rsa-1", rsa_}, {"ES256", "ec-1", ec_}};
  }

  static EVP_PKEY* rsa_;
  static EVP_PKEY* rsa2_;
  static EVP_PKEY* ec_;
  static EVP_PKEY* ec2_;
};
EVP_PKEY* SaTokenTest::rsa_ = nullptr;
EVP_PKEY* SaTokenTest::rsa2_ = nullptr;
EVP_PKEY* SaTokenTest::ec_ = nullptr;
EVP_PKEY* SaTokenTest::ec2_ = nullptr;

// ---- accepted tokens ----

TEST_F(SaTokenTest, ValidRs256) {
  auto id =
      verifySaToken(mint(header("RS256", "rsa-1"), podClaims(), rsa_), clusterJwks(), options());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->ns, "shop");
  EXPECT_EQ(id->service_account, "web");
  EXPECT_EQ(id->pod_name, "web-5d8f9c-x2x7p");
  EXPECT_EQ(id->pod_uid, "8c7a3f0e-1b2c-4d5e-8f90-a1b2c3d4e5f6");
  EXPECT_EQ(id->expiry, kNow + 3600);
  auto spiffe = id->spiffeId("cluster.local");
  ASSERT_TRUE(spiffe.ok()) << spiffe.error().message;
  EXPECT_EQ(spiffe->uri(), "spiffe://cluster.local/ns/shop/sa/web");
}

TEST_F(SaTokenTest, ValidEs256) {
  auto id =
      verifySaToken(mint(header("ES256", "ec-1"), podClaims(), ec_), clusterJwks(), options());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->ns, "shop");
  EXPECT_EQ(id->service_account, "web");
}

TEST_F(SaTokenTest, KidSelectsTheKey) {
  const Jwks jwks = parseJwks({{"keys", {jwkOf(rsa_, "a"), jwkOf(rsa2_, "b")}}});
  EXPECT_TRUE(verifySaToken(mint(header("RS256", "b"), podClaims(), rsa2_), jwks, options()).ok());
  EXPECT_TRUE(verifySaToken(mint(header("RS256", "a"), podClaims(), rsa_), jwks, options()).ok());
  // The key kid names is the only one tried, even when another key would verify.
  expectRefused(verifySaToken(mint(header("RS256", "a"), podClaims(), rsa2_), jwks, options()),
                str(kSaTokenBadSignature), "bad_signature");
}

TEST_F(SaTokenTest, WithoutKidEveryKeyOfTheAlgsTypeIsTried) {
  const Jwks jwks =
      parseJwks({{"keys", {jwkOf(rsa_, ""), jwkOf(ec_, ""), jwkOf(rsa2_, ""), jwkOf(ec2_, "")}}});
  EXPECT_TRUE(verifySaToken(mint(header("RS256", ""), podClaims(), rsa2_), jwks, options()).ok());
  EXPECT_TRUE(verifySaToken(mint(header("ES256", ""), podClaims(), ec2_), jwks, options()).ok());
  const EvpPkeyPtr stranger = common::test_certs::p256Key();
  expectRefused(
      verifySaToken(mint(header("ES256", ""), podClaims(), stranger.get()), jwks, options()),
      str(kSaTokenBadSignature), "bad_signature");
}

TEST_F(SaTokenTest, UnknownKid) {
  expectRefused(
      verifySaToken(mint(header("RS256", "rsa-2"), podClaims(), rsa_), clusterJwks(), options()),
      str(kSaTokenUnknownKid) + "\"rsa-2\"", "unknown_key");
  // An empty kid names no key either.
  Json empty_kid = header("RS256", "");
  empty_kid["kid"] = "";
  expectRefused(verifySaToken(mint(empty_kid, podClaims(), rsa_), clusterJwks(), options()),
                str(kSaTokenUnknownKid) + "\"\"", "unknown_key");
}

// ---- claims ----

struct ClaimsCase {
  std::string name;
  std::function<void(Json&)> edit;
  std::string want_error;  // "" when the token is accepted
  std::string want_reason;
};

TEST_F(SaTokenTest, Claims) {
  const std::string wrong_aud = str(kSaTokenWrongAudience) + "\"palisade\"";
  const auto bad_sub = [](const std::string& sub) {
    return str(kSaTokenBadSubject) + "\"" + sub + "\"";
  };
  const auto set_sub = [](const std::string& sub) {
    return [sub](Json& c) {
      c["sub"] = sub;
      c.erase("kubernetes.io");
    };
  };
  const std::vector<ClaimsCase> cases = {
      {"as issued", [](Json&) {}, "", ""},
      // exp, with the default leeway of 60 s.
      {"expired beyond leeway", [](Json& c) { c["exp"] = kNow - 61; },
       str(kSaTokenExpired) + "2027-01-15T07:58:59Z", "expired"},
      {"expired exactly at now minus leeway", [](Json& c) { c["exp"] = kNow - 60; },
       str(kSaTokenExpired) + "2027-01-15T07:59:00Z", "expired"},
      {"expired within leeway", [](Json& c) { c["exp"] = kNow - 59; }, "", ""},
      {"exp missing", [](Json& c) { c.erase("exp"); }, str(kSaTokenNoExp), "malformed"},
      {"exp a string", [](Json& c) { c["exp"] = "2030-01-01"; }, str(kSaTokenClaimType) + "exp",
       "malformed"},
      {"exp a bool", [](Json& c) { c["exp"] = true; }, str(kSaTokenClaimType) + "exp", "malformed"},
      {"exp fractional", [](Json& c) { c["exp"] = kNow + 0.5; }, "", ""},
      {"exp negative", [](Json& c) { c["exp"] = -1; },
       str(kSaTokenExpired) + "1970-01-01T00:00:00Z", "expired"},
      {"exp huge", [](Json& c) { c["exp"] = 1e300; }, "", ""},
      {"exp the largest uint64", [](Json& c) { c["exp"] = 18446744073709551615ull; }, "", ""},
      // nbf and iat.
      {"nbf in the future", [](Json& c) { c["nbf"] = kNow + 61; },
       str(kSaTokenNotYetValid) + "2027-01-15T08:01:01Z", "not_yet_valid"},
      {"nbf within leeway", [](Json& c) { c["nbf"] = kNow + 60; }, "", ""},
      {"nbf absent", [](Json& c) { c.erase("nbf"); }, "", ""},
      {"nbf a string", [](Json& c) { c["nbf"] = "x"; }, str(kSaTokenClaimType) + "nbf",
       "malformed"},
      {"iat in the future", [](Json& c) { c["iat"] = kNow + 3600; },
       str(kSaTokenIssuedInFuture) + "2027-01-15T09:00:00Z", "not_yet_valid"},
      {"iat absent", [](Json& c) { c.erase("iat"); }, "", ""},
      {"iat null", [](Json& c) { c["iat"] = nullptr; }, str(kSaTokenClaimType) + "iat",
       "malformed"},
      // aud.
      {"aud a string", [](Json& c) { c["aud"] = kAudience; }, "", ""},
      {"aud an array naming us among others",
       [](Json& c) {
         c["aud"] = {"https://kubernetes.default.svc", kAudience};
       },
       "", ""},
      {"aud another audience", [](Json& c) { c["aud"] = {"https://kubernetes.default.svc"}; },
       wrong_aud, "wrong_audience"},
      {"aud a string of another audience", [](Json& c) { c["aud"] = "vault"; }, wrong_aud,
       "wrong_audience"},
      {"aud a prefix of ours", [](Json& c) { c["aud"] = "palisad"; }, wrong_aud, "wrong_audience"},
      {"aud empty array", [](Json& c) { c["aud"] = Json::array(); }, wrong_aud, "wrong_audience"},
      {"aud missing", [](Json& c) { c.erase("aud"); }, str(kSaTokenNoAudience), "wrong_audience"},
      {"aud a number", [](Json& c) { c["aud"] = 1; }, str(kSaTokenClaimType) + "aud", "malformed"},
      {"aud array holding a number",
       [](Json& c) {
         c["aud"] = {kAudience, 1};
       },
       str(kSaTokenClaimType) + "aud", "malformed"},
      // iss.
      {"iss another issuer", [](Json& c) { c["iss"] = "https://evil.example"; },
       str(kSaTokenWrongIssuer) + "\"https://evil.example\"", "wrong_issuer"},
      {"iss missing", [](Json& c) { c.erase("iss"); }, str(kSaTokenNoIssuer), "wrong_issuer"},
      {"iss a number", [](Json& c) { c["iss"] = 7; }, str(kSaTokenClaimType) + "iss", "malformed"},
      // sub.
      {"sub missing", [](Json& c) { c.erase("sub"); }, str(kSaTokenNoSubject), "bad_subject"},
      {"sub an object", [](Json& c) { c["sub"] = Json::object(); }, str(kSaTokenClaimType) + "sub",
       "malformed"},
      {"sub a user", set_sub("alice@example.com"), bad_sub("alice@example.com"), "bad_subject"},
      {"sub empty namespace", set_sub("system:serviceaccount::web"),
       bad_sub("system:serviceaccount::web"), "bad_subject"},
      {"sub empty name", set_sub("system:serviceaccount:shop:"),
       bad_sub("system:serviceaccount:shop:"), "bad_subject"},
      {"sub without name", set_sub("system:serviceaccount:shop"),
       bad_sub("system:serviceaccount:shop"), "bad_subject"},
      {"sub with an extra part", set_sub("system:serviceaccount:shop:web:x"),
       bad_sub("system:serviceaccount:shop:web:x"), "bad_subject"},
      {"sub uppercase namespace", set_sub("system:serviceaccount:Shop:web"),
       bad_sub("system:serviceaccount:Shop:web"), "bad_subject"},
      {"sub namespace with a dot", set_sub("system:serviceaccount:sh.op:web"),
       bad_sub("system:serviceaccount:sh.op:web"), "bad_subject"},
      {"sub namespace ending in a dash", set_sub("system:serviceaccount:shop-:web"),
       bad_sub("system:serviceaccount:shop-:web"), "bad_subject"},
      {"sub namespace of 64 bytes", set_sub("system:serviceaccount:" + std::string(64, 'a') + ":w"),
       str(kSaTokenBadSubject) + "\"system:serviceaccount:" + std::string(42, 'a') + "...\"",
       "bad_subject"},
      {"sub name a dot segment", set_sub("system:serviceaccount:shop:.."),
       bad_sub("system:serviceaccount:shop:.."), "bad_subject"},
      {"sub name with a slash", set_sub("system:serviceaccount:shop:web/x"),
       bad_sub("system:serviceaccount:shop:web/x"), "bad_subject"},
      {"sub name with a NUL", set_sub(std::string("system:serviceaccount:shop:w\0b", 30)),
       bad_sub("system:serviceaccount:shop:w\\x00b"), "bad_subject"},
      {"sub name with dots", set_sub("system:serviceaccount:shop:web.v2"), "", ""},
      {"sub of a node", set_sub("system:node:worker-1"), bad_sub("system:node:worker-1"),
       "bad_subject"},
      // kubernetes.io.
      {"kubernetes.io absent", [](Json& c) { c.erase("kubernetes.io"); }, "", ""},
      {"kubernetes.io without pod (bound to a secret)",
       [](Json& c) {
         c["kubernetes.io"].erase("pod");
         c["kubernetes.io"]["secret"] = {{"name", "web-token"}, {"uid", "1"}};
       },
       "", ""},
      {"kubernetes.io namespace disagrees",
       [](Json& c) { c["kubernetes.io"]["namespace"] = "kube-system"; },
       str(kSaTokenClaimsDisagree) + "kubernetes.io.namespace \"kube-system\"", "bad_subject"},
      {"kubernetes.io serviceaccount name disagrees",
       [](Json& c) { c["kubernetes.io"]["serviceaccount"]["name"] = "admin"; },
       str(kSaTokenClaimsDisagree) + "kubernetes.io.serviceaccount.name \"admin\"", "bad_subject"},
      {"kubernetes.io a string", [](Json& c) { c["kubernetes.io"] = "shop"; },
       str(kSaTokenClaimType) + "kubernetes.io", "malformed"},
      {"kubernetes.io namespace a number", [](Json& c) { c["kubernetes.io"]["namespace"] = 1; },
       str(kSaTokenClaimType) + "kubernetes.io.namespace", "malformed"},
      {"kubernetes.io pod an array", [](Json& c) { c["kubernetes.io"]["pod"] = Json::array(); },
       str(kSaTokenClaimType) + "kubernetes.io.pod", "malformed"},
      {"kubernetes.io pod uid a number", [](Json& c) { c["kubernetes.io"]["pod"]["uid"] = 1; },
       str(kSaTokenClaimType) + "kubernetes.io.pod.uid", "malformed"},
  };
  for (const ClaimsCase& c : cases) {
    SCOPED_TRACE(c.name);
    Json claims = podClaims();
    c.edit(claims);
    for (const auto& [alg, kid, key] : signers()) {
      SCOPED_TRACE(alg);
      auto r = verifySaToken(mint(header(alg, kid), claims, key), clusterJwks(), options());
      if (c.want_error.empty()) {
        EXPECT_TRUE(r.ok()) << r.error().message;
      } else {
        expectRefused(r, c.want_error, c.want_reason);
      }
    }
  }
}

TEST_F(SaTokenTest, SubjectNameMapsToSpiffeId) {
  Json claims = podClaims();
  claims["sub"] = "system:serviceaccount:shop:web.v2";
  claims["kubernetes.io"]["serviceaccount"]["name"] = "web.v2";
  auto id = verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), clusterJwks(), options());
  ASSERT_TRUE(id.ok()) << id.error().message;
  auto spiffe = id->spiffeId("example.org");
  ASSERT_TRUE(spiffe.ok()) << spiffe.error().message;
  EXPECT_EQ(spiffe->uri(), "spiffe://example.org/ns/shop/sa/web.v2");
  auto k8s = policy::kubernetesIdentity(*spiffe);
  ASSERT_TRUE(k8s.has_value());
  EXPECT_EQ(k8s->ns, "shop");
  EXPECT_EQ(k8s->service_account, "web.v2");
  // A bad trust domain is refused, not folded into the path.
  EXPECT_FALSE(id->spiffeId("Example.org").ok());
  EXPECT_FALSE(id->spiffeId("example.org/ns/kube-system/sa/admin#").ok());
  EXPECT_FALSE(id->spiffeId("").ok());
}

TEST_F(SaTokenTest, LeewayAndIssuerAreOptions) {
  Json claims = podClaims();
  claims["exp"] = kNow + 1;
  const Jwks jwks = clusterJwks();
  SaTokenOptions strict = options();
  strict.leeway = std::chrono::seconds(0);
  EXPECT_TRUE(verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), jwks, strict).ok());
  claims["exp"] = kNow;
  expectRefused(verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), jwks, strict),
                str(kSaTokenExpired) + "2027-01-15T08:00:00Z", "expired");
  SaTokenOptions lenient = options();
  lenient.leeway = std::chrono::seconds(300);
  claims["exp"] = kNow - 299;
  EXPECT_TRUE(verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), jwks, lenient).ok());

  // Without a configured issuer any iss (or none) is accepted.
  SaTokenOptions any_issuer = options();
  any_issuer.issuer.clear();
  claims = podClaims();
  claims["iss"] = "https://oidc.eks.example/id/ABC";
  EXPECT_TRUE(verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), jwks, any_issuer).ok());
  claims.erase("iss");
  EXPECT_TRUE(verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), jwks, any_issuer).ok());
}

TEST_F(SaTokenTest, OptionsAreChecked) {
  const std::string token = mint(header("RS256", "rsa-1"), podClaims(), rsa_);
  SaTokenOptions no_audience = options();
  no_audience.audience.clear();
  expectRefused(verifySaToken(token, clusterJwks(), no_audience), str(kSaTokenNoAudienceConfigured),
                "misconfigured");
  SaTokenOptions negative = options();
  negative.leeway = std::chrono::seconds(-1);
  expectRefused(verifySaToken(token, clusterJwks(), negative), str(kSaTokenNegativeLeeway),
                "misconfigured");
  // A huge leeway is clamped rather than overflowing.
  SaTokenOptions huge = options();
  huge.leeway = std::chrono::seconds(std::numeric_limits<std::int64_t>::max());
  EXPECT_TRUE(verifySaToken(token, clusterJwks(), huge).ok());
}

TEST_F(SaTokenTest, NowDefaultsToTheClock) {
  Json claims = podClaims();
  claims["exp"] = std::time(nullptr) + 600;
  claims["iat"] = std::time(nullptr);
  claims["nbf"] = std::time(nullptr);
  SaTokenOptions o = options();
  o.now = 0;
  EXPECT_TRUE(verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), clusterJwks(), o).ok());
  claims["exp"] = std::time(nullptr) - 3600;
  auto r = verifySaToken(mint(header("RS256", "rsa-1"), claims, rsa_), clusterJwks(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(reasonName(saTokenReason(r.error())), "expired");
}

// ---- signatures and algorithms ----

TEST_F(SaTokenTest, FlippedSignatureByteIsRefused) {
  for (const auto& [alg, kid, key] : signers()) {
    SCOPED_TRACE(alg);
    const std::string input = signingInput(header(alg, kid).dump(), podClaims().dump());
    for (std::size_t at : {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{63}}) {
      std::string sig = signRaw(key, input);
      sig[at] ^= 0x01;
      expectRefused(verifySaToken(input + "." + b64url(sig), clusterJwks(), options()),
                    str(kSaTokenBadSignature), "bad_signature");
    }
  }
}

TEST_F(SaTokenTest, ChangedClaimsBreakTheSignature) {
  const std::string token = mint(header("RS256", "rsa-1"), podClaims(), rsa_);
  Json claims = podClaims();
  claims["sub"] = "system:serviceaccount:kube-system:admin";
  claims.erase("kubernetes.io");
  const std::string forged = b64url(header("RS256", "rsa-1").dump()) + "." + b64url(claims.dump()) +
                             token.substr(token.rfind('.'));
  expectRefused(verifySaToken(forged, clusterJwks(), options()), str(kSaTokenBadSignature),
                "bad_signature");
}

TEST_F(SaTokenTest, SameKidAnotherKeyIsRefused) {
  expectRefused(
      verifySaToken(mint(header("RS256", "rsa-1"), podClaims(), rsa2_), clusterJwks(), options()),
      str(kSaTokenBadSignature), "bad_signature");
  expectRefused(
      verifySaToken(mint(header("ES256", "ec-1"), podClaims(), ec2_), clusterJwks(), options()),
      str(kSaTokenBadSignature), "bad_signature");
}

TEST_F(SaTokenTest, UnsupportedAlgsAreRefusedByName) {
  // The classic confusion: HS256 keyed with the RSA public key's bytes.
  const std::string n = bnParam(rsa_, OSSL_PKEY_PARAM_RSA_N);
  for (const std::string alg : {"none", "None", "NONE", "HS256", "HS384", "HS512", "RS384", "RS512",
                                "PS256", "ES384", "ES512", "EdDSA", "rs256", ""}) {
    SCOPED_TRACE(alg);
    Json h = {{"alg", alg}, {"kid", "rsa-1"}};
    const std::string input = signingInput(h.dump(), podClaims().dump());
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), n.data(), static_cast<int>(n.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len);
    for (const std::string& sig :
         {std::string(), std::string(reinterpret_cast<const char*>(mac), mac_len)}) {
      expectRefused(verifySaToken(input + "." + b64url(sig), clusterJwks(), options()),
                    str(kSaTokenUnsupportedAlg) + "\"" + alg + "\"", "unsupported_alg");
    }
  }
}

TEST_F(SaTokenTest, AlgMustMatchTheKeyType) {
  // kid names an RSA key, the header says ES256 (and the token is signed with an EC key).
  expectRefused(
      verifySaToken(mint(header("ES256", "rsa-1"), podClaims(), ec_), clusterJwks(), options()),
      str(kSaTokenKeyTypeMismatch) + "kid \"rsa-1\" is an RSA key, alg ES256", "unknown_key");
  expectRefused(
      verifySaToken(mint(header("RS256", "ec-1"), podClaims(), rsa_), clusterJwks(), options()),
      str(kSaTokenKeyTypeMismatch) + "kid \"ec-1\" is an EC key, alg RS256", "unknown_key");
  // Without kid, only keys of the alg's type are tried.
  const Jwks rsa_only = parseJwks({{"keys", {jwkOf(rsa_, "rsa-1")}}});
  expectRefused(verifySaToken(mint(header("ES256", ""), podClaims(), ec_), rsa_only, options()),
                str(kSaTokenNoKeyForAlg) + "ES256", "unknown_key");
  const Jwks ec_only = parseJwks({{"keys", {jwkOf(ec_, "")}}});
  expectRefused(verifySaToken(mint(header("RS256", ""), podClaims(), rsa_), ec_only, options()),
                str(kSaTokenNoKeyForAlg) + "RS256", "unknown_key");
}

TEST_F(SaTokenTest, SignatureLengths) {
  const std::string es_input = signingInput(header("ES256", "ec-1").dump(), podClaims().dump());
  // The DER form OpenSSL produces is not the JWS form.
  const std::string der = signDer(ec_, es_input);
  expectRefused(
      verifySaToken(es_input + "." + b64url(der), clusterJwks(), options()),
      str(kSaTokenBadSignatureLength) + "ES256 wants 64 bytes, got " + std::to_string(der.size()),
      "bad_signature");
  std::string raw = signRaw(ec_, es_input);
  expectRefused(verifySaToken(es_input + "." + b64url(raw.substr(0, 63)), clusterJwks(), options()),
                str(kSaTokenBadSignatureLength) + "ES256 wants 64 bytes, got 63", "bad_signature");
  expectRefused(verifySaToken(es_input + "." + b64url(raw + '\0'), clusterJwks(), options()),
                str(kSaTokenBadSignatureLength) + "ES256 wants 64 bytes, got 65", "bad_signature");
  // R = S = 0.
  expectRefused(
      verifySaToken(es_input + "." + b64url(std::string(64, '\0')), clusterJwks(), options()),
      str(kSaTokenBadSignature), "bad_signature");

  const std::string rs_input = signingInput(header("RS256", "rsa-1").dump(), podClaims().dump());
  const std::string rs_sig = signRaw(rsa_, rs_input);
  expectRefused(verifySaToken(rs_input + "." + b64url(rs_sig.substr(1)), clusterJwks(), options()),
                str(kSaTokenBadSignatureLength) + "RS256 got 255 bytes, no key has that size",
                "bad_signature");
  expectRefused(verifySaToken(rs_input + ".", clusterJwks(), options()),
                str(kSaTokenBadSignatureLength) + "RS256 got 0 bytes, no key has that size",
                "bad_signature");
}

// ---- malformed tokens ----

TEST_F(SaTokenTest, MalformedTokens) {
  const std::string h = b64url(header("RS256", "rsa-1").dump());
  const std::string p = b64url(podClaims().dump());
  const std::string s = b64url(signRaw(rsa_, h + "." + p));
  const std::string not_compact = str(kSaTokenNotCompact);
  struct Case {
    std::string name;
    std::string token;
    std::string want_error;
    std::string want_reason = "malformed";
  };
  const std::vector<Case> cases = {
      {"empty", "", not_compact},
      {"one part", h, not_compact},
      {"two parts", h + "." + p, not_compact},
      {"four parts", h + "." + p + "." + s + ".", not_compact},
      {"five parts (JWE)", h + "." + p + "." + s + ".a.b", not_compact},
      {"only dots", "..", str(kSaTokenBadHeader)},
      {"too long", std::string(kSaTokenMaxLength + 1, 'a'), str(kSaTokenTooLong)},
      {"too long, well formed", h + "." + p + std::string(kSaTokenMaxLength, 'A') + "." + s,
       str(kSaTokenTooLong)},
      {"padded header", h + "=." + p + "." + s, str(kSaTokenBadBase64url) + "header"},
      {"base64 (not url) in payload", h + "." + p + "+/." + s,
       str(kSaTokenBadBase64url) + "payload"},
      {"space in signature", h + "." + p + "." + s.substr(0, 10) + " " + s.substr(10),
       str(kSaTokenBadBase64url) + "signature"},
      {"header of 4n+1 characters", "AAAAA." + p + "." + s, str(kSaTokenBadBase64url) + "header"},
      {"header not JSON", b64url("{alg: RS256}") + "." + p + "." + s, str(kSaTokenBadHeader)},
      {"header JSON with trailing text", b64url(R"({"alg":"RS256"} x)") + "." + p + "." + s,
       str(kSaTokenBadHeader)},
      {"header a JSON array", b64url(R"(["RS256"])") + "." + p + "." + s, str(kSaTokenBadHeader)},
      {"header a JSON string", b64url(R"("RS256")") + "." + p + "." + s, str(kSaTokenBadHeader)},
      {"header invalid UTF-8", b64url("{\"alg\":\"RS256\",\"x\":\"\xff\"}") + "." + p + "." + s,
       str(kSaTokenBadHeader)},
      {"header without alg", b64url(R"({"kid":"rsa-1"})") + "." + p + "." + s,
       str(kSaTokenHeaderMember) + "alg"},
      {"alg a number", b64url(R"({"alg":256})") + "." + p + "." + s,
       str(kSaTokenHeaderMember) + "alg"},
      {"alg null", b64url(R"({"alg":null})") + "." + p + "." + s,
       str(kSaTokenHeaderMember) + "alg"},
      {"kid a number", b64url(R"({"alg":"RS256","kid":1})") + "." + p + "." + s,
       str(kSaTokenHeaderMember) + "kid"},
      {"critical extension",
       b64url(R"({"alg":"RS256","kid":"rsa-1","crit":["b64"],"b64":false})") + "." + p + "." + s,
       str(kSaTokenCritical)},
      {"alg naming a long hostile string",
       b64url(Json{{"alg", std::string(100, 'A') + "\n"}}.dump()) + "." + p + "." + s,
       str(kSaTokenUnsupportedAlg) + "\"" + std::string(64, 'A') + "...\"", "unsupported_alg"},
      {"alg with control bytes", b64url(Json{{"alg", "RS256\r\n"}}.dump()) + "." + p + "." + s,
       str(kSaTokenUnsupportedAlg) + "\"RS256\\x0d\\x0a\"", "unsupported_alg"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    expectRefused(verifySaToken(c.token, clusterJwks(), options()), c.want_error, c.want_reason);
  }
}

TEST_F(SaTokenTest, SignedPayloadsThatAreNotClaims) {
  const Json h = header("RS256", "rsa-1");
  for (const std::string payload : {"", "not json", "[1,2]", "\"system:serviceaccount:shop:web\"",
                                    "null", "{\"exp\":1", "{\"a\":1} {\"b\":2}"}) {
    SCOPED_TRACE(payload);
    expectRefused(verifySaToken(mintText(h.dump(), payload, rsa_), clusterJwks(), options()),
                  str(kSaTokenBadClaims), "malformed");
  }
  // An unsigned payload is not read at all: a bad signature is what is reported.
  const std::string input = signingInput(h.dump(), "not json");
  expectRefused(
      verifySaToken(input + "." + b64url(std::string(256, 'x')), clusterJwks(), options()),
      str(kSaTokenBadSignature), "bad_signature");
}

TEST_F(SaTokenTest, DeepJsonIsRefusedWithoutCrashing) {
  const std::string deep(kSaTokenMaxLength / 2, '[');
  const Json h = header("RS256", "rsa-1");
  expectRefused(verifySaToken(mintText(h.dump(), deep, rsa_), clusterJwks(), options()),
                str(kSaTokenBadClaims), "malformed");
  std::string nested =
      "{\"alg\":\"RS256\",\"x\":" + std::string(6500, '[') + std::string(6500, ']') + "}";
  expectRefused(verifySaToken(b64url(nested) + ".e30.", clusterJwks(), options()),
                str(kSaTokenTooLong), "malformed");
  nested = "{\"alg\":\"RS256\",\"x\":" + std::string(3000, '[') + std::string(3000, ']') + "}";
  expectRefused(verifySaToken(b64url(nested) + ".e30.", clusterJwks(), options()),
                str(kSaTokenBadSignatureLength) + "RS256 got 0 bytes, no key has that size",
                "bad_signature");
}

// Random edits of a valid token never crash and are always refused for a named reason.
TEST_F(SaTokenTest, MutatedTokensAreRefused) {
  const std::string token = mint(header("ES256", "ec-1"), podClaims(), ec_);
  const Jwks jwks = clusterJwks();
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string t = token;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % t.size();
      switch (rng() % 3) {
        case 0:
          t[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          t.erase(at, 1 + rng() % 4);
          break;
        default:
          t.insert(at, 1, static_cast<char>(rng() % 256));
          break;
      }
    }
    if (t == token) {
      continue;
    }
    auto r = verifySaToken(t, jwks, options());
    ASSERT_FALSE(r.ok()) << t;
  }
}

// ---- reasons ----

TEST(SaTokenReasonTest, EveryRefusalHasItsReason) {
  const std::vector<std::pair<std::string_view, std::string_view>> rules = {
      {kSaTokenNoAudienceConfigured, "misconfigured"},
      {kSaTokenNegativeLeeway, "misconfigured"},
      {kSaTokenTooLong, "malformed"},
      {kSaTokenNotCompact, "malformed"},
      {kSaTokenBadBase64url, "malformed"},
      {kSaTokenBadHeader, "malformed"},
      {kSaTokenHeaderMember, "malformed"},
      {kSaTokenCritical, "malformed"},
      {kSaTokenUnsupportedAlg, "unsupported_alg"},
      {kSaTokenUnknownKid, "unknown_key"},
      {kSaTokenKeyTypeMismatch, "unknown_key"},
      {kSaTokenNoKeyForAlg, "unknown_key"},
      {kSaTokenBadSignatureLength, "bad_signature"},
      {kSaTokenBadSignature, "bad_signature"},
      {kSaTokenBadClaims, "malformed"},
      {kSaTokenClaimType, "malformed"},
      {kSaTokenNoExp, "malformed"},
      {kSaTokenExpired, "expired"},
      {kSaTokenNotYetValid, "not_yet_valid"},
      {kSaTokenIssuedInFuture, "not_yet_valid"},
      {kSaTokenNoAudience, "wrong_audience"},
      {kSaTokenWrongAudience, "wrong_audience"},
      {kSaTokenNoIssuer, "wrong_issuer"},
      {kSaTokenWrongIssuer, "wrong_issuer"},
      {kSaTokenNoSubject, "bad_subject"},
      {kSaTokenBadSubject, "bad_subject"},
      {kSaTokenClaimsDisagree, "bad_subject"},
  };
  for (const auto& [message, reason] : rules) {
    SCOPED_TRACE(message);
    EXPECT_EQ(reasonName(saTokenReason(invalidArgument(str(message)))), reason);
    EXPECT_EQ(reasonName(saTokenReason(invalidArgument(str(message) + "detail"))), reason);
    // No rule is a prefix of another, so the first match is the only one.
    for (const auto& [other, other_reason] : rules) {
      if (other != message) {
        EXPECT_FALSE(other.starts_with(message)) << other;
      }
    }
  }
}

TEST(SaTokenReasonTest, Names) {
  EXPECT_EQ(reasonName(SaTokenReason::kMalformed), "malformed");
  EXPECT_EQ(reasonName(SaTokenReason::kUnsupportedAlg), "unsupported_alg");
  EXPECT_EQ(reasonName(SaTokenReason::kUnknownKey), "unknown_key");
  EXPECT_EQ(reasonName(SaTokenReason::kBadSignature), "bad_signature");
  EXPECT_EQ(reasonName(SaTokenReason::kExpired), "expired");
  EXPECT_EQ(reasonName(SaTokenReason::kNotYetValid), "not_yet_valid");
  EXPECT_EQ(reasonName(SaTokenReason::kWrongAudience), "wrong_audience");
  EXPECT_EQ(reasonName(SaTokenReason::kWrongIssuer), "wrong_issuer");
  EXPECT_EQ(reasonName(SaTokenReason::kBadSubject), "bad_subject");
  EXPECT_EQ(reasonName(SaTokenReason::kMisconfigured), "misconfigured");
  EXPECT_EQ(reasonName(saTokenReason(invalidArgument("ca: something else"))), "malformed");
}

// ---- base64url ----

TEST(SaTokenBase64urlTest, Table) {
  struct Case {
    std::string input;
    bool ok;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"", true, ""},
      {"Zg", true, "f"},
      {"Zm8", true, "fo"},
      {"Zm9v", true, "foo"},
      {"Zm9vYg", true, "foob"},
      {"_-8", true, "\xff\xef"},
      {"AA", true, std::string(1, '\0')},
      {"Zg==", false, ""},   // padding
      {"Zm8=", false, ""},   // padding
      {"Z", false, ""},      // 4n+1
      {"Zm9vY", false, ""},  // 4n+1
      {"Zh", false, ""},     // non-zero pad bits: "Zg" is the only encoding of "f"
      {"Zm9", false, ""},    // non-zero pad bits
      {"+/8", false, ""},    // standard alphabet
      {"Zm 9v", false, ""},
      {"Zm9v\n", false, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = decodeBase64url(c.input);
    ASSERT_EQ(r.ok(), c.ok);
    if (c.ok) {
      EXPECT_EQ(*r, c.want);
    }
  }
}

TEST(SaTokenBase64urlTest, EveryByte) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    SCOPED_TRACE(b);
    EXPECT_EQ(decodeBase64url(std::string("AAA") + c).ok(), alphabet.find(c) != std::string::npos);
  }
}

TEST(SaTokenBase64urlTest, RoundTrips) {
  std::mt19937 rng(1);
  for (std::size_t n = 0; n < 200; ++n) {
    std::string bytes(n, '\0');
    for (char& c : bytes) {
      c = static_cast<char>(rng() % 256);
    }
    auto r = decodeBase64url(b64url(bytes));
    ASSERT_TRUE(r.ok()) << n;
    EXPECT_EQ(*r, bytes);
  }
}

// ---- JWKS ----

class JwksTest : public SaTokenTest {};

TEST_F(JwksTest, ParsesRsaAndEcKeys) {
  const Json doc = {{"keys", {jwkOf(rsa_, "rsa-1"), jwkOf(ec_, "ec-1")}}};
  auto jwks = Jwks::parse(doc.dump());
  ASSERT_TRUE(jwks.ok()) << jwks.error().message;
  ASSERT_EQ(jwks->keys().size(), 2u);
  EXPECT_EQ(jwks->keys()[0].type, JwkType::kRsa);
  EXPECT_EQ(jwks->keys()[0].kid, "rsa-1");
  EXPECT_EQ(jwks->keys()[0].alg, "RS256");
  EXPECT_EQ(jwks->keys()[0].use, "sig");
  EXPECT_EQ(EVP_PKEY_eq(jwks->keys()[0].key.get(), rsa_), 1);
  EXPECT_EQ(jwks->keys()[1].type, JwkType::kEcP256);
  EXPECT_EQ(EVP_PKEY_eq(jwks->keys()[1].key.get(), ec_), 1);
  EXPECT_EQ(jwks->find("ec-1"), &jwks->keys()[1]);
  EXPECT_EQ(jwks->find("ec-2"), nullptr);
  EXPECT_EQ(jwks->find(""), nullptr);
}

TEST_F(JwksTest, OptionalMembersAndUnknownOnesAreAllowed) {
  Json rsa = jwkOf(rsa_, "");
  rsa.erase("alg");
  rsa.erase("use");
  rsa["x5t"] = "ignored";
  rsa["key_ops"] = {"verify"};
  auto jwks = Jwks::parse(Json{{"keys", {rsa}}, {"other", 1}}.dump());
  ASSERT_TRUE(jwks.ok()) << jwks.error().message;
  EXPECT_EQ(jwks->keys()[0].kid, "");
  EXPECT_EQ(jwks->keys()[0].alg, "");
  // An RSA modulus with a leading zero octet is the same number.
  Json padded = jwkOf(rsa_, "");
  padded["n"] = b64url(std::string(1, '\0') + bnParam(rsa_, OSSL_PKEY_PARAM_RSA_N));
  EXPECT_TRUE(Jwks::parse(Json{{"keys", {padded}}}.dump()).ok());
}

TEST_F(JwksTest, Errors) {
  const EvpPkeyPtr rsa1024 = common::test_certs::rsaKey(1024);
  const auto with = [](Json key, const std::string& name, const Json& value) {
    key[name] = value;
    return Json{{"keys", {key}}}.dump();
  };
  const auto without = [](Json key, const std::string& name) {
    key.erase(name);
    return Json{{"keys", {key}}}.dump();
  };
  const Json rsa = jwkOf(rsa_, "rsa-1");
  const Json ec = jwkOf(ec_, "ec-1");
  std::string off_curve_y = bnParam(ec_, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
  off_curve_y[31] ^= 0x01;
  Json too_many = {{"keys", Json::array()}};
  for (int i = 0; i < 65; ++i) {
    too_many["keys"].push_back(jwkOf(ec_, "k" + std::to_string(i)));
  }

  struct Case {
    std::string name;
    std::string json;
    std::string want_error;
    ErrorCode want_code = ErrorCode::kInvalidArgument;
  };
  const std::vector<Case> cases = {
      {"not JSON", "{keys: []}", str(kJwksNotJson)},
      {"empty", "", str(kJwksNotJson)},
      {"an array", "[]", str(kJwksNotJson)},
      {"a single JWK, not a set", rsa.dump(), str(kJwksNoKeys)},
      {"no keys", "{}", str(kJwksNoKeys)},
      {"empty keys", R"({"keys":[]})", str(kJwksNoKeys)},
      {"keys an object", R"({"keys":{}})", str(kJwksNoKeys)},
      {"too large", "{\"keys\":[],\"x\":\"" + std::string(kJwksMaxLength, 'a') + "\"}",
       str(kJwksTooLarge)},
      {"too many keys", too_many.dump(), str(kJwksTooManyKeys)},
      {"key a string", R"({"keys":["RSA"]})", str(kJwksKeyNotObject) + "keys[0]"},
      {"second key broken", Json{{"keys", {rsa, 1}}}.dump(), str(kJwksKeyNotObject) + "keys[1]"},
      {"kty missing", without(rsa, "kty"), str(kJwksMissingMember) + "keys[0].kty"},
      {"kty a number", with(rsa, "kty", 1), str(kJwksMemberNotString) + "keys[0].kty"},
      {"kty oct", with(rsa, "kty", "oct"), str(kJwksUnsupportedKty) + "keys[0] kty \"oct\"",
       ErrorCode::kUnsupported},
      {"kty OKP", with(ec, "kty", "OKP"), str(kJwksUnsupportedKty) + "keys[0] kty \"OKP\"",
       ErrorCode::kUnsupported},
      {"kty lowercase", with(rsa, "kty", "rsa"), str(kJwksUnsupportedKty) + "keys[0] kty \"rsa\"",
       ErrorCode::kUnsupported},
      {"crv P-384", with(ec, "crv", "P-384"), str(kJwksUnsupportedCurve) + "keys[0] crv \"P-384\"",
       ErrorCode::kUnsupported},
      {"crv secp256k1", with(ec, "crv", "secp256k1"),
       str(kJwksUnsupportedCurve) + "keys[0] crv \"secp256k1\"", ErrorCode::kUnsupported},
      {"crv missing", without(ec, "crv"), str(kJwksMissingMember) + "keys[0].crv"},
      {"n missing", without(rsa, "n"), str(kJwksMissingMember) + "keys[0].n"},
      {"e missing", without(rsa, "e"), str(kJwksMissingMember) + "keys[0].e"},
      {"x missing", without(ec, "x"), str(kJwksMissingMember) + "keys[0].x"},
      {"y missing", without(ec, "y"), str(kJwksMissingMember) + "keys[0].y"},
      {"n a number", with(rsa, "n", 65537), str(kJwksMemberNotString) + "keys[0].n"},
      {"kid a number", with(rsa, "kid", 1), str(kJwksMemberNotString) + "keys[0].kid"},
      {"n padded", with(rsa, "n", rsa["n"].get<std::string>() + "=="),
       str(kJwksBadBase64url) + "keys[0].n"},
      {"n standard base64", with(rsa, "n", "ab+/"), str(kJwksBadBase64url) + "keys[0].n"},
      {"e empty", with(rsa, "e", ""), str(kJwksBadBase64url) + "keys[0].e"},
      {"x with a space", with(ec, "x", "AAAA AAAA"), str(kJwksBadBase64url) + "keys[0].x"},
      {"RSA 1024", Json{{"keys", {jwkOf(rsa1024.get(), "")}}}.dump(),
       str(kJwksRsaTooSmall) + "keys[0] has 1024"},
      {"RSA 2047 (n's top bit missing)", with(rsa, "n", b64url(std::string(255, '\x7f') + "\x01")),
       str(kJwksRsaTooSmall) + "keys[0] has 2047"},
      {"RSA 8201", with(rsa, "n", b64url("\x01" + std::string(1025, '\xff'))),
       str(kJwksRsaTooLarge) + "keys[0] has 8201"},
      {"RSA e of 9 bytes", with(rsa, "e", b64url(std::string(9, '\x01'))),
       str(kJwksBadKey) + "keys[0].e is longer than 64 bits"},
      {"RSA e even", with(rsa, "e", b64url(std::string("\x01\x00\x00", 3))),
       str(kJwksBadKey) + "keys[0]"},
      {"RSA n even", with(rsa, "n", b64url(std::string(256, '\xfe'))),
       str(kJwksBadKey) + "keys[0]"},
      {"EC x of 31 bytes", with(ec, "x", b64url(std::string(31, '\x01'))),
       str(kJwksBadCoordinate) + "keys[0].x"},
      {"EC y of 33 bytes", with(ec, "y", b64url('\0' + bnParam(ec_, OSSL_PKEY_PARAM_EC_PUB_Y, 32))),
       str(kJwksBadCoordinate) + "keys[0].y"},
      {"EC point off the curve", with(ec, "y", b64url(off_curve_y)), str(kJwksBadKey) + "keys[0]"},
      {"EC point at x = y = 0",
       [&] {
         Json zero = ec;
         zero["x"] = b64url(std::string(32, '\0'));
         return with(zero, "y", zero["x"]);
       }(),
       str(kJwksBadKey) + "keys[0]"},
      {"RSA alg RS384", with(rsa, "alg", "RS384"),
       str(kJwksUnsupportedAlg) + "keys[0] alg \"RS384\"", ErrorCode::kUnsupported},
      {"RSA alg ES256", with(rsa, "alg", "ES256"),
       str(kJwksUnsupportedAlg) + "keys[0] alg \"ES256\"", ErrorCode::kUnsupported},
      {"EC alg HS256", with(ec, "alg", "HS256"), str(kJwksUnsupportedAlg) + "keys[0] alg \"HS256\"",
       ErrorCode::kUnsupported},
      {"use enc", with(rsa, "use", "enc"), str(kJwksUnsupportedUse) + "keys[0] use \"enc\"",
       ErrorCode::kUnsupported},
      {"RSA private key", with(rsa, "d", "AQAB"), str(kJwksPrivateKey) + "keys[0]"},
      {"EC private key", with(ec, "d", "AQAB"), str(kJwksPrivateKey) + "keys[0]"},
      {"duplicate kid", Json{{"keys", {jwkOf(rsa_, "k"), jwkOf(ec_, "k")}}}.dump(),
       str(kJwksDuplicateKid) + "\"k\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = Jwks::parse(c.json);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, c.want_error);
    EXPECT_EQ(r.error().code, c.want_code);
  }
}

TEST_F(JwksTest, LoadsFromAFile) {
  common::test_env::TempDir dir;
  const std::string good =
      dir.write("jwks.json", Json{{"keys", {jwkOf(rsa_, "rsa-1"), jwkOf(ec_, "ec-1")}}}.dump(2));
  auto jwks = Jwks::load(good);
  ASSERT_TRUE(jwks.ok()) << jwks.error().message;
  EXPECT_EQ(jwks->keys().size(), 2u);
  EXPECT_TRUE(
      verifySaToken(mint(header("ES256", "ec-1"), podClaims(), ec_), *jwks, options()).ok());

  const std::string bad = dir.write("bad.json", R"({"keys":[{"kty":"oct","k":"AAAA"}]})");
  auto r = Jwks::load(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, bad + ": " + str(kJwksUnsupportedKty) + "keys[0] kty \"oct\"");
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);

  const std::string big = dir.write("big.json", std::string(kJwksMaxLength + 1, ' '));
  r = Jwks::load(big);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, big + ": " + str(kJwksTooLarge));

  r = Jwks::load(dir.file("missing.json"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace palisade::cp
