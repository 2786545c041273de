// The tier mover on its own: the real index and host arena, and an SSD tier kept in memory so a
// test can make it refuse (a fault the real SsdStore shows only when its disk fills; the real one
// is driven through NodeTiers in node_tiers_test.cc).
#include "server/node/tier_mover.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "index/index_mechanics.h"
#include "index/index_segment.h"
#include "index/index_test_support.h"
#include "index/taught_learning.h"
#include "tiers/host/host_arena.h"
#include "tiers/host/host_tier_store.h"

namespace kvtier::node {
namespace {

using testing_support::random_chain;
using testing_support::ScopedSegment;
using testing_support::unique_segment_name;

constexpr uint32_t kBlockBytes = 4096;

// An SSD tier in memory: keeps the bytes it is given, by key; refuses on demand.
class MemorySsd final : public tiers::TierStore {
 public:
  Status refuse;  // not ok: every insert fails with it
  std::map<BlockKey, std::vector<uint8_t>> blocks;
  size_t inserts = 0, removes = 0;

  Tier tier() const override { return Tier::kSsd; }
  uint64_t capacity_bytes() const override { return 1ULL << 30; }
  uint64_t used_bytes() const override { return blocks.size() * kBlockBytes; }
  bool contains(const BlockKey& key, uint64_t) const override { return blocks.contains(key); }
  Result<tiers::TierSpace> reserve(const tiers::TierBlock&) override {
    return Status::failed_precondition("written through insert()");
  }
  Result<uint64_t> insert(const tiers::TierBlock& block, std::span<const uint8_t> payload) override {
    ++inserts;
    if (!refuse.ok()) return refuse;
    blocks[block.key].assign(payload.begin(), payload.end());
    return 1000 + inserts;
  }
  Status commit(uint64_t) override { return {}; }
  void abandon(const BlockKey& key, uint64_t) override { blocks.erase(key); }
  std::span<const uint8_t> view(uint64_t, uint32_t) const override { return {}; }
  void read(std::span<tiers::TierRead> reads) override {
    for (tiers::TierRead& r : reads) {
      auto it = blocks.find(r.block.key);
      if (it == blocks.end()) {
        r.status = Status::not_found("not on SSD");
        continue;
      }
      std::copy(it->second.begin(), it->second.end(), r.out.begin());
      r.status = {};
    }
  }
  void remove(const BlockKey& key, uint64_t) override {
    ++removes;
    blocks.erase(key);
  }
  Status flush() override { return {}; }
  void recover(const std::function<void(const tiers::TierBlock&, uint64_t)>&) const override {}
  void visit_counters(tiers::CounterVisitor& v) const override { v.counter("memory_ssd_inserts_total", "", inserts); }
};

struct Fixture {
  ScopedSegment seg{"mover"};
  std::string arena_name = unique_segment_name("mover-arena");
  BlockIndex index;
  std::unique_ptr<host::HostArena> arena;
  std::unique_ptr<host::HostTierStore> host;
  MemorySsd ssd;
  std::unique_ptr<TierMover> mover;

  explicit Fixture(uint32_t min_accesses = 1, bool with_ssd = true, uint32_t ancestor_hops = 0)
      : index(BlockIndex::create(seg.options(1000)).value()),
        arena(host::HostArena::create({arena_name, 64ULL << 20, 4ULL << 20}).value()),
        host(std::make_unique<host::HostTierStore>(*arena, index)) {
    EXPECT_TRUE(index.set_tier_capacity(Tier::kHost, host->capacity_bytes()).ok());
    EXPECT_TRUE(index.set_tier_capacity(Tier::kSsd, with_ssd ? ssd.capacity_bytes() : 0).ok());
    mover = std::make_unique<TierMover>(index, *host, with_ssd ? &ssd : nullptr,
                                        ssd::AdmissionOptions{min_accesses, ancestor_hops, 0});
  }
  ~Fixture() {
    mover.reset();
    (void)host::HostArena::destroy(arena_name);
  }

