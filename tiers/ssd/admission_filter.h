// AdmissionFilter: the SSD tier's admission options, and its write budget. Flash wears out with
// writes, so a block leaving host memory is written only if it, or a near ancestor, was used at
// least `min_accesses` times (Dynamo's KVBM offloads blocks seen twice): the index judges that
// (index::DemotionBar), this filter counts it and caps the tier's write rate with a token bucket.
#pragma once

#include <chrono>
#include <cstdint>

namespace kvtier::ssd {

struct AdmissionOptions {
  uint32_t min_accesses = 2;              // the index's access count (1 = every block)
  uint32_t ancestor_hops = 1;             // or one of the nearest this many ancestors' (0 = the block's own only)
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

  // Whether a write of `bytes`, of a block that cleared the uses bar, fits the budget now.
  bool admit(uint64_t bytes, Clock::time_point now = Clock::now());
  // Counts a block kept off the tier for too few uses.
  void reject_cold() { ++stats_.rejected_cold; }
  const AdmissionStats& stats() const { return stats_; }
  const AdmissionOptions& options() const { return options_; }

 private:
  AdmissionOptions options_;
  AdmissionStats stats_;
  double tokens_ = -1;  // bytes; starts at one second's budget
  Clock::time_point refilled_{};
};

}  // namespace kvtier::ssd
