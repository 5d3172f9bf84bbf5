#include "common/trust_bundle.h"

#include "common/x509_svid.h"

namespace palisade::common {

void BundleSet::add(const std::string& trust_domain, X509Ptr root) {
  auto& roots = bundles_[trust_domain];
  for (const X509Ptr& r : roots) {
    if (X509_cmp(r.get(), root.get()) == 0) {
      return;
    }
  }
  X509StorePtr& store = stores_[trust_domain];
  if (!store) {
    store.reset(X509_STORE_new());
  }
  X509_STORE_add_cert(store.get(), root.get());
  roots.push_back(std::move(root));
}

X509_STORE* BundleSet::store(std::string_view trust_domain) const {
  auto it = stores_.find(trust_domain);
  return it == stores_.end() ? nullptr : it->second.get();
}

std::optional<std::string> trustDomainOfCa(X509* cert) {
  auto uris = uriSans(cert);
  if (uris.size() != 1) {
    return std::nullopt;
  }
  auto id = policy::SpiffeId::parse(uris[0]);
  if (!id.ok()) {
    return std::nullopt;
  }
  return std::string(id->trustDomain());
}

Status BundleSet::addPem(std::string_view pem,
                         const std::optional<std::string>& default_trust_domain) {
  auto certs = parseCertificatesPem(pem);
  if (!certs.ok()) {
    return certs.error();
  }
  for (X509Ptr& cert : *certs) {
    std::optional<std::string> td = trustDomainOfCa(cert.get());
    if (!td) {
      td = default_trust_domain;
    }
    if (!td) {
      return invalidArgument(
          "bundle: a root has no SPIFFE ID naming its trust domain; say which trust domain "
          "the bundle is for");
    }
    add(*td, std::move(cert));
  }
  return Ok{};
}

Status BundleSet::addPemFile(const std::string& path,
                             const std::optional<std::string>& default_trust_domain) {
  auto text = readFile(path);
  if (!text.ok()) {
    return text.error();
  }
  Status s = addPem(*text, default_trust_domain);
  if (!s.ok()) {
    return Error{s.error().code, path + ": " + s.error().message};
  }
  return Ok{};
}

const std::vector<X509Ptr>* BundleSet::roots(std::string_view trust_domain) const {
  auto it = bundles_.find(trust_domain);
  return it == bundles_.end() ? nullptr : &it->second;
}

std::vector<std::string> BundleSet::trustDomains() const {
  std::vector<std::string> out;
  for (const auto& [td, roots] : bundles_) {
    out.push_back(td);
  }
  return out;
}

}  // namespace palisade::common
