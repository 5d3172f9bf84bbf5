#pragma once

// PeerAuthentication resolution: the effective mTLS mode of a workload and port, composed
// as Istio does. The mesh policy (root namespace, no selector), then the namespace policy
// (no selector), then the workload policy (its selector matches) each override the mode
// unless theirs is UNSET; a workload policy's portLevelMtls overrides per port (UNSET there
// inherits). The default is PERMISSIVE. A policy with a selector in the root namespace is
// ignored. Where two policies share a scope the oldest (creationTimestamp, a missing one
// counting as oldest, then name) wins. Thread: any.

#include <cstdint>
#include <map>
#include <string>

#include "policy/model.h"

namespace palisade::policy {

struct EffectiveMtls {
  MtlsMode mode = MtlsMode::kPermissive;
  std::map<std::uint32_t, MtlsMode> ports;
  const PeerAuthentication* mesh = nullptr;
  const PeerAuthentication* ns = nullptr;
  const PeerAuthentication* workload = nullptr;

  MtlsMode forPort(std::uint32_t port) const {
    auto it = ports.find(port);
    return it == ports.end() ? mode : it->second;
  }
};

EffectiveMtls effectiveMtls(const PolicyBundle& bundle, const std::string& ns,
                            const std::map<std::string, std::string>& labels,
                            const std::string& root_namespace);

}  // namespace palisade::policy
