#pragma once

// Lint: warnings about valid policies that do not do what their authors usually mean —
// the traps Istio users fall into. Each warning carries file:line:col of the value at fault.
// `palisadectl authz validate` prints them; they never fail a load. Thread: any.

#include <vector>

#include "policy/model.h"

namespace palisade::policy {

std::vector<Diagnostic> lint(const PolicyBundle& bundle);

}  // namespace palisade::policy
