// The index's reuse learning (src/index/reuse_learning.h): age buckets, hit densities from the
// counts (returns, forgettings, the horizon, classes without evidence), and, through a real index
// segment, that acquisitions and evicted blocks coming back teach the "hit-density" policy which
// blocks to keep where prefix-frequency's fixed weighting keeps the wrong ones.
#include "index/reuse_learning.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <set>

#include "index/evicted_uses.h"
#include "index/index_mechanics.h"
#include "index/index_segment.h"
#include "index_test_support.h"
#include "kvtier/block_index.h"
#include "kvtier/eviction_policy.h"

namespace kvtier::index {
namespace {

using testing_support::random_key;
using testing_support::record;
using testing_support::ScopedSegment;

TEST(ReuseLearning, AgesFallIntoLogSpacedBuckets) {
  for (uint32_t age = 0; age < 8; ++age) EXPECT_EQ(age_bucket(age), age);
  EXPECT_EQ(age_bucket(8), 8u);
  EXPECT_EQ(age_bucket(10), 9u);
  EXPECT_EQ(age_bucket(15), 11u);
  EXPECT_EQ(age_bucket(16), 12u) << "four buckets per octave";
  EXPECT_LT(age_bucket(UINT32_MAX), kAgeBuckets);
  uint32_t last = 0;
  for (uint64_t age = 8; age < (uint64_t{1} << 32); age = age * 9 / 8 + 1) {
    const uint32_t b = age_bucket(static_cast<uint32_t>(age));
    EXPECT_GE(b, last);
    last = b;
    const double middle = age_bucket_middle(b);
    EXPECT_NEAR(middle, double(age), double(age) / 4) << age;  // within its quarter octave
  }
  EXPECT_EQ(reuse_class(0), 0u);
  EXPECT_EQ(reuse_class(1), 0u);
  EXPECT_EQ(reuse_class(2), 1u);
  EXPECT_EQ(reuse_class(200), kReuseClasses - 1);
}

std::unique_ptr<ReuseLearning> fresh() { return std::make_unique<ReuseLearning>(); }

void returns(ReuseLearning& l, uint8_t uses, uint32_t age, int n) {
  for (int i = 0; i < n; ++i) observe_return(&l, uses, age);
}
void forgets(ReuseLearning& l, uint8_t uses, uint32_t age, int n) {
  for (int i = 0; i < n; ++i) observe_forgotten(&l, uses, age);
}

TEST(ReuseLearning, NothingLearntMeansNoDensity) {
  auto l = fresh();
  EXPECT_LT(hit_density(l.get(), 1, 100), 0) << "before the first update";
  EXPECT_LT(hit_density(nullptr, 1, 100), 0) << "a segment without the learning";
  update_densities(*l, 1'000'000);
  EXPECT_LT(hit_density(l.get(), 1, 100), 0) << "an update without evidence";
  EXPECT_LT(hit_density(l.get(), 6, 100), 0) << "every class falls back to the first";
}

TEST(ReuseLearning, BlocksThatComeBackSoonAreDenserThanBlocksThatDoNot) {
  auto l = fresh();
  returns(*l, 2, 100, 200);   // used twice: back after about 100 ticks
  returns(*l, 1, 5000, 20);   // used once: a few come back late...
  forgets(*l, 1, 6000, 180);  // ...most are forgotten
  update_densities(*l, 100'000);
  const float twice = hit_density(l.get(), 2, 10), once = hit_density(l.get(), 1, 10);
  EXPECT_GT(twice, 0);
  EXPECT_GT(once, 0);
  EXPECT_GT(twice, 10 * once);
  EXPECT_NEAR(twice, 1.0 / 90, 1.0 / 300) << "one hit per the ticks left until it comes back";
  EXPECT_EQ(hit_density(l.get(), 2, 20'000), 0) << "older than any return: it will not come back";
  // Classes without evidence take the one below; densities never rise with age.
  EXPECT_EQ(hit_density(l.get(), 5, 10), twice);
  for (uint32_t b = 1; b < kAgeBuckets; ++b) EXPECT_LE(l->density[0][b], l->density[0][b - 1]) << b;
}

TEST(ReuseLearning, ReturnsLaterThanTheHorizonCountAsNone) {
  auto l = fresh();
  returns(*l, 1, 1'000'000, 100);  // far later than four turnovers
  forgets(*l, 1, 10, 100);
  update_densities(*l, 1000);  // the last update was at tick 0: the horizon is 2000 ticks
  EXPECT_EQ(l->horizon_ticks, 2000u);
  EXPECT_EQ(hit_density(l.get(), 1, 0), 0);
}

TEST(ReuseLearning, CountsHalveAtEachUpdateSoRecentTurnoversWeighMost) {
  auto l = fresh();
  returns(*l, 1, 100, 64);
  forgets(*l, 1, 100, 64);
  update_densities(*l, 10'000);
  EXPECT_EQ(l->returned[0][age_bucket(100)], 32 * kEventWeight);
  EXPECT_EQ(l->forgotten[0][age_bucket(100)], 32 * kEventWeight);
  EXPECT_EQ(l->updates, 1u);
  EXPECT_EQ(l->inserts_since_update, 0u);
  // after_insert updates every two turnovers (at least 1024 inserts).
  for (int i = 0; i < 1023; ++i) after_insert(l.get(), 100, 20'000);
  EXPECT_EQ(l->updates, 1u);
  after_insert(l.get(), 100, 20'000);
  EXPECT_EQ(l->updates, 2u);
}

// An index sized for an SSD tier has far more ghost cells than blocks it evicts in a horizon, so
// overwritten cells alone would hardly ever say that a block did not come back. The sweep counts
// each block gone longer than the horizon as forgotten, once, and keeps its use count.
TEST(ReuseLearning, GhostsGoneLongerThanTheHorizonCountAsForgottenOnce) {
  ScopedSegment seg("ghost-sweep");
  IndexOptions o = seg.options(256);
  o.manual_clock = true;
  auto index = BlockIndex::create(o).value();
  auto view = IndexSegment::attach(o.segment_name);
  ASSERT_TRUE(view.ok()) << view.status();
  const IndexSegment& s = **view;
  ReuseLearning& l = *s.learning();
  std::mt19937_64 rng(5);
  uint32_t now = 1;
  const auto tick = [&](uint32_t n) {
    now += n;
    ASSERT_TRUE(IndexMechanics::set_clock(index, now).ok());
  };
  std::vector<BlockKey> gone;
  std::set<uint64_t> cells;  // each its own ghost cell: none is overwritten
  const auto own_cell = [&] {
    BlockKey k = random_key(rng);
    while (!cells.insert(k.lo & (s.ghost_slots() - 1)).second) k = random_key(rng);
    return k;
  };
  for (int i = 0; i < 32; ++i) {
    gone.push_back(own_cell());
    tick(1);
    ASSERT_TRUE(index.insert(record(gone.back(), {0, 0})).ok());
    ASSERT_TRUE(index.acquire(std::span<const BlockKey>(&gone.back(), 1)).ok());  // used twice
    ASSERT_TRUE(index.remove(gone.back()).ok());
  }
  const auto total = [](const uint32_t(&counts)[kReuseClasses][kAgeBuckets]) {
    uint64_t n = 0;
    for (const auto& c : counts) {
      for (uint32_t v : c) n += v;
    }
    return n;
  };
  ASSERT_EQ(total(l.forgotten), 0u);
  const uint64_t returned_before = total(l.returned);
  const auto sweep = [&] {
    for (uint64_t i = 0; i < s.ghost_slots(); ++i) age_out_ghosts(s, 0, now);
  };
  tick(1000);
  sweep();
  EXPECT_EQ(total(l.forgotten), 0u) << "nothing is learnt before the first update";
  l.updates = 1;
  l.horizon_ticks = 2000;
  sweep();
  EXPECT_EQ(total(l.forgotten), 0u) << "gone 1,000 ticks: within the horizon";
  const BlockKey recent = own_cell();
  tick(1500);
  ASSERT_TRUE(index.insert(record(recent, {0, 0})).ok());
  ASSERT_TRUE(index.remove(recent).ok());
  sweep();
  EXPECT_EQ(total(l.forgotten), 32u * kEventWeight) << "the 32 blocks gone 2,500 ticks, not the one gone just now";
  EXPECT_GT(l.forgotten[reuse_class(2)][age_bucket(2500)], 0u) << "at their class and age";
  sweep();
  EXPECT_EQ(total(l.forgotten), 32u * kEventWeight) << "once each";
  // One comes back: it keeps its uses, and is not counted as a return as well.
  tick(1);
  ASSERT_TRUE(index.insert(record(gone[0], {0, 0})).ok());
  EXPECT_GE(index.lookup(gone[0])->frequency, 2u);
  EXPECT_EQ(total(l.returned), returned_before);
  EXPECT_TRUE(index.check_invariants().ok());
}

// Through a real segment: blocks come back 100 ticks after each use until their third, blocks
// used once never come back. After two turnovers of learning, hit-density takes a young one-off
// block before an older block used twice (which is due back in 40 ticks); prefix-frequency's fixed
// weighting takes the older one (age / 2 against age × 2).
TEST(ReuseLearning, AnIndexLearnsFromAcquisitionsAndForgottenBlocks) {
  ScopedSegment seg("reuse-learning");
  IndexOptions o = seg.options(256);
  o.manual_clock = true;
  auto index = BlockIndex::create(o).value();
  ASSERT_TRUE(index.record_eviction_policy("hit-density").ok());  // acquirers count returns for it only
  std::mt19937_64 rng(11);
  uint32_t now = 1;
  const auto tick = [&](uint32_t n) {
    now += n;
    ASSERT_TRUE(IndexMechanics::set_clock(index, now).ok());
  };
  const auto use = [&](const BlockKey& k) { ASSERT_TRUE(index.acquire(std::span<const BlockKey>(&k, 1)).ok()); };
  std::vector<BlockKey> returning;
  for (int round = 0; round < 12; ++round) {
    for (int i = 0; i < 64; ++i) {
      returning.push_back(random_key(rng));
      tick(1);
      ASSERT_TRUE(index.insert(record(returning.back(), {0, 0})).ok());
    }
    for (int again = 0; again < 2; ++again) {
      tick(100);
      for (const BlockKey& k : returning) use(k);
    }
    for (const BlockKey& k : returning) ASSERT_TRUE(index.remove(k).ok());
    returning.clear();
    // Written and dropped, never used; their ghost cells are soon taken by other blocks.
    for (int i = 0; i < 128; ++i) {
      const BlockKey k = random_key(rng);
      tick(1);
      ASSERT_TRUE(index.insert(record(k, {0, 0})).ok());
      ASSERT_TRUE(index.remove(k).ok());
    }
  }
  const BlockKey old_returning = random_key(rng), young_one_off = random_key(rng);
  tick(1);
  ASSERT_TRUE(index.insert(record(old_returning, {0, 0})).ok());
  tick(100);
  use(old_returning);
  tick(50);
  ASSERT_TRUE(index.insert(record(young_one_off, {0, 0})).ok());
  tick(10);

  const auto candidates = [&](const EvictionPolicy& p) {
    return IndexMechanics::eviction_candidates(index, Tier::kHost, 1, p, DemotionBar{UINT32_MAX});
  };
  const auto hd = *make_eviction_policy("hit-density");
  const auto victims = candidates(*hd);
  ASSERT_EQ(victims.size(), 1u);
  EXPECT_EQ(victims[0].block.key, young_one_off) << "one-offs never came back; twice-used blocks did";
  const auto pf_victims = candidates(*make_prefix_frequency_policy());
  ASSERT_EQ(pf_victims.size(), 1u);
  EXPECT_EQ(pf_victims[0].block.key, old_returning) << "the fixed weighting takes the older block";
  EXPECT_TRUE(index.check_invariants().ok());
}

}  // namespace
}  // namespace kvtier::index
