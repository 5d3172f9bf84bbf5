#pragma once

// Loader: YAML manifests into the policy model. Reads Istio AuthorizationPolicy and
// PeerAuthentication (security.istio.io/v1 and v1beta1), ServiceEntry, WorkloadEntry,
// DestinationRule and VirtualService (networking.istio.io/v1, v1beta1 and v1alpha3),
// multi-document files, `kind: List` and directories, and validates them as Istio's own
// validation does. Every unknown field,
// unsupported feature, bad CIDR, bad port and YAML syntax error becomes a Diagnostic with
// file:line:col; nothing is skipped silently. Thread: any; no shared state.

#include <string>
#include <string_view>
#include <vector>

#include "policy/model.h"

namespace palisade::policy {

struct LoadResult {
  PolicyBundle bundle;
  std::vector<Diagnostic> diagnostics;  // errors first-seen order; warnings come from lint

  bool ok() const;
  // Only the errors, formatted "file:line:col: message", one per line.
  std::string errorText() const;
};

// Bounds on one input (DESIGN.md "Security rules": every input is bounded).
inline constexpr std::size_t kMaxPolicyFileBytes = 8u << 20;
inline constexpr std::size_t kMaxValuesPerFile = 2000000;

// Parses YAML text; `filename` is only used in marks. Appends to `out`.
void loadYaml(std::string_view text, const std::string& filename, LoadResult& out);

// Loads a file, or every *.yaml / *.yml file under a directory (recursively, sorted by
// path). A path that cannot be read is an error naming it.
LoadResult loadPath(const std::string& file_or_dir);

}  // namespace palisade::policy