  // Puts the chain in host memory as an engine does (reserve, fill, publish, commit); block i's
  // bytes are all i + 1.
  void put(const std::vector<BlockKey>& chain, bool age = false) {
    BlockKey parent{0, 0};
    for (size_t i = 0; i < chain.size(); ++i) {
      auto space = host->reserve({chain[i], parent.lo, 1, kBlockBytes});
      ASSERT_TRUE(space.ok()) << space.status();
      std::fill_n(space->bytes.begin(), kBlockBytes, static_cast<uint8_t>(i + 1));
      ASSERT_TRUE(index.insert(BlockRecord{chain[i], parent, 1, kBlockBytes, Tier::kHost, space->locator}).ok());
      ASSERT_TRUE(host->commit(space->locator).ok());
      parent = chain[i];
      // Longer than the coarse clock's tick, so that LRU ages differ block to block.
      if (age) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  size_t in(Tier t, const std::vector<BlockKey>& chain) const { return index.match_prefix(chain).in(t); }
};

TEST(TierMover, DemotionCopiesTheBytesToSsdThenLeavesHostMemory) {
  Fixture f;
  std::mt19937_64 rng(1);
  const auto chain = random_chain(rng, 6);
  f.put(chain);
  const uint64_t seq_before = f.index.stats().change_seq;
  EvictionReport report;
  auto written = f.mover->demote(uint64_t{6} * kBlockBytes, &report);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 6u);
  EXPECT_EQ(report.blocks_demoted, 6u) << "inner blocks too: on SSD they stay reachable";
  EXPECT_EQ(f.in(Tier::kSsd, chain), 6u);
  EXPECT_EQ(f.in(Tier::kHost, chain), 0u);
  EXPECT_EQ(f.arena->stats().used_bytes, 0u) << "the arena space went back";
  for (size_t i = 0; i < chain.size(); ++i) {
    ASSERT_TRUE(f.ssd.blocks.contains(chain[i]));
    EXPECT_EQ(f.ssd.blocks[chain[i]], std::vector<uint8_t>(kBlockBytes, static_cast<uint8_t>(i + 1)));
  }
  // Each block: stored on SSD, then moved out of host memory.
  std::vector<IndexChange> changes(32);
  uint64_t next = 0;
  bool lost = false;
  const size_t n = index::IndexMechanics::read_changes(f.index, seq_before, changes, &next, &lost);
  ASSERT_EQ(n, 12u);
  EXPECT_EQ(changes[n - 1].kind, IndexChange::Kind::kMoved);
  EXPECT_EQ(changes[n - 1].tiers_after, tier_bit(Tier::kSsd));
  EXPECT_EQ(f.mover->stats().demoted, 6u);
  EXPECT_TRUE(f.index.check_invariants().ok());
}

TEST(TierMover, BlocksBelowTheAdmissionThresholdAreDroppedWithoutAnSsdWrite) {
  Fixture f(/*min_accesses=*/2, /*with_ssd=*/true, /*ancestor_hops=*/0);
  std::mt19937_64 rng(2);
  const auto chain = random_chain(rng, 4);
  f.put(chain);
  ASSERT_TRUE(f.index.acquire(std::span<const BlockKey>(chain.data(), 2)).ok());  // the first two: used twice
  EvictionReport report;
  auto written = f.mover->demote(uint64_t{4} * kBlockBytes, &report);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, 2u) << "the blocks used twice go down to SSD";
  EXPECT_EQ(f.ssd.inserts, 2u) << "the SSD tier is asked only for blocks it admits";
  EXPECT_EQ(f.in(Tier::kSsd, chain), 2u);
  // The blocks used once are judged as drops and go, the leaf first: block 2 is a leaf to the
  // batch once block 3 is chosen (prefix-aware: a drop never strands a cached tail).
  EXPECT_EQ(report.blocks_dropped, 2u);
  EXPECT_FALSE(f.index.contains(chain[3]));
  EXPECT_FALSE(f.index.contains(chain[2]));
  EXPECT_EQ(f.mover->stats().admission.rejected_cold, 2u);
}

// A block used once whose parent was used twice is a returning prefix's newest block: with
// ancestor_hops 1 it clears the wear guard, and the block after it, two hops from a reuse, does not.
TEST(TierMover, ABlockUsedOnceThatExtendsAReusedPrefixIsWrittenToo) {
  Fixture f(/*min_accesses=*/2, /*with_ssd=*/true, /*ancestor_hops=*/1);
  std::mt19937_64 rng(3);
  const auto chain = random_chain(rng, 4);
  f.put(chain);
  ASSERT_TRUE(f.index.acquire(std::span<const BlockKey>(chain.data(), 2)).ok());
  EvictionReport report;
  auto written = f.mover->demote(uint64_t{4} * kBlockBytes, &report);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 3u);
  EXPECT_TRUE(f.index.lookup(chain[2])->in(Tier::kSsd)) << "its parent was used twice";
  EXPECT_FALSE(f.index.contains(chain[3])) << "two hops from a reused block";
  EXPECT_EQ(report.blocks_dropped, 1u);
  EXPECT_EQ(f.mover->stats().admission.rejected_cold, 1u);
  EXPECT_EQ(f.mover->stats().demoted_for_prefix, 1u) << "of the three written, one for its parent's uses";
  EXPECT_TRUE(f.index.check_invariants().ok());
}

// Placement (docs/index.md#placement): once the SSD tier is full, a host victim is written only
// if the policy rates it at least as high as the SSD block the write would push out.
TEST(TierMover, AFullSsdTierTakesOnlyVictimsWorthWhatTheyWouldPushOut) {
  Fixture f;
  ASSERT_TRUE(f.index.set_tier_capacity(Tier::kSsd, uint64_t{2} * kBlockBytes).ok());
  std::mt19937_64 rng(8);
  const auto on_ssd = random_chain(rng, 2);
  f.put(on_ssd);
  ASSERT_TRUE(f.index.acquire(on_ssd).ok());  // used twice
  ASSERT_EQ(*f.mover->demote(uint64_t{2} * kBlockBytes), 2u) << "room on SSD: written";
  ASSERT_TRUE(index::IndexMechanics::past_low_watermark(f.index, Tier::kSsd, f.ssd.used_bytes()));
  // What the index has learnt: blocks used twice come back soon, blocks used once rarely.
  auto view = index::IndexSegment::attach(f.index.segment_name());
  ASSERT_TRUE(view.ok()) << view.status();
  testing_support::teach_twice_used_blocks_return(*(*view)->learning());

  const auto once = random_chain(rng, 2);
  f.put(once);
  EvictionReport report;
  auto written = f.mover->demote(uint64_t{2} * kBlockBytes, &report);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 0u);
  EXPECT_EQ(f.ssd.inserts, 2u) << "no write was tried";
  EXPECT_EQ(report.blocks_dropped, 2u);
  EXPECT_EQ(f.mover->stats().demote_declined, 2u) << "used once: worth less than the block used twice on SSD";

