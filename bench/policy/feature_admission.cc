#include "policy/feature_admission.h"

#include <fmt/format.h>

#include <unordered_map>

namespace kvtier::policy {

using workload::TraceRequest;

std::vector<RequestHistory> request_histories(std::span<const TraceRequest> trace) {
  std::vector<RequestHistory> out(trace.size());
  std::unordered_map<uint64_t, size_t> last_user;  // hash id -> the last request that used it
  for (size_t q = 0; q < trace.size(); ++q) {
    const std::vector<uint64_t>& ids = trace[q].hash_ids;
    size_t repeated = 0;
    while (repeated < ids.size() && last_user.contains(ids[repeated])) ++repeated;
    if (repeated > 0) {
      const size_t earlier = last_user.at(ids[repeated - 1]);
      if (repeated + 1 >= trace[earlier].hash_ids.size()) {
        out[q].turn = out[earlier].turn + 1;
        out[q].gap_ms = trace[q].timestamp_ms - trace[earlier].timestamp_ms;
      }
    }
    for (uint64_t id : ids) last_user[id] = q;
  }
  return out;
}

bool FeatureRule::admits(const RequestHistory& h) const {
  if (h.turn < min_turn) return false;
  return h.turn == 0 || !max_gap_ms || (h.gap_ms && *h.gap_ms < *max_gap_ms);
}

std::string FeatureRule::describe() const {
  if (min_turn == 0 && !max_gap_ms) return "every request";
  if (min_turn == 0) return fmt::format("new chains, or gap < {} s", *max_gap_ms / 1000);
  std::string s = fmt::format("turn >= {}", min_turn);
  if (max_gap_ms) s += fmt::format(", gap < {} s", *max_gap_ms / 1000);
  return s;
}

std::vector<FeatureRule> feature_rule_grid() {
  std::vector<FeatureRule> grid;
  for (uint32_t turn = 0; turn <= 4; ++turn) {
    grid.push_back({turn, std::nullopt});
    for (uint64_t seconds : {15, 30, 60, 120, 240}) grid.push_back({turn, seconds * 1000});
  }
  return grid;
}

FeatureAdmissionResult simulate_lru_feature_admission(std::span<const TraceRequest> trace, uint64_t host_blocks) {
  const std::vector<RequestHistory> history = request_histories(trace);
  std::optional<FeatureAdmissionResult> best;
  double seconds = 0;
  for (const FeatureRule& rule : feature_rule_grid()) {
    // A request's blocks already cached are touched whatever the rule: it decides the new ones.
    SimulationResult r = simulate_exact_lru_admitting(trace, host_blocks, "lru-feature-admission",
                                                      [&](size_t q, size_t) { return rule.admits(history[q]); });
    seconds += r.seconds;
    if (!best || r.host_hit_blocks > best->result.host_hit_blocks) best = FeatureAdmissionResult{std::move(r), rule};
  }
  best->result.seconds = seconds;  // the whole grid's time
  return *best;
}

}  // namespace kvtier::policy
