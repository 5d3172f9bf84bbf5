#pragma once

// Counts heap allocations made through global operator new, so benchmarks can report
// allocations per operation next to time. Thread: any (a relaxed atomic).

#include <cstdint>

namespace palisade::bench {

std::uint64_t allocationCount();

}  // namespace palisade::bench
