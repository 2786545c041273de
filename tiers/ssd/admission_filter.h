// AdmissionFilter: which blocks leaving host memory are worth an SSD write. Flash wears out with
// writes, so a block must have been used at least `min_accesses` times (Dynamo's KVBM offloads
// blocks seen twice), and the tier's write rate may be capped by a token bucket.
#pragma once

#include <chrono>
#include <cstdint>

namespace kvtier::ssd {

struct AdmissionOptions {
  uint32_t min_accesses = 2;              // the index's access count (1 = every block)
  uint64_t write_budget_bytes_per_s = 0;  // 0 = unlimited; bursts up to one second's worth
};

struct AdmissionStats {
  uint64_t admitted = 0, admitted_bytes = 0, rejected_cold = 0, rejected_budget = 0;
};

// Not thread-safe: the node's demoter is its only caller.
class AdmissionFilter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit AdmissionFilter(const AdmissionOptions& options) : options_(options) {}

  bool admit(uint32_t accesses, uint64_t bytes, Clock::time_point now = Clock::now());
  const AdmissionStats& stats() const { return stats_; }
  const AdmissionOptions& options() const { return options_; }

 private:
  AdmissionOptions options_;
  AdmissionStats stats_;
  double tokens_ = -1;  // bytes; starts at one second's budget
  Clock::time_point refilled_{};
};

}  // namespace kvtier::ssd
