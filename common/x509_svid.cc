#include "common/x509_svid.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <algorithm>

namespace palisade::common {
namespace {

std::vector<std::string> sansOfType(X509* cert, int type) {
  std::vector<std::string> out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) {
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != type) {
      continue;
    }
    const ASN1_IA5STRING* s = type == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

std::string subjectText(X509* cert) {
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

Error fail(std::string_view rule, std::string_view detail = {}) {
  return invalidArgument(std::string(rule) + std::string(detail));
}

Status checkSigner(X509* signer) {
  const uint32_t f = X509_get_extension_flags(signer);
  if (!(f & EXFLAG_CA)) {
    return fail(kSvidSignerNotCa, subjectText(signer));
  }
  if (!(f & EXFLAG_KUSAGE) || !(X509_get_key_usage(signer) & KU_KEY_CERT_SIGN)) {
    return fail(kSvidSignerNoKeyCertSign, subjectText(signer));
  }
  return Ok{};
}

}  // namespace

std::vector<std::string> uriSans(X509* cert) { return sansOfType(cert, GEN_URI); }
std::vector<std::string> dnsSans(X509* cert) { return sansOfType(cert, GEN_DNS); }

Result<policy::SpiffeId> spiffeIdOf(X509* cert) {
  std::vector<std::string> uris = uriSans(cert);
  // "An X.509 SVID MUST contain exactly one URI SAN" (X509-SVID section 2).
  if (uris.empty()) {
    return fail(kSvidNoUriSan);
  }
  if (uris.size() > 1) {
    return fail(kSvidManyUriSans);
  }
  auto id = policy::SpiffeId::parse(uris[0]);
  if (!id.ok()) {
    return fail(kSvidBadSpiffeId, id.error().message);
  }
  return id;
}

Result<VerifiedSvid> verifySvid(X509* leaf, const std::vector<X509*>& intermediates,
                                const BundleSet& bundles, const VerifyOptions& options) {
  auto id = spiffeIdOf(leaf);
  if (!id.ok()) {
    return id.error();
  }
  // "Leaf certificate SPIFFE IDs MUST have a non-root path component." (section 3.1)
  if (id->path().empty()) {
    return fail(kSvidLeafWithoutPath);
  }
  // "the validator MUST ensure that the CA field in the basic constraints extension is set to
  // false, and that keyCertSign and cRLSign are not set in the key usage extension" (5.2)
  const uint32_t flags = X509_get_extension_flags(leaf);
  if (flags & EXFLAG_INVALID) {
    return fail(kSvidChain, "leaf certificate has invalid extensions");
  }
  if (flags & EXFLAG_CA) {
    return fail(kSvidLeafIsCa);
  }
  const uint32_t usage = X509_get_key_usage(leaf);  // all bits when the extension is absent
  const bool has_usage = (flags & EXFLAG_KUSAGE) != 0;
  if (has_usage && (usage & KU_KEY_CERT_SIGN)) {
    return fail(kSvidLeafKeyCertSign);
  }
  if (has_usage && (usage & KU_CRL_SIGN)) {
    return fail(kSvidLeafCrlSign);
  }
  // "Leaf SVIDs MUST set digitalSignature." (section 4.3)
  if (!has_usage || !(usage & KU_DIGITAL_SIGNATURE)) {
    return fail(kSvidLeafNoDigitalSignature);
  }
  const std::string td(id->trustDomain());
  if (options.trust_domain && *options.trust_domain != td) {
    return fail(kSvidWrongTrustDomain, td + ", expected " + *options.trust_domain);
  }
  // The chain must reach a root of the leaf's own trust domain, never another's.
  const std::vector<X509Ptr>* roots = bundles.roots(td);
  if (roots == nullptr || roots->empty()) {
    return fail(kSvidNoBundle, td);
  }

  // Everything the peer sends after its leaf is there to sign: "Signing certificates MUST
  // set the cA field to true" and "MUST set keyCertSign" (4.1, 4.3). Checked before path
  // validation so the error names the rule.
  for (X509* c : intermediates) {
    if (Status s = checkSigner(c); !s.ok()) {
      return s.error();
    }
  }
  X509StackPtr untrusted(sk_X509_new_null());
  for (X509* c : intermediates) {
    sk_X509_push(untrusted.get(), c);
  }
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!X509_STORE_CTX_init(ctx.get(), bundles.store(td), leaf, untrusted.get())) {
    return opensslError("x509svid: cannot start verification");
  }
  // RFC 5280 path validation (section 6), without OpenSSL's X509_V_FLAG_X509_STRICT: that flag
  // adds the certificate *profile* rules a CA must follow when it issues (an Authority Key
  // Identifier on every certificate, and so on), which the SPIFFE validation rules do not ask
  // of a validator, and which SVIDs from other issuers may not meet. The SPIFFE rules are
  // checked explicitly above and below.
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  if (options.at) {
    X509_VERIFY_PARAM_set_time(param, *options.at);
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return fail(kSvidChain, X509_verify_cert_error_string(err));
  }
  VerifiedSvid out{std::move(*id), notAfter(leaf)};
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 1; i < sk_X509_num(chain); ++i) {
    X509* signer = sk_X509_value(chain, i);
    // The roots of the bundle are signing certificates too.
    if (Status s = checkSigner(signer); !s.ok()) {
      return s.error();
    }
    out.expires = std::min(out.expires, notAfter(signer));
  }
  return out;
}

std::shared_ptr<const policy::SpiffeId> VerifiedChainCache::find(X509* leaf, std::time_t now) {
  auto it = entries_.find(certificateSha256(leaf));
  if (it == entries_.end()) {
    return nullptr;
  }
  if (now >= it->second->expires) {
    lru_.erase(it->second);
    entries_.erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->id;
}

std::shared_ptr<const policy::SpiffeId> VerifiedChainCache::insert(X509* leaf,
                                                                   const VerifiedSvid& v) {
  Sha256 key = certificateSha256(leaf);
  auto id = std::make_shared<const policy::SpiffeId>(v.id);
  if (auto it = entries_.find(key); it != entries_.end()) {
    lru_.erase(it->second);
    entries_.erase(it);
  }
  if (capacity_ == 0) {
    return id;
  }
  while (entries_.size() >= capacity_) {
    entries_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, id, v.expires});
  entries_.emplace(key, lru_.begin());
  return id;
}

std::time_t VerifiedChainCache::expiresOf(X509* leaf) const {
  auto it = entries_.find(certificateSha256(leaf));
  return it == entries_.end() ? 0 : it->second->expires;
}

void VerifiedChainCache::clear() {
  entries_.clear();
  lru_.clear();
}

}  // namespace palisade::common