  const auto twice = random_chain(rng, 1);
  f.put(twice);
  ASSERT_TRUE(f.index.acquire(twice).ok());
  written = f.mover->demote(kBlockBytes);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, 1u) << "as likely back as the block it pushes out";
  EXPECT_TRUE(f.index.lookup(twice[0])->in(Tier::kSsd));
  EXPECT_TRUE(f.index.check_invariants().ok());
}

TEST(TierMover, ARefusingSsdTierEndsThePassAndThePolicyDropsOnlyLeaves) {
  Fixture f;
  f.ssd.refuse = Status::resource_exhausted("SSD full");
  std::mt19937_64 rng(3);
  const auto chain = random_chain(rng, 5);
  f.put(chain);
  EvictionReport report;
  auto written = f.mover->demote(uint64_t{2} * kBlockBytes, &report);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, 0u);
  EXPECT_EQ(f.ssd.inserts, 1u) << "a full tier is asked once per pass";
  EXPECT_EQ(f.mover->stats().demote_refused, 1u);
  // The default policy is prefix-aware: without copies, chains shrink from the tail only.
  EXPECT_GE(report.blocks_dropped, 1u);
  size_t kept = 0;
  for (const BlockKey& k : chain) kept += f.index.contains(k) ? 1 : 0;
  EXPECT_EQ(f.index.match_prefix(chain).overall, kept) << "what is left is a prefix";
  EXPECT_LT(kept, chain.size());
}

