#pragma once

// The first lines of test manifests, shared by the loader and lint tests so their expected
// line numbers agree: lines 1-5, "spec:" goes on line 6; metadata's mark is 4:3.

#include <string>

namespace palisade::policy::test_manifests {

inline const std::string kApHead =
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata:\n"
    "  name: p\n"
    "  namespace: ns\n";

inline const std::string kPaHead =
    "apiVersion: security.istio.io/v1\n"
    "kind: PeerAuthentication\n"
    "metadata:\n"
    "  name: pa\n"
    "  namespace: ns\n";

}  // namespace palisade::policy::test_manifests
