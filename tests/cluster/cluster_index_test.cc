#include "cluster/cluster_index.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "cluster/node_scoring.h"

namespace kvtier::cluster {
namespace {

std::vector<BlockKey> chain(uint64_t space, size_t n) {
  std::vector<BlockKey> out;
  for (size_t i = 0; i < n; ++i) out.push_back({space, 1000 + i});
  return out;
}

std::span<const BlockKey> first(const std::vector<BlockKey>& keys, size_t n) { return {keys.data(), n}; }

TEST(ClusterIndexTest, NodesGetSlotsAndFreedSlotsAreReused) {
  ClusterIndex idx;
  const NodeSlot a = idx.add_node("a").value();
  const NodeSlot b = idx.add_node("b").value();
  EXPECT_NE(a, b);
  EXPECT_EQ(idx.add_node("a").value(), a) << "the same name, the same slot";
  EXPECT_EQ(idx.find_node("b"), b);
  EXPECT_FALSE(idx.find_node("c"));
  EXPECT_FALSE(idx.add_node("").ok());
  idx.remove_node(a);
  EXPECT_FALSE(idx.find_node("a"));
  EXPECT_EQ(idx.add_node("c").value(), a) << "a's slot is free again";
  EXPECT_EQ(idx.node_name(a), "c");
}

TEST(ClusterIndexTest, StoredAndRemovedAreIdempotentPerTier) {
  ClusterIndex idx(4);
  const NodeSlot a = idx.add_node("a").value();
  const auto keys = chain(1, 3);
  idx.stored(a, Tier::kHost, keys);
  idx.stored(a, Tier::kHost, keys);
  idx.stored(a, Tier::kSsd, first(keys, 1));
  EXPECT_EQ(idx.stats().keys, 3u);
  EXPECT_EQ(idx.stats().residency, 4u);
  ASSERT_EQ(idx.holders(keys[0]).size(), 1u);
  EXPECT_EQ(idx.holders(keys[0])[0].tiers, tier_bit(Tier::kHost) | tier_bit(Tier::kSsd));
  idx.removed(a, Tier::kHost, keys);
  idx.removed(a, Tier::kHost, keys);
  idx.removed(a, Tier::kHbm, keys);  // never held there
  EXPECT_EQ(idx.stats().keys, 1u) << "only the SSD copy of the first block is left";
  EXPECT_EQ(idx.stats().residency, 1u);
  EXPECT_TRUE(idx.holders(keys[1]).empty());
}

TEST(ClusterIndexTest, ClearingANodeLeavesTheOthersAlone) {
  ClusterIndex idx(8);
  const NodeSlot a = idx.add_node("a").value();
  const NodeSlot b = idx.add_node("b").value();
  const auto keys = chain(1, 100);
  idx.stored(a, Tier::kHost, keys);
  idx.stored(a, Tier::kHbm, first(keys, 10));
  idx.stored(b, Tier::kSsd, first(keys, 50));
  EXPECT_EQ(idx.clear_node(a, tier_bit(Tier::kHbm)), 10u) << "one tier (an engine's AllBlocksCleared)";
  EXPECT_EQ(idx.clear_node(a), 100u);
  EXPECT_EQ(idx.stats().keys, 50u);
  EXPECT_EQ(idx.stats().residency, 50u);
  for (const BlockKey& k : first(keys, 50)) {
    const Holders h = idx.holders(k);
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].node, b);
  }
}

TEST(ClusterIndexTest, ABatchOfChangesKeepsEachKeysOrder) {
  ClusterIndex idx(8);
  const NodeSlot a = idx.add_node("a").value();
  const auto keys = chain(2, 64);
  const uint8_t host = tier_bit(Tier::kHost), ssd = tier_bit(Tier::kSsd);
  std::vector<ClusterIndex::Change> changes;
  for (const BlockKey& k : keys) changes.push_back({k, host, 0});
  changes.push_back({keys[0], 0, host});  // stored, then removed: gone
  changes.push_back({keys[1], 0, host});  // removed, then stored again: held
  changes.push_back({keys[1], host, 0});
  changes.push_back({keys[2], ssd, host});  // moved from host memory to SSD
  changes.push_back({keys[63], 0, ssd});    // never on SSD: nothing
  idx.apply(a, changes);
  EXPECT_TRUE(idx.holders(keys[0]).empty());
  ASSERT_EQ(idx.holders(keys[1]).size(), 1u);
  EXPECT_EQ(idx.holders(keys[1])[0].tiers, host);
  ASSERT_EQ(idx.holders(keys[2]).size(), 1u);
  EXPECT_EQ(idx.holders(keys[2])[0].tiers, ssd);
  EXPECT_EQ(idx.stats().keys, 63u);
  EXPECT_EQ(idx.stats().residency, 63u);
}

