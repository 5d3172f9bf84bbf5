#pragma once

// Keys and certificate signing requests. A workload's key is made where it is used and never
// leaves that process; only the CSR travels. Thread: any.

#include <string>
#include <vector>

#include "common/openssl.h"

namespace palisade::common {

// A fresh ECDSA P-256 key.
Result<EvpPkeyPtr> generateP256Key();

// A CSR signed with `key`, asking for `uri_sans` and `dns_sans` (the CA decides what it
// grants; see control-plane/ca.h).
Result<X509ReqPtr> makeCsr(EVP_PKEY* key, const std::vector<std::string>& uri_sans,
                           const std::vector<std::string>& dns_sans);

// Adds a subjectAltName extension with the given URIs and DNS names to `cert` or `req`
// extension list; used by both the CSR and the CA.
Result<GeneralNamesPtr> makeGeneralNames(const std::vector<std::string>& uris,
                                         const std::vector<std::string>& dns);

}  // namespace palisade::common
