#include "policy/peer_authn.h"

namespace palisade::policy {
namespace {

bool older(const PeerAuthentication& a, const PeerAuthentication* b) {
  if (b == nullptr) {
    return true;
  }
  const std::string& ta = a.metadata.creation_timestamp;
  const std::string& tb = b->metadata.creation_timestamp;
  if (ta != tb) {
    // RFC 3339 UTC timestamps order as strings.
    // Istio reads a missing timestamp as Go's zero time: the oldest of all.
    if (ta.empty() || tb.empty()) {
      return ta.empty();
    }
    return ta < tb;
  }
  return a.metadata.name < b->metadata.name;
}

bool selects(const PeerAuthentication& pa, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : pa.selector->match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) {
      return false;
    }
  }
  return true;
}

}  // namespace

EffectiveMtls effectiveMtls(const PolicyBundle& bundle, const std::string& ns,
                            const std::map<std::string, std::string>& labels,
                            const std::string& root_namespace) {
  EffectiveMtls out;
  for (const PeerAuthentication& pa : bundle.peer_authentications) {
    const bool has_labels = pa.selector && !pa.selector->match_labels.empty();
    if (!has_labels) {
      if (pa.metadata.ns == root_namespace && older(pa, out.mesh)) {
        out.mesh = &pa;
      }
      if (pa.metadata.ns == ns && ns != root_namespace && older(pa, out.ns)) {
        out.ns = &pa;
      }
    } else if (pa.metadata.ns == ns && ns != root_namespace && selects(pa, labels) &&
               older(pa, out.workload)) {
      // A policy with a selector in the root namespace is ignored (Istio's
      // ComposePeerAuthentication takes workload policies only outside it).
      out.workload = &pa;
    }
  }
  for (const PeerAuthentication* level : {out.mesh, out.ns, out.workload}) {
    if (level != nullptr && level->mode != MtlsMode::kUnset) {
      out.mode = level->mode;
    }
  }
  if (out.workload != nullptr) {
    for (const auto& [port, mode] : out.workload->port_level_mtls) {
      out.ports[port] = mode == MtlsMode::kUnset ? out.mode : mode;
    }
  }
  return out;
}

}  // namespace palisade::policy
