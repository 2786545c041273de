// Put admission (docs/index.md#admission): while host memory is past its low watermark, the node
// judges the first new block extending a cached chain against the block eviction would take for
// it, by the learnt hit densities, and the rest of the chain follows its parent. Real index
// segment, manual clock, densities taught through the segment's own learning.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "index/chain_admission.h"
#include "index/evicted_uses.h"
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

constexpr uint64_t kHostBlocks = 50;

// A host tier of 50 blocks, full of blocks used twice, and learning that says blocks used twice
// come back within 100 ticks while blocks used once rarely come back at all.
struct FullHostTier {
  ScopedSegment seg{"admission"};
  uint32_t now = 1;  // before `index`, which make() sets to it
  std::mt19937_64 rng{11};
  BlockIndex index;
  std::unique_ptr<IndexSegment> view;
  std::vector<BlockKey> cached;  // the blocks filling the tier (leaves, each its own chain)

  FullHostTier() : index(make()) {
    view = IndexSegment::attach(seg.name).value();
    ReuseLearning& l = *view->learning();
    testing_support::teach_twice_used_blocks_return(l);
    EXPECT_GT(hit_density(&l, 2, 10), 10 * hit_density(&l, 1, 0));
    EXPECT_TRUE(index.set_tier_capacity(Tier::kHost, kHostBlocks * 4096).ok());
    for (uint64_t i = 0; i < kHostBlocks; ++i) {
      const BlockKey k = random_key(rng);
      cached.push_back(k);
      EXPECT_TRUE(index.insert(record(k, random_key(rng))).ok());
      EXPECT_TRUE(index.acquire({&k, 1}).ok());  // used twice
    }
    tick(10);
  }
  BlockIndex make() { return testing_support::manual_clock_index(seg.options(1000), now); }
  void tick(uint32_t n) {
    now += n;
    ASSERT_TRUE(IndexMechanics::set_clock(index, now).ok());
  }
  uint64_t occupied() const { return index.stats().tier_bytes[tier_index(Tier::kHost)]; }
  uint64_t hand() const { return view->header().clock_hand.load(); }
};

TEST(PutAdmission, ByPolicyRefusesABlockWorthLessThanTheNextVictimAndRemembersIt) {
  FullHostTier t;
  const BlockKey fresh = random_key(t.rng);
  EXPECT_EQ(t.index.put_admission(), kDefaultPutAdmission) << "none recorded: the default";
  EXPECT_EQ(kDefaultPutAdmission, PutAdmission::kByPolicy);
  t.index.record_put_admission(PutAdmission::kAll);
  EXPECT_EQ(t.index.put_admission(), PutAdmission::kAll);
  EXPECT_EQ(IndexMechanics::admit(t.index, fresh, t.cached[0], Tier::kHost, t.occupied()), PutVerdict::kUnjudged)
      << "all: every put goes in";

  t.index.record_put_admission(PutAdmission::kByPolicy);
  ASSERT_TRUE(t.index.set_tier_capacity(Tier::kHost, 2 * kHostBlocks * 4096).ok());
  EXPECT_EQ(IndexMechanics::admit(t.index, fresh, t.cached[0], Tier::kHost, t.occupied()), PutVerdict::kUnjudged)
      << "below the low watermark a put evicts nothing: nothing to weigh it against";
  EXPECT_EQ(IndexMechanics::admit(t.index, random_key(t.rng), t.cached[0], Tier::kHost, 2 * t.occupied()),
            PutVerdict::kRefused)
      << "past it by what the blocks occupy (the arena's whole units), though not by payload";
  ASSERT_TRUE(t.index.set_tier_capacity(Tier::kHost, kHostBlocks * 4096).ok());
  const uint64_t hand = t.hand();
  EXPECT_EQ(IndexMechanics::admit(t.index, fresh, t.cached[0], Tier::kHost, t.occupied()), PutVerdict::kRefused)
      << "used once (rarely back) against blocks used twice (back within 100 ticks)";
  EXPECT_EQ(t.hand(), hand) << "judging a put does not move eviction on";
  EXPECT_EQ(t.index.stats().puts_not_admitted, 2u);
  ASSERT_TRUE(t.index.set_tier_capacity(Tier::kSsd, 1ULL << 30).ok());
  EXPECT_EQ(IndexMechanics::admit(t.index, random_key(t.rng), t.cached[0], Tier::kHost, t.occupied()),
            PutVerdict::kUnjudged)
      << "with an SSD tier a host victim moves down: the put pushes nothing out of the node";
  ASSERT_TRUE(t.index.set_tier_capacity(Tier::kSsd, 0).ok());
  EXPECT_EQ(remembered_uses(*t.view, fresh.hi, fresh.lo), 1u) << "remembered as if admitted and evicted at once";
  EXPECT_FALSE(t.index.lookup(fresh).has_value());

  // It comes back: now it has been used twice, as dense as what it would push out.
  t.tick(5);
  EXPECT_EQ(IndexMechanics::admit(t.index, fresh, t.cached[0], Tier::kHost, t.occupied()), PutVerdict::kAdmitted);
  // A block already cached is not judged, nor one that starts a chain the node holds nothing of.
  const BlockKey cached = random_key(t.rng);
  ASSERT_TRUE(t.index.insert(record(cached, random_key(t.rng))).ok());
  EXPECT_EQ(IndexMechanics::admit(t.index, cached, t.cached[0], Tier::kHost, t.occupied()), PutVerdict::kUnjudged);
  EXPECT_EQ(IndexMechanics::admit(t.index, random_key(t.rng), random_key(t.rng), Tier::kHost, t.occupied()),
            PutVerdict::kAdmitted)
      << "its parent is not cached: admitted on probation";
  EXPECT_EQ(IndexMechanics::admit(t.index, random_key(t.rng), t.cached[0], Tier::kHost, 0), PutVerdict::kRefused)
      << "payload alone past the low watermark is enough";
  EXPECT_TRUE(t.index.check_invariants().ok());
}

