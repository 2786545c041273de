#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "index/index_mechanics.h"
#include "index_test_support.h"
#include "kvtier/block_index.h"

namespace kvtier {
namespace {

using testing_support::insert_chain;
using testing_support::random_chain;
using testing_support::random_key;
using testing_support::record;
using testing_support::ScopedSegment;

// Records which tier copies eviction released.
class RecordingListener : public EvictionListener {
 public:
  std::vector<std::pair<BlockKey, Tier>> released_blocks;
  void released(const BlockInfo& block, Tier tier) override { released_blocks.emplace_back(block.key, tier); }
};

// Longer than the coarse monotonic clock's tick (1-10 ms), which the index uses for LRU ages.
void age_a_little() { std::this_thread::sleep_for(std::chrono::milliseconds(25)); }

TEST(EvictionTest, PrefixAwareShrinksChainsFromTheTail) {
  ScopedSegment seg("prefix");
  auto index = BlockIndex::create(seg.options(1000)).value();
  std::mt19937_64 rng(1);
  const auto chain = random_chain(rng, 10);
  insert_chain(index, chain);
  age_a_little();
  // The head is the oldest-touched block; LRU would take it first and strand the tail.
  RecordingListener listener;
  auto report = index::IndexMechanics::evict(index, Tier::kHost, 3 * 4096, *make_prefix_aware_policy(), &listener);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->blocks_dropped, 3u);
  EXPECT_EQ(index.match_prefix(chain).overall, 7u);  // the prefix survives intact
  ASSERT_EQ(listener.released_blocks.size(), 3u);
  EXPECT_EQ(listener.released_blocks[0].first, chain[9]);
  EXPECT_TRUE(index.check_invariants().ok()) << index.check_invariants();
}

// The daemon demotes a slice of host memory at a time: one batch of victims chosen before any
// goes. A chain's inner block becomes a leaf to the batch once its children are chosen, so a batch
// takes the coldest chain whole instead of trimming every chain (the hot ones too) by a block.
TEST(EvictionTest, ABatchOfVictimsTakesTheColdestChainWhole) {
  ScopedSegment seg("batch");
  IndexOptions o = seg.options(1000);
  o.manual_clock = true;
  auto index = BlockIndex::create(o).value();
  std::mt19937_64 rng(7);
  const auto cold = random_chain(rng, 10), hot = random_chain(rng, 10);
  ASSERT_TRUE(index::IndexMechanics::set_clock(index, 10).ok());
  insert_chain(index, cold);
  ASSERT_TRUE(index::IndexMechanics::set_clock(index, 100).ok());
  insert_chain(index, hot);
  ASSERT_TRUE(index::IndexMechanics::set_clock(index, 200).ok());
  for (const auto& policy : {make_prefix_aware_policy(), make_prefix_frequency_policy(), make_hit_density_policy()}) {
    const auto batch = index::IndexMechanics::eviction_candidates(index, Tier::kHost, 10 * 4096, *policy,
                                                                  index::DemotionBar{UINT32_MAX});
    std::set<BlockKey> chosen;
    for (const index::EvictionVictim& v : batch) chosen.insert(v.block.key);
    EXPECT_EQ(chosen, std::set<BlockKey>(cold.begin(), cold.end())) << policy->name();
  }
  std::vector<BlockKey> keys;
  for (const index::EvictionVictim& v : index::IndexMechanics::eviction_candidates(
           index, Tier::kHost, 10 * 4096, *make_prefix_aware_policy(), index::DemotionBar{1})) {
    keys.push_back(v.block.key);
  }
  // Evicted children first, whatever order the batch lists them in.
  auto report = index::IndexMechanics::evict_keys(index, Tier::kHost, keys, *make_prefix_aware_policy(), nullptr);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->blocks_dropped, 10u);
  EXPECT_EQ(index.match_prefix(cold).overall, 0u);
  EXPECT_EQ(index.match_prefix(hot).overall, 10u);
  EXPECT_TRUE(index.check_invariants().ok()) << index.check_invariants();
}

