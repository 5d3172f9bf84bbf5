#pragma once

// Helpers shared by the benchmarks. Thread: any.

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "policy/result.h"

namespace palisade::bench {

// The value of `r`; a benchmark whose setup fails has nothing to measure, so it stops.
template <typename T>
T must(Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.error().message.c_str());
    std::abort();
  }
  return std::move(r).value();
}

}  // namespace palisade::bench