TEST(PutAdmission, PoliciesWithoutDensitiesAdmitEveryPut) {
  FullHostTier t;
  t.index.record_put_admission(PutAdmission::kByPolicy);
  ASSERT_TRUE(t.index.record_eviction_policy("prefix-frequency").ok());
  EXPECT_EQ(IndexMechanics::admit(t.index, random_key(t.rng), t.cached[0], Tier::kHost, t.occupied()),
            PutVerdict::kAdmitted);
  EXPECT_EQ(t.index.stats().puts_not_admitted, 0u);
}

TEST(PutAdmission, AChainIsJudgedAtItsFirstNewBlockAndTheRestFollowsIt) {
  FullHostTier t;
  t.index.record_put_admission(PutAdmission::kByPolicy);
  ChainAdmission chains;
  const BlockKey root = t.cached[1];  // the chains extend a cached block
  // A refused chain: its next block is refused with it, though judged alone it would be admitted
  // (its parent is not cached, and the index remembers it as used before).
  const BlockKey first = random_key(t.rng), second = random_key(t.rng);
  ASSERT_TRUE(t.index.insert(record(second, root)).ok());
  ASSERT_TRUE(t.index.remove(second).ok());  // remembered: used once before
  t.tick(1);
  ASSERT_EQ(remembered_uses(*t.view, second.hi, second.lo), 1u);
  EXPECT_FALSE(chains.admit(t.index, first, root, Tier::kHost, t.occupied()));
  EXPECT_FALSE(chains.admit(t.index, second, first, Tier::kHost, t.occupied())) << "its parent was refused";
  EXPECT_EQ(t.index.stats().puts_not_admitted, 2u);
  EXPECT_EQ(remembered_uses(*t.view, second.hi, second.lo), 2u) << "its return counted, and it is remembered again";

  // An admitted chain: a fresh block after an admitted first one goes in with it.
  const BlockKey known = random_key(t.rng), next = random_key(t.rng);
  ASSERT_TRUE(t.index.insert(record(known, root)).ok());
  ASSERT_TRUE(t.index.acquire({&known, 1}).ok());
  ASSERT_TRUE(t.index.remove(known).ok());  // remembered: used twice
  t.tick(1);
  EXPECT_TRUE(chains.admit(t.index, known, root, Tier::kHost, t.occupied()));
  EXPECT_TRUE(chains.admit(t.index, next, known, Tier::kHost, t.occupied())) << "its parent was admitted";
  EXPECT_EQ(IndexMechanics::admit(t.index, random_key(t.rng), t.cached[0], Tier::kHost, t.occupied()),
            PutVerdict::kRefused)
      << "a fresh block judged on its own is refused";
  EXPECT_EQ(t.index.stats().puts_not_admitted, 3u);
}

TEST(PutAdmission, NamesParseAndUnknownOnesAreRefused) {
  EXPECT_EQ(*parse_put_admission("all"), PutAdmission::kAll);
  EXPECT_EQ(*parse_put_admission("by-policy"), PutAdmission::kByPolicy);
  EXPECT_EQ(parse_put_admission("sometimes").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(put_admission_name(PutAdmission::kByPolicy), "by-policy");
}

}  // namespace
}  // namespace kvtier::index