TEST(EvictionTest, LruTakesTheLeastRecentlyUsed) {
  ScopedSegment seg("lru");
  auto index = BlockIndex::create(seg.options(1000)).value();
  std::mt19937_64 rng(2);
  const auto old_chain = random_chain(rng, 4);
  insert_chain(index, old_chain);
  age_a_little();
  const auto new_chain = random_chain(rng, 4);
  insert_chain(index, new_chain);
  age_a_little();
  index.acquire({&old_chain[0], 1}).value();  // touch one old block (lease dropped at once)
  auto report = index::IndexMechanics::evict(index, Tier::kHost, 3 * 4096, *make_lru_policy(), nullptr);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->blocks_dropped, 3u);
  EXPECT_TRUE(index.contains(old_chain[0]));  // recently acquired
  EXPECT_FALSE(index.contains(old_chain[1]));
  EXPECT_FALSE(index.contains(old_chain[2]));
  EXPECT_FALSE(index.contains(old_chain[3]));
  EXPECT_EQ(index.match_prefix(new_chain).overall, 4u);
}

TEST(EvictionTest, PinnedBlocksAreNeverEvicted) {
  ScopedSegment seg("pinned");
  auto index = BlockIndex::create(seg.options(1000)).value();
  std::mt19937_64 rng(3);
  std::vector<BlockKey> keys;
  for (int i = 0; i < 20; ++i) {
    keys.push_back(random_key(rng));
    ASSERT_TRUE(index.insert(record(keys.back(), {0, 0})).ok());
  }
  std::vector<BlockLease> held;
  for (int i = 0; i < 20; i += 2) held.push_back(std::move(index.acquire({&keys[i], 1}).value()[0]));
  auto report = index::IndexMechanics::evict(index, Tier::kHost, UINT64_MAX, *make_lru_policy(), nullptr);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->blocks_dropped, 10u);
  EXPECT_GT(report->candidates_skipped_pinned, 0u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(index.contains(keys[i]), i % 2 == 0) << i;
  held.clear();
  report = index::IndexMechanics::evict(index, Tier::kHost, UINT64_MAX, *make_lru_policy(), nullptr);
  EXPECT_EQ(report->blocks_dropped, 10u);
  EXPECT_EQ(index.stats().entries, 0u);
}

TEST(EvictionTest, HostEvictionNeverWritesAnotherTier) {
  // Copies to SSD are the node's mover's (tests/server/node/tier_mover_test.cc): the index drops
  // host-only blocks, and a block with an SSD copy stays cached there (a move).
  ScopedSegment seg("no-demotion");
  auto index = BlockIndex::create(seg.options(1000)).value();
  ASSERT_TRUE(index.set_tier_capacity(Tier::kSsd, 1 << 30).ok());
  std::mt19937_64 rng(4);
  const auto chain = random_chain(rng, 4);
  insert_chain(index, chain);
  const BlockKey solo = random_key(rng);
  ASSERT_TRUE(index.insert(record(solo, {0, 0})).ok());
  ASSERT_TRUE(index.insert(record(chain[3], chain[2], Tier::kSsd, 77)).ok());
  RecordingListener listener;
  const uint64_t seq_before = index.stats().change_seq;
  const std::vector<BlockKey> victims{chain[3], solo};
  auto report = index::IndexMechanics::evict_keys(index, Tier::kHost, victims, *make_prefix_aware_policy(), &listener);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->blocks_demoted, 1u) << "the leaf with an SSD copy stays cached there";
  EXPECT_EQ(report->blocks_dropped, 1u) << "the host-only block leaves the cache";
  EXPECT_FALSE(index.contains(solo));
  const PrefixMatch m = index.match_prefix(chain);
  EXPECT_EQ(m.overall, 4u);
  EXPECT_EQ(m.in(Tier::kHost), 3u);
  EXPECT_EQ(index.lookup(chain[3])->ssd_loc, 77u);
  EXPECT_EQ(index.stats().demotions, 1u);
  std::vector<IndexChange> changes(4);
  uint64_t next = 0;
  bool lost = false;
  ASSERT_EQ(index::IndexMechanics::read_changes(index, seq_before, changes, &next, &lost), 2u);
  EXPECT_EQ(changes[0].kind, IndexChange::Kind::kMoved);
  EXPECT_EQ(changes[1].kind, IndexChange::Kind::kRemoved);
  for (const auto& [key, tier] : listener.released_blocks) EXPECT_EQ(tier, Tier::kHost);
  EXPECT_TRUE(index.check_invariants().ok());
}

