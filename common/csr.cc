#include "common/csr.h"

namespace palisade::common {

Result<EvpPkeyPtr> generateP256Key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) {
    return opensslError("key: cannot generate an ECDSA P-256 key");
  }
  return EvpPkeyPtr(key);
}

Result<GeneralNamesPtr> makeGeneralNames(const std::vector<std::string>& uris,
                                         const std::vector<std::string>& dns) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  auto add = [&](int type, const std::string& value) {
    GENERAL_NAME* name = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, value.data(), static_cast<int>(value.size()));
    GENERAL_NAME_set0_value(name, type, s);
    sk_GENERAL_NAME_push(names.get(), name);
  };
  for (const std::string& u : uris) {
    add(GEN_URI, u);
  }
  for (const std::string& d : dns) {
    add(GEN_DNS, d);
  }
  return names;
}

Result<X509ReqPtr> makeCsr(EVP_PKEY* key, const std::vector<std::string>& uri_sans,
                           const std::vector<std::string>& dns_sans) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_pubkey(req.get(), key);
  if (!uri_sans.empty() || !dns_sans.empty()) {
    auto names = makeGeneralNames(uri_sans, dns_sans);
    if (!names.ok()) {
      return names.error();
    }
    ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
    sk_X509_EXTENSION_push(exts.get(), X509V3_EXT_i2d(NID_subject_alt_name, 0, names->get()));
    X509_REQ_add_extensions(req.get(), exts.get());
  }
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) {
    return opensslError("csr: cannot sign");
  }
  return req;
}

}  // namespace palisade::common
