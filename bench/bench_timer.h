// Timing for kvtier-bench suites on shared, noisy machines.
//
// A rate is the best of several runs: interference only ever slows a run down, so the fastest
// run is the closest to what the code can do. Suites alternate subject and baseline within each
// round so both see the same machine conditions.
#pragma once

#include <cstdint>
#include <functional>

namespace kvtier::bench {

double now_seconds();

// Keeps the optimiser from deleting work whose result is otherwise unused.
template <typename T>
inline void do_not_optimize(T const& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}
inline void clobber_memory() { asm volatile("" : : : "memory"); }

// Calls body(iterations), doubling `iterations` until one call lasts at least `min_seconds`,
// and returns iterations per second of that call.
double rate_per_second(const std::function<void(uint64_t iterations)>& body, double min_seconds);

struct PairedRates {
  double subject = 0;   // best subject rate (iterations/s)
  double baseline = 0;  // best baseline rate (iterations/s)
};

// `rounds` rounds of baseline then subject, each run for at least `min_seconds`; keeps the best of each.
PairedRates best_paired_rates(const std::function<void(uint64_t)>& subject,
                              const std::function<void(uint64_t)>& baseline, int rounds, double min_seconds);

}  // namespace kvtier::bench
