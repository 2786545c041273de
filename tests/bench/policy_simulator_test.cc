// The policy study's simulator: hits as an engine counts them (longest cached prefix, host then
// SSD), the index's own policies under a manual clock (repeatable), Belady's bound above every
// policy, and the exact-LRU baseline on a trace small enough to work out by hand.
#include "policy/policy_simulator.h"

#include <gtest/gtest.h>

#include "server/node/node_tiers.h"
#include "workload/synthetic_workload.h"

namespace kvtier::policy {
namespace {

using workload::TraceRequest;

TraceRequest request(std::vector<uint64_t> ids) {
  TraceRequest r;
  r.input_length = static_cast<uint32_t>(ids.size() * workload::kTraceBlockTokens);
  r.hash_ids = std::move(ids);
  return r;
}

std::vector<TraceRequest> synthetic() {
  workload::SyntheticOptions o;
  o.requests = 1500;
  return workload::generate_synthetic_workload(o).value();
}

TEST(PolicySimulator, AnAmpleHostTierHitsWhatTheTraceRepeats) {
  const auto trace = synthetic();
  const workload::TraceStats ideal = workload::trace_stats(trace);
  for (const char* name : {"lru", "prefix-aware", "prefix-frequency", "s3fifo", "hit-density"}) {
    SimulationOptions o;
    o.policy = name;
    o.host_blocks = ideal.unique_ids * 11 / 10 + 10;  // every block, below the upkeep's high watermark
    auto r = simulate(trace, o);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->host_hit_blocks, ideal.ideal_hit_blocks) << name;
    EXPECT_EQ(r->host_hit_tokens, ideal.ideal_hit_tokens) << name;
    EXPECT_EQ(r->dropped + r->demoted, 0u) << name;
    EXPECT_EQ(r->inserted, ideal.unique_ids) << name;
  }
}

// The study keeps host memory as the daemon does: its upkeep band, the daemon's own figures.
TEST(PolicySimulator, HostMemoryStaysWithinTheDaemonsWatermarks) {
  const SimulationOptions defaults;
  const node::NodeTiersOptions daemon;
  EXPECT_EQ(defaults.host_high_watermark, daemon.host_high_watermark);
  EXPECT_EQ(defaults.host_low_watermark, daemon.host_low_watermark);
  const auto trace = synthetic();
  SimulationOptions o;
  o.host_blocks = 300;
  auto r = simulate(trace, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_GT(r->dropped, 0u);
  const double held = static_cast<double>(r->inserted + r->promoted - r->dropped - r->demoted);
  EXPECT_LE(held, 300 * daemon.host_high_watermark) << "never past the high watermark";
  EXPECT_GE(held, 300 * daemon.host_low_watermark - 16) << "a pass takes it down to the low one, not far below";
}

TEST(PolicySimulator, BeladyBoundsEveryPolicyAndRunsRepeat) {
  const auto trace = synthetic();
  const SimulationResult opt = simulate_belady(trace, 300);
  for (const char* name : {"lru", "prefix-aware", "prefix-frequency", "s3fifo", "hit-density"}) {
    SimulationOptions o;
    o.policy = name;
    o.host_blocks = 300;
    auto first = simulate(trace, o);
    ASSERT_TRUE(first.ok());
    EXPECT_LE(first->host_hit_blocks, opt.host_hit_blocks) << name;
    EXPECT_GT(first->host_hit_blocks, 0u) << name;
    auto again = simulate(trace, o);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->host_hit_blocks, first->host_hit_blocks) << name << ": the manual clock makes runs repeat";
  }
  EXPECT_LE(simulate_exact_lru(trace, 300).host_hit_blocks, opt.host_hit_blocks);
}

// Admitting only what comes back can only help LRU, and stays under the optimum.
TEST(PolicySimulator, OracleAdmissionSitsBetweenLruAndBelady) {
  const auto trace = synthetic();
  const SimulationResult lru = simulate_exact_lru(trace, 300);
  const SimulationResult oracle = simulate_lru_oracle_admission(trace, 300);
  EXPECT_EQ(oracle.policy, "lru-oracle-admission");
  EXPECT_GT(oracle.host_hit_blocks, lru.host_hit_blocks);
  EXPECT_LE(oracle.host_hit_blocks, simulate_belady(trace, 300).host_hit_blocks);
  EXPECT_LT(oracle.inserted, lru.inserted) << "blocks never used again are not admitted";
  // By hand: A B, C, A B: C is never used again, so at one block it never displaces A.
  const std::vector<TraceRequest> tiny = {request({1}), request({3}), request({1})};
  EXPECT_EQ(simulate_exact_lru(tiny, 1).host_hit_blocks, 0u);
  EXPECT_EQ(simulate_lru_oracle_admission(tiny, 1).host_hit_blocks, 1u);
}

TEST(PolicySimulator, ExactLruAndBeladyOnAHandTrace) {
  // Two blocks of room. Chains: [1], [2], [3], [1], [2].
  const std::vector<TraceRequest> trace{request({1}), request({2}), request({3}), request({1}), request({2})};
  // LRU: 3 evicts 1, then 1 misses and evicts 2, then 2 misses. No hits.
  EXPECT_EQ(simulate_exact_lru(trace, 2).host_hit_blocks, 0u);
  // Belady: 3 is never used again, so it goes at once; 1 and 2 both hit.
  EXPECT_EQ(simulate_belady(trace, 2).host_hit_blocks, 2u);
  // A hit counts only as a prefix: [1, 9] after [1, 2] hits one block, not the 2 further on.
  const std::vector<TraceRequest> gap{request({1, 2}), request({1, 9, 2})};
  EXPECT_EQ(simulate_exact_lru(gap, 10).host_hit_blocks, 1u);
}

TEST(PolicySimulator, AnSsdTierCatchesWhatHostMemoryLetsGo) {
  const auto trace = synthetic();
  SimulationOptions host_only;
  host_only.host_blocks = 200;
  SimulationOptions tiered = host_only;
  tiered.ssd_blocks = 2000;
  tiered.ssd_min_accesses = 1;
  auto h = simulate(trace, host_only);
  auto t = simulate(trace, tiered);
  ASSERT_TRUE(h.ok() && t.ok());
  EXPECT_EQ(h->ssd_hit_blocks, 0u);
  EXPECT_GT(t->ssd_hit_blocks, 0u);
  EXPECT_GT(t->demoted, 0u);
  EXPECT_GT(t->promoted, 0u) << "SSD hits are loaded back into host memory";
  EXPECT_GT(t->block_hit(), h->block_hit());
  // The admission filter turns away blocks used once: the mover's victim selection judges them as
  // drops instead of asking the SSD tier, so nothing is refused at the tier itself.
  tiered.ssd_min_accesses = 2;
  auto filtered = simulate(trace, tiered);
  ASSERT_TRUE(filtered.ok());
  EXPECT_LT(filtered->demoted, t->demoted);
  EXPECT_GT(filtered->dropped, t->dropped);
  EXPECT_EQ(filtered->ssd_refused, 0u);
}

// The study's SSD tier is the daemon's (regions, the oldest reclaimed first) unless asked for the
// idealised one the index's policy evicts block by block; either way the SSD tier gives blocks up.
TEST(PolicySimulator, TheSsdTierReclaimsRegionsAsTheDaemonsStoreDoesOrEvictsByPolicy) {
  const auto trace = synthetic();
  SimulationOptions o;
  o.host_blocks = 100;
  o.ssd_blocks = 200;
  o.ssd_min_accesses = 1;
  o.ssd_regions = 8;
  auto regions = simulate(trace, o);
  o.ssd_by_policy = true;
  auto by_policy = simulate(trace, o);
  ASSERT_TRUE(regions.ok() && by_policy.ok());
  EXPECT_GT(regions->ssd_lost, 0u);
  EXPECT_GT(by_policy->ssd_lost, 0u);
  EXPECT_GT(regions->ssd_hit_blocks, 0u);
  EXPECT_GT(by_policy->ssd_hit_blocks, 0u);
  EXPECT_NE(regions->ssd_hit_blocks, by_policy->ssd_hit_blocks) << "two different tiers";
}

TEST(PolicySimulator, BadOptionsAreErrors) {
  const std::vector<TraceRequest> trace{request({1})};
  SimulationOptions o;
  o.policy = "clairvoyant";
  EXPECT_EQ(simulate(trace, o).status().code(), StatusCode::kInvalidArgument);
  o.policy = "lru";
  o.host_blocks = 0;
  EXPECT_EQ(simulate(trace, o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvtier::policy