TEST(TierMover, PromotionReadsSsdBlocksBackIntoHostMemory) {
  Fixture f;
  std::mt19937_64 rng(4);
  const auto chain = random_chain(rng, 3);
  f.put(chain);
  ASSERT_TRUE(f.mover->demote(uint64_t{3} * kBlockBytes).ok());
  ASSERT_EQ(f.in(Tier::kHost, chain), 0u);
  ASSERT_EQ(f.arena->stats().used_bytes, 0u);
  f.ssd.blocks.erase(chain[2]);  // the SSD tier lost it; the index does not know yet
  std::vector<BlockKey> asked = chain;
  asked.push_back(testing_support::random_key(rng));  // never cached: ignored
  EXPECT_EQ(f.mover->promote(asked), 2u);
  EXPECT_EQ(f.mover->stats().promote_misses, 1u);
  EXPECT_EQ(f.in(Tier::kHost, chain), 2u);
  EXPECT_EQ(f.in(Tier::kSsd, chain), 3u) << "the SSD copies stay";
  EXPECT_EQ(f.arena->stats().committed_blocks, 2u) << "the missed block's reserved space went back";
  EXPECT_EQ(f.arena->stats().reserved_blocks, 0u);
  auto leases = f.index.acquire(chain);
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    const uint8_t* bytes = f.arena->data((*leases)[i].info().host_loc);
    EXPECT_EQ(std::count(bytes, bytes + kBlockBytes, static_cast<uint8_t>(i + 1)), kBlockBytes);
  }
}

TEST(TierMover, SsdEvictionAndClearingFreeTheCopiesThroughTheirTiers) {
  Fixture f;
  std::mt19937_64 rng(5);
  const auto chain = random_chain(rng, 4);
  f.put(chain);
  ASSERT_TRUE(f.mover->demote(uint64_t{2} * kBlockBytes).ok());
  ASSERT_EQ(f.ssd.blocks.size(), 2u);
  auto ssd_report = f.mover->evict(Tier::kSsd, kBlockBytes);
  ASSERT_TRUE(ssd_report.ok()) << ssd_report.status();
  EXPECT_EQ(f.ssd.blocks.size(), 1u) << "the SSD copy the index dropped was removed from the tier";
  EXPECT_EQ(f.mover->evict(Tier::kHbm, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.mover->evict(Tier::kHost, 0).status().code(), StatusCode::kInvalidArgument);
  const ClearReport cleared = f.mover->clear_namespace(1);
  EXPECT_EQ(cleared.busy, 0u);
  EXPECT_EQ(f.index.stats().entries, 0u);
  EXPECT_TRUE(f.ssd.blocks.empty());
  EXPECT_EQ(f.arena->stats().used_bytes, 0u);
}

TEST(TierMover, TheNodesRecordedPolicyChoosesTheVictims) {
  std::mt19937_64 rng(6);
  const auto chain = random_chain(rng, 3);
  for (const std::string policy : {"lru", "prefix-frequency"}) {
    Fixture f(1, /*with_ssd=*/false);
    EXPECT_EQ(f.mover->evict(Tier::kSsd, 1).status().code(), StatusCode::kFailedPrecondition) << "no SSD tier";
    ASSERT_TRUE(f.index.record_eviction_policy(policy).ok());
    f.put(chain, /*age=*/true);
    EvictionReport report;
    ASSERT_TRUE(f.mover->demote(kBlockBytes, &report).ok());
    EXPECT_EQ(report.blocks_dropped, 1u);
    // LRU takes the oldest block, the chain's head; the prefix policies shrink chains from the tail.
    const BlockKey& gone = policy == "lru" ? chain[0] : chain[2];
    EXPECT_FALSE(f.index.contains(gone)) << policy;
  }
}

TEST(TierMover, ASsdLossIsForgottenByTheIndexOnceUnpinned) {
  Fixture f;
  std::mt19937_64 rng(7);
  const auto chain = random_chain(rng, 2);
  f.put(chain);
  ASSERT_TRUE(f.mover->demote(uint64_t{2} * kBlockBytes).ok());
  ASSERT_EQ(f.in(Tier::kSsd, chain), 2u);
  auto held = f.index.acquire(chain);
  ASSERT_TRUE(held.ok());
  f.ssd.blocks.erase(chain[1]);
  f.mover->forget_ssd_block(chain[1]);  // pinned: kept for a retry
  EXPECT_TRUE(f.index.lookup(chain[1])->in(Tier::kSsd));
  held->clear();
  f.mover->retry_ssd_drops();
  EXPECT_FALSE(f.index.contains(chain[1]));
  EXPECT_EQ(f.mover->stats().ssd_drops, 1u);
}

}  // namespace
}  // namespace kvtier::node