TEST(EvictionTest, AFullIndexMakesRoomByPolicyOrRefuses) {
  ScopedSegment seg("full");
  auto index = BlockIndex::create(seg.options(16)).value();
  std::mt19937_64 rng(6);
  const auto chain = random_chain(rng, 16);
  insert_chain(index, chain);
  ASSERT_EQ(index.stats().entries, 16u);
  RecordingListener listener;
  index::IndexMechanics::set_eviction_listener(index, &listener);
  const BlockKey extra = random_key(rng);
  ASSERT_TRUE(index.insert(record(extra, {0, 0})).ok());
  EXPECT_EQ(index.stats().entries, 16u);
  EXPECT_FALSE(index.contains(chain[15]));  // the chain's leaf made room
  ASSERT_EQ(listener.released_blocks.size(), 1u);
  EXPECT_EQ(listener.released_blocks[0].first, chain[15]);
  // Everything pinned: a clear refusal, nothing lost.
  std::vector<BlockKey> all(chain.begin(), chain.begin() + 15);
  all.push_back(extra);
  std::vector<BlockLease> held;
  for (const auto& k : all) held.push_back(std::move(index.acquire({&k, 1}).value()[0]));
  const Status s = index.insert(record(random_key(rng), {0, 0}));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(index.stats().entries, 16u);
  EXPECT_TRUE(index.check_invariants().ok());
}