TEST(NodeScoringTest, OwnPrefixByFastestTierThenRemoteBlocks) {
  ClusterIndex idx;
  const NodeSlot a = idx.add_node("a").value();
  const NodeSlot b = idx.add_node("b").value();
  (void)idx.add_node("c").value();
  const auto keys = chain(7, 10);
  idx.stored(a, Tier::kHbm, first(keys, 2));
  idx.stored(a, Tier::kHost, first(keys, 4));                 // blocks 0-1 in HBM and host: HBM counts
  idx.stored(b, Tier::kSsd, keys);                            // b holds all 10 on SSD
  idx.stored(a, Tier::kHost, std::span(keys).subspan(6, 2));  // after a's gap: not a's prefix
  const TierWeights w;
  const ScoreResult r = score_nodes(idx, keys, {}, w, 16);
  EXPECT_EQ(r.keys, 10u);
  EXPECT_EQ(r.cluster_prefix, 10u);
  ASSERT_EQ(r.nodes.size(), 3u);
  const auto find = [&](const char* n) {
    for (const NodeScore& s : r.nodes) {
      if (s.name == n) return s;
    }
    ADD_FAILURE() << n;
    return NodeScore{};
  };
  const NodeScore sa = find("a"), sb = find("b"), sc = find("c");
  EXPECT_EQ(sa.blocks[tier_index(Tier::kHbm)], 2u);
  EXPECT_EQ(sa.blocks[tier_index(Tier::kHost)], 2u);
  EXPECT_EQ(sa.prefix_blocks, 4u);
  EXPECT_EQ(sa.remote_blocks, 6u);
  EXPECT_DOUBLE_EQ(sa.score, 16 * (2 * w.hbm + 2 * w.host + 6 * w.remote));
  EXPECT_EQ(sb.blocks[tier_index(Tier::kSsd)], 10u);
  EXPECT_DOUBLE_EQ(sb.score, 16 * 10 * w.ssd);
  EXPECT_EQ(sc.prefix_blocks, 0u);
  EXPECT_EQ(sc.remote_blocks, 10u) << "an empty node can still fetch every block from the others";
  EXPECT_EQ(r.nodes.front().name, w.ssd * 10 > 2 * w.hbm + 2 * w.host + 6 * w.remote ? "b" : "a");
  (void)b;
}

TEST(NodeScoringTest, WeightsDecideAndTheWalkStopsAtTheFirstKeyNobodyHolds) {
  ClusterIndex idx;
  const NodeSlot a = idx.add_node("a").value();
  const NodeSlot b = idx.add_node("b").value();
  const auto keys = chain(3, 8);
  idx.stored(a, Tier::kHbm, first(keys, 3));
  idx.stored(b, Tier::kSsd, first(keys, 5));
  idx.stored(b, Tier::kSsd, std::span(keys).subspan(6, 2));  // block 5 is held by nobody
  TierWeights hbm_only{1.0, 0.0, 0.0, 0.0};
  ScoreResult r = score_nodes(idx, keys, {}, hbm_only, 16);
  EXPECT_EQ(r.cluster_prefix, 5u);
  EXPECT_EQ(r.nodes.front().name, "a");
  EXPECT_DOUBLE_EQ(r.nodes.front().score, 48);
  TierWeights ssd_heavy{0.1, 0.1, 1.0, 0.0};
  r = score_nodes(idx, keys, {}, ssd_heavy, 16);
  EXPECT_EQ(r.nodes.front().name, "b");
  EXPECT_EQ(r.nodes.front().prefix_blocks, 5u);
  EXPECT_FALSE((TierWeights{1.5, 0, 0, 0}.validate().ok()));
  EXPECT_FALSE((TierWeights{1, 0, 0, -0.1}.validate().ok()));
  EXPECT_TRUE(TierWeights{}.validate().ok());
}

TEST(NodeScoringTest, CandidatesRestrictTheAnswerAndUnknownNamesHoldNothing) {
  ClusterIndex idx;
  const NodeSlot a = idx.add_node("a").value();
  (void)idx.add_node("b").value();
  const auto keys = chain(3, 4);
  idx.stored(a, Tier::kHost, keys);
  const std::vector<std::string> cand = {"b", "ghost", "b"};
  const ScoreResult r = score_nodes(idx, keys, cand, TierWeights{}, 16);
  ASSERT_EQ(r.nodes.size(), 2u) << "b once, ghost once";
  for (const NodeScore& s : r.nodes) {
    EXPECT_EQ(s.prefix_blocks, 0u) << s.name;
    EXPECT_EQ(s.remote_blocks, 4u) << s.name;
  }
  EXPECT_EQ(score_nodes(idx, {}, {}, TierWeights{}, 16).cluster_prefix, 0u);
}

TEST(ClusterIndexTest, IngestAndScoringRunConcurrently) {
  ClusterIndex idx(16);
  std::vector<NodeSlot> slots;
  for (int n = 0; n < 4; ++n) slots.push_back(idx.add_node("n" + std::to_string(n)).value());
  const auto keys = chain(9, 512);
  std::atomic<bool> stop{false};
  std::thread scorer([&] {
    while (!stop.load()) {
      const ScoreResult r = score_nodes(idx, keys, {}, TierWeights{}, 16);
      for (const NodeScore& s : r.nodes) ASSERT_LE(s.prefix_blocks + s.remote_blocks, keys.size());
    }
  });
  std::vector<std::thread> writers;
  for (const NodeSlot s : slots) {
    writers.emplace_back([&, s] {
      for (int round = 0; round < 50; ++round) {
        idx.stored(s, Tier::kHost, keys);
        idx.removed(s, Tier::kHost, first(keys, 256));
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  scorer.join();
  EXPECT_EQ(idx.stats().residency, 4u * 256);
  const ScoreResult r = score_nodes(idx, keys, {}, TierWeights{}, 16);
  EXPECT_EQ(r.cluster_prefix, 0u) << "the first 256 blocks are gone everywhere";
}

}  // namespace
}  // namespace kvtier::cluster
