// The feature-admission bound: conversations told apart by turn and gap as the trace shows them,
// the rules as documented, and the bound at least exact LRU (the grid admits everything too) and
// the best of its rules.
#include "policy/feature_admission.h"

#include <gtest/gtest.h>

#include "workload/synthetic_workload.h"

namespace kvtier::policy {
namespace {

using workload::TraceRequest;

TraceRequest request(uint64_t timestamp_ms, std::vector<uint64_t> ids) {
  TraceRequest r;
  r.timestamp_ms = timestamp_ms;
  r.input_length = static_cast<uint32_t>(ids.size() * workload::kTraceBlockTokens);
  r.hash_ids = std::move(ids);
  return r;
}

TEST(FeatureAdmission, AReturningTurnIsToldFromANewChainOnASharedPrompt) {
  const std::vector<TraceRequest> trace = {
      request(0, {0, 1, 2}),        // a new conversation on the shared prompt 0
      request(1000, {0, 5}),        // shares only the prompt: a new chain
      request(5000, {0, 1, 3, 4}),  // re-sends the first but its last block: its next turn
      request(7000, {0, 1, 3, 6, 7}), request(9000, {0, 1, 3, 4, 8}),  // repeats the third whole: a turn after it too
  };
  const std::vector<RequestHistory> h = request_histories(trace);
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[0].turn, 0u);
  EXPECT_FALSE(h[0].gap_ms);
  EXPECT_EQ(h[1].turn, 0u) << "the last user of the prompt was four blocks long";
  EXPECT_EQ(h[2].turn, 1u);
  EXPECT_EQ(h[2].gap_ms, 5000u);
  EXPECT_EQ(h[3].turn, 2u);
  EXPECT_EQ(h[3].gap_ms, 2000u);
  EXPECT_EQ(h[4].turn, 2u);
  EXPECT_EQ(h[4].gap_ms, 4000u);
}

TEST(FeatureAdmission, ARuleAdmitsByTurnAndByTheGapSinceTheTurnBefore) {
  const RequestHistory fresh{0, std::nullopt}, quick{2, 20'000}, slow{2, 300'000};
  const FeatureRule everything{};
  EXPECT_TRUE(everything.admits(fresh) && everything.admits(quick) && everything.admits(slow));
  EXPECT_EQ(everything.describe(), "every request");
  const FeatureRule returning{1, std::nullopt};
  EXPECT_FALSE(returning.admits(fresh));
  EXPECT_TRUE(returning.admits(slow));
  const FeatureRule soon{2, 60'000};
  EXPECT_TRUE(soon.admits(quick));
  EXPECT_FALSE(soon.admits(slow));
  EXPECT_EQ(soon.describe(), "turn >= 2, gap < 60 s");
  const FeatureRule soon_or_new{0, 60'000};
  EXPECT_TRUE(soon_or_new.admits(fresh)) << "a new chain has no gap to judge";
  EXPECT_FALSE(soon_or_new.admits(slow));
  EXPECT_EQ(soon_or_new.describe(), "new chains, or gap < 60 s");
  EXPECT_EQ(feature_rule_grid().size(), 30u);
}

TEST(FeatureAdmission, KeepingASlowReturnOutKeepsAQuickOne) {
  // Three blocks of room. A conversation coming back after 100 s pushes out one that comes back
  // after a second, under LRU; a rule on the gap keeps the slow one out.
  const std::vector<TraceRequest> trace = {request(0, {7, 8}), request(100'000, {1, 2}), request(101'000, {1, 2, 3}),
                                           request(101'500, {7, 8, 9}), request(102'000, {1, 2, 3, 4})};
  EXPECT_EQ(simulate_exact_lru(trace, 3).host_hit_blocks, 2u);
  const FeatureAdmissionResult best = simulate_lru_feature_admission(trace, 3);
  EXPECT_EQ(best.result.policy, "lru-feature-admission");
  EXPECT_EQ(best.result.host_hit_blocks, 5u);
  EXPECT_EQ(best.rule.min_turn, 0u) << "refusing new chains would refuse the quick conversation's first turn";
  ASSERT_TRUE(best.rule.max_gap_ms);
  EXPECT_LE(*best.rule.max_gap_ms, 60'000u);
}

TEST(FeatureAdmission, TheBoundIsTheBestRuleAndNeverBelowExactLru) {
  workload::SyntheticOptions o;
  o.requests = 1500;
  const std::vector<TraceRequest> trace = workload::generate_synthetic_workload(o).value();
  const FeatureAdmissionResult best = simulate_lru_feature_admission(trace, 300);
  EXPECT_GE(best.result.host_hit_blocks, simulate_exact_lru(trace, 300).host_hit_blocks);
  const std::vector<RequestHistory> history = request_histories(trace);
  for (const FeatureRule& rule : feature_rule_grid()) {
    const SimulationResult r =
        simulate_exact_lru_admitting(trace, 300, "rule", [&](size_t q, size_t) { return rule.admits(history[q]); });
    EXPECT_LE(r.host_hit_blocks, best.result.host_hit_blocks) << rule.describe();
  }
}

}  // namespace
}  // namespace kvtier::policy
