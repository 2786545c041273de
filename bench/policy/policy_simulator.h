// The policy study's simulator: a trace replayed through a private BlockIndex and the daemon's
// tier mover (the code the node runs: its eviction sampling, its policies, put admission,
// demotion with the SSD admission, promotion) with a manual clock, so a month of requests takes
// seconds and every run is repeatable. Host memory is kept as the daemon's upkeep keeps it: past
// the high watermark, one demotion pass takes it down to the low one; the SSD tier as its store
// keeps it (simulated_ssd.h). Only block bytes are left out: a block's payload is its token count,
// so capacities are tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "kvtier/block_index.h"
#include "kvtier/eviction_policy.h"
#include "kvtier/result.h"
#include "tiers/ssd/admission_filter.h"
#include "workload/trace.h"

namespace kvtier::policy {

struct SimulationOptions {
  std::string policy{kDefaultEvictionPolicy};  // any name make_eviction_policy knows
  uint64_t host_blocks = 2000;                 // blocks of kTraceBlockTokens tokens
  uint64_t ssd_blocks = 0;                     // 0: no SSD tier, host victims are dropped
  uint32_t ssd_min_accesses = 2;               // the SSD tier's admission filter (1 admits every block)
  uint32_t ssd_ancestor_hops = ssd::AdmissionOptions{}.ancestor_hops;  // ... or a near ancestor's uses
  // The SSD tier as the daemon's store keeps it (simulated_ssd.h): this many regions (the default
  // node's: 8 GiB in 16 MiB regions), the oldest reclaimed first, blocks read since written
  // rewritten. `ssd_by_policy`: an idealised tier the index's policy evicts block by block instead.
  uint32_t ssd_regions = 512;
  bool ssd_reinsert_hot = true;
  bool ssd_by_policy = false;
  // The daemon's upkeep band (node::NodeTiersOptions; a test keeps the two equal).
  double host_high_watermark = kDefaultHighWatermark, host_low_watermark = kDefaultLowWatermark;
  // The engines' put admission (host.put_admission): a refused put ends the request's writes, as
  // an engine's connector stops a chain at not_admitted.
  PutAdmission put_admission = kDefaultPutAdmission;
};

// Hits count as an engine can use them: the longest cached prefix of a request's blocks, from
// host memory first, then the SSD tier. Tokens count the last, partial block's own length.
struct SimulationResult {
  std::string policy;
  uint64_t host_blocks = 0, ssd_blocks = 0;
  uint64_t requests = 0, block_refs = 0, input_tokens = 0;
  uint64_t host_hit_blocks = 0, ssd_hit_blocks = 0, host_hit_tokens = 0, ssd_hit_tokens = 0;
  uint64_t inserted = 0, promoted = 0, dropped = 0, demoted = 0, ssd_refused = 0;
  uint64_t ssd_lost = 0;      // blocks the SSD tier gave up (reclaimed, or evicted by the policy)
  uint64_t ssd_declined = 0;  // host victims not written to the full SSD tier: worth less than its next victim
  uint64_t not_admitted = 0;  // puts refused (the rest of their request's blocks not written)
  double seconds = 0;

  double block_hit() const { return ratio(host_hit_blocks + ssd_hit_blocks, block_refs); }
  double token_hit() const { return ratio(host_hit_tokens + ssd_hit_tokens, input_tokens); }
  double host_block_hit() const { return ratio(host_hit_blocks, block_refs); }
  double ssd_block_hit() const { return ratio(ssd_hit_blocks, block_refs); }
  double host_token_hit() const { return ratio(host_hit_tokens, input_tokens); }
  double ssd_token_hit() const { return ratio(ssd_hit_tokens, input_tokens); }
  static double ratio(uint64_t a, uint64_t b) { return b == 0 ? 0 : double(a) / double(b); }
};

// Replays `trace` in order. Fails on an unknown policy or when the index segment cannot be made
// (it lives in /dev/shm for the run's duration and is removed after).
Result<SimulationResult> simulate(std::span<const workload::TraceRequest> trace, const SimulationOptions& options);

// Belady's optimum for a host tier alone: on a miss, the block whose next use is farthest goes
// (requests' blocks are all cached after the request, as an engine writes them). An upper bound
// for every policy at that capacity; host fields only.
SimulationResult simulate_belady(std::span<const workload::TraceRequest> trace, uint64_t host_blocks);

// Exact LRU over a host tier alone (a list, not the index's sampling), a request's blocks touched
// in order: the textbook baseline, beside the index's sampled "lru" policy.
SimulationResult simulate_exact_lru(std::span<const workload::TraceRequest> trace, uint64_t host_blocks);

// Exact LRU where `admit(request, block)` false leaves a missing block out of the cache: the
// baseline of the admission bounds (this one, feature_admission.h).
using BlockAdmission = std::function<bool(size_t request, size_t block)>;
SimulationResult simulate_exact_lru_admitting(std::span<const workload::TraceRequest> trace, uint64_t host_blocks,
                                              std::string_view name, const BlockAdmission& admit);

// Exact LRU that admits only blocks the trace uses again ("lru-oracle-admission"): what admission
// on the put path could add at best when the eviction stays LRU. Needs the future, so it is a
// bound for admission, not a policy.
SimulationResult simulate_lru_oracle_admission(std::span<const workload::TraceRequest> trace, uint64_t host_blocks);

}  // namespace kvtier::policy