TEST(EvictionTest, WatermarksDriveEviction) {
  ScopedSegment seg("watermark");
  auto index = BlockIndex::create(seg.options(1000)).value();
  EXPECT_EQ(index.set_tier_capacity(Tier::kHost, 100 * 4096, 0.5, 0.9).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(index.set_tier_capacity(Tier::kHost, 100 * 4096, 0.9, 0.5).ok());
  std::mt19937_64 rng(7);
  for (int c = 0; c < 19; ++c) insert_chain(index, random_chain(rng, 5));  // 95 blocks
  EXPECT_TRUE(index.above_high_watermark(Tier::kHost));
  auto report = index::IndexMechanics::evict_to_watermark(index, Tier::kHost, *make_prefix_aware_policy(), nullptr);
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(index.above_high_watermark(Tier::kHost));
  EXPECT_LE(index.stats().tier_bytes[tier_index(Tier::kHost)], 50u * 4096);
  EXPECT_EQ(index::IndexMechanics::evict_to_watermark(index, Tier::kHost, *make_lru_policy(), nullptr)->blocks_dropped,
            0u);
}

// The host arena gives blocks whole units: it can be full while payload is below the watermark.
// Judged by what the blocks occupy, the excess is asked for in payload, in the payload's share.
TEST(EvictionTest, OccupiedSpacePastTheHighWatermarkAsksForPayloadInItsShare) {
  ScopedSegment seg("occupied");
  auto index = BlockIndex::create(seg.options(1000)).value();
  ASSERT_TRUE(index.set_tier_capacity(Tier::kHost, 100 * 8192, 0.9, 0.5).ok());
  std::mt19937_64 rng(7);
  for (int c = 0; c < 16; ++c) insert_chain(index, random_chain(rng, 5));  // 80 blocks of 4 KiB: 40 %
  ASSERT_EQ(index.bytes_over_watermark(Tier::kHost), 0u);
  EXPECT_EQ(index.bytes_over_watermark(Tier::kHost, 80 * 8192), 0u) << "80 % occupied: below the high watermark";
  // 95 % occupied (80 blocks in 8 KiB units, 15 units reserved): about 45 units over the low
  // watermark (which is whole thousandths of the capacity), of which payload is 80 * 4096 / (95 * 8192).
  const auto low = [](uint64_t capacity) { return capacity / 1000 * 500; };
  EXPECT_NEAR(static_cast<double>(index.bytes_over_watermark(Tier::kHost, 95 * 8192)),
              static_cast<double>(95 * 8192 - low(100 * 8192)) * (80 * 4096) / (95 * 8192), 1.0);
  EXPECT_EQ(index.bytes_over_watermark(Tier::kHost, 0), 0u);
  ASSERT_TRUE(index.set_tier_capacity(Tier::kHost, 80 * 4096, 0.9, 0.5).ok());
  EXPECT_EQ(index.bytes_over_watermark(Tier::kHost, 0), index.bytes_over_watermark(Tier::kHost))
      << "payload past the watermark still counts when occupancy is reported lower";
  EXPECT_EQ(index.bytes_over_watermark(Tier::kHost), 80 * 4096 - low(80 * 4096));
}

TEST(EvictionTest, PrefixFrequencyKeepsBlocksUsedAgainOverOneOffsAndNeverStrandsAChain) {
  const auto p = make_prefix_frequency_policy();
  const EvictionCandidate once{1000, 0, 1, 4096}, twice{1400, 0, 2, 4096}, hot_old{20000, 0, 30, 4096};
  EXPECT_GT(p->rank(once), p->rank(twice)) << "used once goes first, though more recent";
  EXPECT_GT(p->rank(once), p->rank(hot_old)) << "a block used 30 times keeps its place far longer";
  const EvictionCandidate older_once{5000, 0, 1, 4096};
  EXPECT_GT(p->rank(older_once), p->rank(once)) << "among equals, the oldest";
  const EvictionCandidate inner{50000, 2, 1, 4096};
  EXPECT_GT(p->rank(once), p->rank(inner)) << "leaves before inner blocks, whatever their age";
  EXPECT_FALSE(p->may_evict(inner, EvictionAction::kDrop));
  EXPECT_TRUE(p->may_evict(inner, EvictionAction::kDemote));
  const EvictionCandidate s3_once{10, 0, 1, 4096}, s3_twice{100000, 0, 2, 4096};
  const auto s3 = *make_eviction_policy("s3fifo");
  EXPECT_GT(s3->rank(s3_once), s3->rank(s3_twice)) << "s3fifo: used once goes first, however young";
}

TEST(EvictionTest, HitDensityTakesTheLowestLearntDensityLeavesFirstAndSparesWhatWasJustWritten) {
  const auto p = make_hit_density_policy();
  EvictionCandidate sparse{5000, 0, 1, 4096}, dense{90000, 0, 3, 4096};
  sparse.hit_density = 1e-6F;
  dense.hit_density = 1e-3F;
  EXPECT_GT(p->rank(sparse), p->rank(dense)) << "fewer hits per tick go first, however old the other";
  EvictionCandidate never{10, 0, 1, 4096};
  never.hit_density = 0;
  EXPECT_GT(p->rank(never), p->rank(sparse)) << "what will not come back goes before what may";
  EvictionCandidate same_but_older = sparse;
  same_but_older.age = 9000;
  EXPECT_GT(p->rank(same_but_older), p->rank(sparse)) << "among equal densities, the oldest";
  EvictionCandidate just_written{2, 0, 1, 4096};
  just_written.hit_density = 0;
  EXPECT_LT(p->rank(just_written), p->rank(dense)) << "the end of a chain being written goes last";
  EvictionCandidate inner{90000, 2, 1, 4096};
  inner.hit_density = 0;
  EXPECT_GT(p->rank(dense), p->rank(inner)) << "leaves before inner blocks";
  EXPECT_FALSE(p->may_evict(inner, EvictionAction::kDrop));
  EXPECT_TRUE(p->may_evict(inner, EvictionAction::kDemote));
  // Nothing learnt yet (hit_density < 0): prefix-frequency's order.
  const EvictionCandidate once{1000, 0, 1, 4096}, twice{1400, 0, 2, 4096};
  EXPECT_GT(p->rank(once), p->rank(twice));
}

TEST(EvictionTest, PoliciesByName) {
  EXPECT_EQ((*make_eviction_policy("hit-density"))->name(), "hit-density");
  EXPECT_EQ((*make_eviction_policy("lru"))->name(), "lru");
  EXPECT_EQ((*make_eviction_policy("prefix-aware"))->name(), "prefix-aware");
  EXPECT_EQ((*make_eviction_policy("s3fifo"))->name(), "s3fifo");
  EXPECT_EQ((*make_eviction_policy("prefix-frequency"))->name(), "prefix-frequency");
  EXPECT_EQ(make_prefix_frequency_policy()->name(), "prefix-frequency");
  EXPECT_EQ(kDefaultEvictionPolicy, "hit-density") << "docs/benchmarks.md: the study that chose it";
  EXPECT_EQ((*make_eviction_policy(kDefaultEvictionPolicy))->name(), kDefaultEvictionPolicy);
  EXPECT_EQ(make_default_eviction_policy()->name(), kDefaultEvictionPolicy);
  EXPECT_EQ(make_eviction_policy("fifo").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvtier

namespace kvtier {
namespace {

// A host copy of a block that is also on SSD, brought up or used within about 2 s, is passed over
// while anything else can go: the daemon promotes blocks for an engine about to acquire them, and
// such a copy costs nothing to drop, so without the grace it would be the next upkeep's first
// victim. When nothing else can go it goes too: a host tier full of hot copies (a working set
// larger than the tier) must still make room.
TEST(EvictionTest, RecentHostCopiesOfSsdBlocksAreKeptForAGracePeriod) {
  ScopedSegment seg("grace");
  IndexOptions o = seg.options(1000);
  o.manual_clock = true;
  auto index = BlockIndex::create(o).value();
  std::mt19937_64 rng(7);
  const BlockKey promoted = random_key(rng), plain = random_key(rng);
  ASSERT_TRUE(index::IndexMechanics::set_clock(index, 10).ok());
  ASSERT_TRUE(index.insert(record(promoted, {0, 0}, Tier::kSsd, 77)).ok());
  ASSERT_TRUE(index.insert(record(promoted, {0, 0}, Tier::kHost, 1)).ok());  // brought up at 10
  ASSERT_TRUE(index::IndexMechanics::set_clock(index, 20).ok());
  ASSERT_TRUE(index.insert(record(plain, {0, 0}, Tier::kHost, 2)).ok());
  // LRU alone would take the promoted copy (older); within its grace the plain block goes.
  ASSERT_TRUE(index::IndexMechanics::set_clock(index, 500).ok());
  auto r = index::IndexMechanics::evict(index, Tier::kHost, 1, *make_lru_policy(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->blocks_dropped, 1u);
  EXPECT_FALSE(index.contains(plain));
  ASSERT_TRUE(index.lookup(promoted)->in(Tier::kHost));
  // With nothing else to take, the fresh copy goes rather than nothing; the block stays on SSD.
  const auto candidates =
      index::IndexMechanics::eviction_candidates(index, Tier::kHost, 1, *make_lru_policy(), index::DemotionBar{1});
  ASSERT_EQ(candidates.size(), 1u);
  EXPECT_EQ(candidates[0].block.key, promoted);
  r = index::IndexMechanics::evict(index, Tier::kHost, 1, *make_lru_policy(), nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes_freed, 4096u);
  const auto info = index.lookup(promoted);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->in(Tier::kHost));
  EXPECT_TRUE(info->in(Tier::kSsd));
  EXPECT_TRUE(index.check_invariants().ok()) << index.check_invariants();
}

}  // namespace
}  // namespace kvtier
