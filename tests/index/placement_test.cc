// Placement (docs/index.md#placement): which host victims a demotion pass writes to a full SSD
// tier. A victim is written when the policy admits it against the block the SSD tier would give
// up next, the judgement a put into a full host tier gets. Real index segment, manual clock,
// densities taught through the segment's own learning.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "index/index_mechanics.h"
#include "index/index_segment.h"
#include "index/reuse_learning.h"
#include "index_test_support.h"
#include "kvtier/block_index.h"
#include "taught_learning.h"

namespace kvtier::index {
namespace {

using testing_support::random_key;
using testing_support::record;
using testing_support::ScopedSegment;

constexpr uint64_t kBlock = 4096;  // the test records' payload

// Host memory holds blocks used once and blocks used twice; the SSD tier is full of blocks used
// twice. The learning says blocks used twice come back within 100 ticks, blocks used once rarely.
struct TwoTiers {
  ScopedSegment seg{"placement"};
  std::mt19937_64 rng{5};
  BlockIndex index;
  std::unique_ptr<IndexSegment> view;
  std::vector<BlockKey> once, twice, on_ssd;

  TwoTiers() : index(make()) {
    view = IndexSegment::attach(seg.name).value();
    testing_support::teach_twice_used_blocks_return(*view->learning());
    EXPECT_TRUE(index.set_tier_capacity(Tier::kHost, 8 * kBlock).ok());
    EXPECT_TRUE(index.set_tier_capacity(Tier::kSsd, 8 * kBlock).ok());
    for (int i = 0; i < 8; ++i) on_ssd.push_back(put(Tier::kSsd, 2));
    tick(5);
    for (int i = 0; i < 4; ++i) once.push_back(put(Tier::kHost, 1));
    for (int i = 0; i < 4; ++i) twice.push_back(put(Tier::kHost, 2));
    tick(10);
  }
  BlockIndex make() { return testing_support::manual_clock_index(seg.options(256), 1); }
  void tick(uint32_t n) { ASSERT_TRUE(IndexMechanics::set_clock(index, now += n).ok()); }
  // A block on its own chain, used `uses` times.
  BlockKey put(Tier tier, int uses) {
    const BlockKey k = random_key(rng);
    EXPECT_TRUE(index.insert(record(k, random_key(rng), tier)).ok());
    for (int u = 1; u < uses; ++u) EXPECT_TRUE(index.acquire({&k, 1}).ok());
    return k;
  }
  uint64_t hand() const { return view->header().clock_hand.load(); }
  uint32_t now = 1;
};

TEST(Placement, AFullSsdTierTakesOnlyVictimsWorthTheBlockItWouldGiveUp) {
  TwoTiers t;
  const uint64_t hand = t.hand();
  const std::optional<EvictionCandidate> displaced = IndexMechanics::next_victim(t.index, Tier::kSsd);
  ASSERT_TRUE(displaced.has_value());
  EXPECT_EQ(displaced->frequency, 2);
  EXPECT_GT(displaced->hit_density, 0);
  EXPECT_EQ(t.hand(), hand) << "looking at the next victim does not move eviction on";

  const auto policy = make_hit_density_policy();
  const auto victims =
      IndexMechanics::eviction_candidates(t.index, Tier::kHost, 8 * kBlock, *policy, DemotionBar{1, 0, displaced});
  ASSERT_EQ(victims.size(), 8u);
  std::set<BlockKey> written, dropped;
  for (const EvictionVictim& v : victims) {
    (v.action == EvictionAction::kDemote ? written : dropped).insert(v.block.key);
    EXPECT_EQ(v.verdict, v.action == EvictionAction::kDemote ? DemotionVerdict::kWrite : DemotionVerdict::kWorthLess);
  }
  EXPECT_EQ(written, std::set<BlockKey>(t.twice.begin(), t.twice.end())) << "as likely back as what they push out";
  EXPECT_EQ(dropped, std::set<BlockKey>(t.once.begin(), t.once.end())) << "one-offs are not worth an SSD block";

  // With room on SSD (nothing displaced) every victim that clears the uses bar is written.
  for (const EvictionVictim& v : IndexMechanics::eviction_candidates(t.index, Tier::kHost, 8 * kBlock, *policy,
                                                                     DemotionBar{1, 0, std::nullopt})) {
    EXPECT_EQ(v.action, EvictionAction::kDemote);
  }
  // The uses bar (the SSD admission filter's wear guard) still holds on its own.
  for (const EvictionVictim& v : IndexMechanics::eviction_candidates(t.index, Tier::kHost, 8 * kBlock, *policy,
                                                                     DemotionBar{3, 0, std::nullopt})) {
    EXPECT_EQ(v.action, EvictionAction::kDrop);
    EXPECT_EQ(v.verdict, DemotionVerdict::kCold);
  }
  // A policy that does not judge admission (LRU) writes every victim.
  for (const EvictionVictim& v : IndexMechanics::eviction_candidates(
           t.index, Tier::kHost, 8 * kBlock, *make_lru_policy(), DemotionBar{1, 0, displaced})) {
    EXPECT_EQ(v.action, EvictionAction::kDemote);
  }
  EXPECT_TRUE(t.index.check_invariants().ok());
}

// The wear guard's evidence reaches up the chain: a block used once that extends a prefix used
// twice (a returning conversation's newest turn) clears the uses bar when that reuse is within
// `ancestor_hops` of it. A block the SSD tier holds already is not judged: only its host copy goes.
TEST(Placement, ABlockUsedOnceClearsTheUsesBarWhenANearAncestorWasReused) {
  TwoTiers t;
  std::vector<BlockKey> chain;  // its head used twice, then four blocks used once
  BlockKey parent = random_key(t.rng);
  for (int i = 0; i < 5; ++i) {
    chain.push_back(random_key(t.rng));
    ASSERT_TRUE(t.index.insert(record(chain.back(), parent, Tier::kHost)).ok());
    parent = chain.back();
  }
  ASSERT_TRUE(t.index.acquire({chain.data(), 1}).ok());
  const BlockKey both = t.on_ssd[0];
  ASSERT_TRUE(t.index.insert(record(both, random_key(t.rng), Tier::kHost)).ok());

  const auto policy = make_hit_density_policy();
  const auto verdicts = [&](uint32_t hops) {
    std::map<BlockKey, DemotionVerdict> out;
    for (const EvictionVictim& v : IndexMechanics::eviction_candidates(t.index, Tier::kHost, 64 * kBlock, *policy,
                                                                       DemotionBar{2, hops, std::nullopt})) {
      out[v.block.key] = v.verdict;
      const bool kept = v.verdict == DemotionVerdict::kWrite || v.verdict == DemotionVerdict::kWriteForItsPrefix ||
                        v.block.in(Tier::kSsd);
      EXPECT_EQ(v.action, kept ? EvictionAction::kDemote : EvictionAction::kDrop);
    }
    return out;
  };
  for (const uint32_t hops : {0U, 1U, 3U, 16U}) {
    SCOPED_TRACE(testing::Message() << "ancestor_hops " << hops);
    auto v = verdicts(hops);
    ASSERT_EQ(v.size(), 4 + 4 + 5 + 1u) << "every host block is a candidate";
    EXPECT_EQ(v[both], DemotionVerdict::kHeldBelow);
    EXPECT_EQ(v[chain[0]], DemotionVerdict::kWrite) << "used twice itself";
    for (uint32_t i = 1; i < chain.size(); ++i) {
      EXPECT_EQ(v[chain[i]], i <= hops ? DemotionVerdict::kWriteForItsPrefix : DemotionVerdict::kCold) << "block " << i;
    }
    for (const BlockKey& k : t.once) EXPECT_EQ(v[k], DemotionVerdict::kCold) << "a chain of its own, used once";
  }
  // Evidence the index no longer holds is none: with the head gone, nothing vouches for its tail.
  ASSERT_TRUE(t.index.remove(chain[0]).ok());
  auto headless =
      IndexMechanics::eviction_candidates(t.index, Tier::kHost, 64 * kBlock, *policy, DemotionBar{2, 16, std::nullopt});
  const auto tail =
      std::find_if(headless.begin(), headless.end(), [&](const EvictionVictim& v) { return v.block.key == chain[1]; });
  ASSERT_NE(tail, headless.end());
  EXPECT_EQ(tail->verdict, DemotionVerdict::kCold);
  EXPECT_TRUE(t.index.check_invariants().ok());
}

TEST(Placement, TheTierBelowIsFullFromItsLowWatermarkByPayloadOrByWhatItsBlocksTake) {
  TwoTiers t;
  EXPECT_TRUE(IndexMechanics::past_low_watermark(t.index, Tier::kSsd, 0)) << "8 of 8 blocks of payload";
  ASSERT_TRUE(t.index.remove(t.on_ssd[0]).ok());
  ASSERT_TRUE(t.index.remove(t.on_ssd[1]).ok());
  EXPECT_FALSE(IndexMechanics::past_low_watermark(t.index, Tier::kSsd, 0));
  EXPECT_TRUE(IndexMechanics::past_low_watermark(t.index, Tier::kSsd, 8 * kBlock)) << "its space is taken";
  ASSERT_TRUE(t.index.set_tier_capacity(Tier::kSsd, 0).ok());
  EXPECT_FALSE(IndexMechanics::past_low_watermark(t.index, Tier::kSsd, 8 * kBlock)) << "no tier";
}

TEST(Placement, AnEmptyTierHasNoNextVictim) {
  TwoTiers t;
  for (const BlockKey& k : t.on_ssd) ASSERT_TRUE(t.index.remove(k).ok());
  EXPECT_FALSE(IndexMechanics::next_victim(t.index, Tier::kSsd).has_value());
}

}  // namespace
}  // namespace kvtier::index
