// How far put admission can go on what a node could know of a request when its blocks arrive:
// exact LRU admitting a request's new blocks by its conversation's turn and the time since its
// previous turn, the two features of the conversation trace that most tell a returning chain
// (docs/benchmarks.md#every-trace-and-how-far-online-policies-can-go-issue-25). The best of a grid
// of such rules is chosen with hindsight, per trace and capacity: tuned to the answer, it is more
// than any one online rule of the kind earns, and it includes admitting everything (exact LRU).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "policy/policy_simulator.h"
#include "workload/trace.h"

namespace kvtier::policy {

// What a request says of its conversation. A request continues an earlier one when it repeats
// all of that request's blocks but the last (partial) one, the last earlier request to use the
// deepest block it repeats: the next turn of a chat re-sends the turn before it.
struct RequestHistory {
  uint32_t turn = 0;               // 0: a new chain; n: the n-th return of a conversation
  std::optional<uint64_t> gap_ms;  // since the turn it continues (a turn > 0 only)
};
std::vector<RequestHistory> request_histories(std::span<const workload::TraceRequest> trace);

// One rule: admit a request's new blocks when its turn is at least `min_turn` and, for a returning
// conversation, its previous turn came less than `max_gap_ms` before (nullopt: any gap).
struct FeatureRule {
  uint32_t min_turn = 0;
  std::optional<uint64_t> max_gap_ms;
  bool admits(const RequestHistory& h) const;
  std::string describe() const;  // "turn >= 2, gap < 60 s", "new chains, or gap < 30 s", "every request"
};

// The rules tried: turns 0 to 4 by gaps of 15 s to 4 minutes or any.
std::vector<FeatureRule> feature_rule_grid();

struct FeatureAdmissionResult {
  SimulationResult result;  // policy "lru-feature-admission": the best rule's run
  FeatureRule rule;
};

// Every rule of the grid over exact LRU at `host_blocks`; the one with the most block hits.
FeatureAdmissionResult simulate_lru_feature_admission(std::span<const workload::TraceRequest> trace,
                                                      uint64_t host_blocks);

}  // namespace kvtier::policy
