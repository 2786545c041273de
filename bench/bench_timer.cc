#include "bench_timer.h"

#include <algorithm>
#include <chrono>

namespace kvtier::bench {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double rate_per_second(const std::function<void(uint64_t)>& body, double min_seconds) {
  uint64_t iterations = 1;
  for (;;) {
    const double start = now_seconds();
    body(iterations);
    const double elapsed = now_seconds() - start;
    if (elapsed >= min_seconds) return static_cast<double>(iterations) / elapsed;
    // Aim straight for the target duration once a run is long enough to time reliably.
    const double scale = elapsed > 1e-4 ? std::min(8.0, 1.2 * min_seconds / elapsed) : 8.0;
    iterations = std::max<uint64_t>(iterations + 1, static_cast<uint64_t>(static_cast<double>(iterations) * scale));
  }
}

PairedRates best_paired_rates(const std::function<void(uint64_t)>& subject,
                              const std::function<void(uint64_t)>& baseline, int rounds, double min_seconds) {
  PairedRates best;
  for (int r = 0; r < rounds; ++r) {
    best.baseline = std::max(best.baseline, rate_per_second(baseline, min_seconds));
    best.subject = std::max(best.subject, rate_per_second(subject, min_seconds));
  }
  return best;
}

}  // namespace kvtier::bench
