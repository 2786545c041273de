#include "kvtier/block_index.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <unordered_map>

#include "index/index_mechanics.h"
#include "index_test_support.h"

namespace kvtier {
namespace {

using testing_support::insert_chain;
using testing_support::random_chain;
using testing_support::random_key;
using testing_support::record;
using testing_support::ScopedSegment;

TEST(BlockIndexTest, CreateAttachAndDestroy) {
  ScopedSegment seg("lifecycle");
  auto created = BlockIndex::create(seg.options(1000));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(BlockIndex::create(seg.options(1000)).status().code(), StatusCode::kAlreadyExists);
  auto attached = BlockIndex::attach(seg.name);
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_EQ(attached->creation_epoch(), created->creation_epoch());
  EXPECT_EQ(attached->node_name(), "test-node");
  EXPECT_EQ(attached->stats().capacity, 1000u);
  // What one handle writes, the other reads.
  std::mt19937_64 rng(1);
  const BlockKey k = random_key(rng);
  ASSERT_TRUE(created->insert(record(k, {0, 0})).ok());
  EXPECT_TRUE(attached->contains(k));
  EXPECT_TRUE(BlockIndex::destroy(seg.name).ok());
  EXPECT_EQ(BlockIndex::attach(seg.name).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(created->contains(k));  // mappings outlive the name
}

TEST(BlockIndexTest, AManualClockMovesOnlyWhenSet) {
  ScopedSegment seg("manualclock");
  IndexOptions o = seg.options(1000);
  o.manual_clock = true;
  auto index = BlockIndex::create(o);
  ASSERT_TRUE(index.ok()) << index.status();
  std::mt19937_64 rng(2);
  const BlockKey a = random_key(rng), b = random_key(rng);
  ASSERT_TRUE(index::IndexMechanics::set_clock(*index, 100).ok());
  ASSERT_TRUE(index->insert(record(a, {0, 0})).ok());
  ASSERT_TRUE(index::IndexMechanics::set_clock(*index, 250).ok());
  ASSERT_TRUE(index->insert(record(b, {0, 0})).ok());
  EXPECT_EQ(index->lookup(a)->last_access, 100u);
  EXPECT_EQ(index->lookup(b)->last_access, 250u);
  ASSERT_TRUE(index::IndexMechanics::set_clock(*index, 400).ok());
  EXPECT_EQ(index->acquire(std::vector<BlockKey>{a})->size(), 1u);
  EXPECT_EQ(index->lookup(a)->last_access, 400u) << "an acquire is a use at the index's time";
  // Eviction ages by it: b (used at 250) goes before a (used at 400) under LRU.
  auto r = index::IndexMechanics::evict(*index, Tier::kHost, 1, *make_lru_policy(), nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(index->contains(a));
  EXPECT_FALSE(index->contains(b));

  ScopedSegment real("realclock");
  auto monotonic = BlockIndex::create(real.options(100));
  ASSERT_TRUE(monotonic.ok());
  EXPECT_EQ(index::IndexMechanics::set_clock(*monotonic, 5).code(), StatusCode::kFailedPrecondition);
}

TEST(BlockIndexTest, OpenOrCreateIsAWarmRestart) {
  ScopedSegment seg("warm");
  std::mt19937_64 rng(2);
  const auto chain = random_chain(rng, 10);
  {
    auto index = BlockIndex::open_or_create(seg.options(1000));
    ASSERT_TRUE(index.ok()) << index.status();
    insert_chain(*index, chain);
  }
  auto again = BlockIndex::open_or_create(seg.options(1000));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->match_prefix(chain).overall, 10u);
}

TEST(BlockIndexTest, TheNodesEvictionPolicyIsRecordedForEveryProcess) {
  ScopedSegment seg("policy");
  auto index = BlockIndex::create(seg.options(100)).value();
  EXPECT_EQ(index.eviction_policy()->name(), kDefaultEvictionPolicy) << "none recorded: the default";
  ASSERT_TRUE(index.record_eviction_policy("s3fifo").ok());
  auto attached = BlockIndex::attach(seg.name);
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_EQ(attached->eviction_policy()->name(), "s3fifo") << "another handle (an engine) sees the node's";
  const Status bad = index.record_eviction_policy("clairvoyant");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument) << bad;
  EXPECT_EQ(attached->eviction_policy()->name(), "s3fifo") << "a refused name changes nothing";
}

TEST(BlockIndexTest, BadOptionsAndForeignSegmentsAreClearErrors) {
  ScopedSegment seg("bad");
  IndexOptions o = seg.options(1000);
  o.segment_name = "has/slash";
  EXPECT_EQ(BlockIndex::create(o).status().code(), StatusCode::kInvalidArgument);
  o = seg.options(1);
  EXPECT_EQ(BlockIndex::create(o).status().code(), StatusCode::kInvalidArgument);
  o = seg.options(1000);
  o.node_name.assign(100, 'n');
  EXPECT_EQ(BlockIndex::create(o).status().code(), StatusCode::kInvalidArgument);

  // A file that is not an index, and an index of another format version.
  {
    std::ofstream junk("/dev/shm/" + seg.name);
    junk << std::string(8192, 'x');
  }
  auto r = BlockIndex::attach(seg.name);
  EXPECT_EQ(r.status().code(), StatusCode::kVersionMismatch) << r.status();
  ASSERT_TRUE(BlockIndex::destroy(seg.name).ok());
  ASSERT_TRUE(BlockIndex::create(seg.options(1000)).ok());
  {
    std::fstream f("/dev/shm/" + seg.name, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);  // format_version follows the magic
    const uint32_t v = 99;
    f.write(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  r = BlockIndex::attach(seg.name);
  EXPECT_EQ(r.status().code(), StatusCode::kVersionMismatch);
  EXPECT_NE(r.status().message().find("format version 99"), std::string::npos) << r.status();
}

TEST(BlockIndexTest, MatchPrefixReportsEachTierAndStopsAtTheFirstMiss) {
  ScopedSegment seg("match");
  auto index = BlockIndex::create(seg.options(1000)).value();
  std::mt19937_64 rng(3);
  const auto chain = random_chain(rng, 8);
  // Blocks 0-5 in host, 0-2 also in HBM, 3-6 also on SSD; block 7 absent.
  insert_chain(index, {chain.begin(), chain.begin() + 6});
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(index.insert(record(chain[i], {0, 0}, Tier::kHbm, 7)).ok());
  for (size_t i = 3; i < 7; ++i) ASSERT_TRUE(index.insert(record(chain[i], chain[i - 1], Tier::kSsd, 100 + i)).ok());
  const PrefixMatch m = index.match_prefix(chain);
  EXPECT_EQ(m.overall, 7u);
  EXPECT_EQ(m.in(Tier::kHbm), 3u);
  EXPECT_EQ(m.in(Tier::kHost), 6u);
  EXPECT_EQ(m.in(Tier::kSsd), 0u);  // block 0 is not on SSD
  EXPECT_EQ(index.match_prefix({}).overall, 0u);

  const auto info = index.lookup(chain[4]);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->in(Tier::kHost));
  EXPECT_TRUE(info->in(Tier::kSsd));
  EXPECT_EQ(info->ssd_loc, 104u);
  EXPECT_EQ(info->host_loc, 5u);
  EXPECT_EQ(info->parent_lo, chain[3].lo);
  EXPECT_FALSE(index.lookup(chain[7]).has_value());

  const IndexStats s = index.stats();
  EXPECT_EQ(s.entries, 7u);
  EXPECT_EQ(s.tier_entries[tier_index(Tier::kHost)], 6u);
  EXPECT_EQ(s.tier_entries[tier_index(Tier::kHbm)], 3u);
  EXPECT_EQ(s.tier_bytes[tier_index(Tier::kSsd)], 4u * 4096);
  EXPECT_GT(s.probes, 0u);
  EXPECT_TRUE(index.check_invariants().ok()) << index.check_invariants();
}

TEST(BlockIndexTest, InsertingWhatExistsIsANoOpAndConflictsAreErrors) {
  ScopedSegment seg("noop");
  auto index = BlockIndex::create(seg.options(100)).value();
  std::mt19937_64 rng(4);
  const BlockKey k = random_key(rng);
  ASSERT_TRUE(index.insert(record(k, {0, 0})).ok());
  const uint64_t seq = index.stats().change_seq;
  ASSERT_TRUE(index.insert(record(k, {0, 0})).ok());
  EXPECT_EQ(index.stats().change_seq, seq);  // nothing happened, nothing announced
  EXPECT_EQ(index.stats().entries, 1u);
  auto bigger = record(k, {0, 0});
  bigger.payload_bytes = 8192;
  EXPECT_EQ(index.insert(bigger).code(), StatusCode::kInvalidArgument);
  auto empty = record(random_key(rng), {0, 0});
  empty.payload_bytes = 0;
  EXPECT_EQ(index.insert(empty).code(), StatusCode::kInvalidArgument);
  auto wide = record(random_key(rng), {0, 0});
  wide.locator = uint64_t{1} << 40;
  EXPECT_EQ(index.insert(wide).code(), StatusCode::kInvalidArgument);
}

TEST(BlockIndexTest, DropTierAndRemove) {
  ScopedSegment seg("drop");
  auto index = BlockIndex::create(seg.options(100)).value();
  std::mt19937_64 rng(5);
  const BlockKey k = random_key(rng);
  ASSERT_TRUE(index.insert(record(k, {0, 0}, Tier::kHost)).ok());
  ASSERT_TRUE(index.insert(record(k, {0, 0}, Tier::kSsd, 9)).ok());
  ASSERT_TRUE(index.drop_tier(k, Tier::kHost).ok());
  EXPECT_FALSE(index.lookup(k)->in(Tier::kHost));
  EXPECT_EQ(index.drop_tier(k, Tier::kHost).code(), StatusCode::kNotFound);
  ASSERT_TRUE(index.drop_tier(k, Tier::kSsd).ok());  // last tier: the block goes
  EXPECT_FALSE(index.contains(k));
  EXPECT_EQ(index.remove(k).code(), StatusCode::kNotFound);
  EXPECT_EQ(index.stats().entries, 0u);
  EXPECT_TRUE(index.check_invariants().ok());
}

TEST(BlockIndexTest, LeasesPinUntilReleasedAndAreMoveOnly) {
  ScopedSegment seg("lease");
  auto index = BlockIndex::create(seg.options(100)).value();
  std::mt19937_64 rng(6);
  const auto chain = random_chain(rng, 4);
  insert_chain(index, {chain.begin(), chain.begin() + 3});
  static_assert(!std::is_copy_constructible_v<BlockLease>);
  {
    auto leases = index.acquire(chain);
    ASSERT_TRUE(leases.ok()) << leases.status();
    ASSERT_EQ(leases->size(), 3u);  // the resident prefix
    EXPECT_EQ((*leases)[1].key(), chain[1]);
    EXPECT_EQ((*leases)[1].info().host_loc, 2u);
    EXPECT_NE((*leases)[1].info().pins, 0u);
    EXPECT_EQ(index.remove(chain[1]).code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(index.drop_tier(chain[2], Tier::kHost).code(), StatusCode::kFailedPrecondition);
    BlockLease moved = std::move((*leases)[1]);
    EXPECT_FALSE((*leases)[1]);
    EXPECT_TRUE(moved);
    auto again = index.acquire({&chain[1], 1});  // a second lease on the same block
    ASSERT_EQ(again->size(), 1u);
    moved.release();
    EXPECT_EQ(index.remove(chain[1]).code(), StatusCode::kFailedPrecondition);  // still leased once
  }
  EXPECT_EQ(index.lookup(chain[1])->pins, 0u);
  EXPECT_TRUE(index.remove(chain[1]).ok());
  EXPECT_EQ(index.stats().processes_attached, 1u);
}

TEST(BlockIndexTest, LookupsNeverPin) {
  ScopedSegment seg("nopin");
  auto index = BlockIndex::create(seg.options(100)).value();
  std::mt19937_64 rng(7);
  const auto chain = random_chain(rng, 5);
  insert_chain(index, chain);
  for (int i = 0; i < 10; ++i) {
    index.match_prefix(chain);
    index.lookup(chain[2]);
    index.contains(chain[4]);
  }
  EXPECT_EQ(index.stats().processes_attached, 0u);  // lookups never even joined the process table
  for (const auto& k : chain) EXPECT_EQ(index.lookup(k)->pins, 0u);
  EXPECT_TRUE(index.remove(chain[4]).ok());
}

// Random inserts, removes and tier changes against a plain map: every key is where the model
// says after every step, and the table's invariants hold (backward-shift deletion included).
TEST(BlockIndexTest, RandomChurnMatchesAModel) {
  ScopedSegment seg("churn");
  auto index = BlockIndex::create(seg.options(512)).value();
  std::mt19937_64 rng(8);
  std::vector<BlockKey> universe = random_chain(rng, 700);
  std::unordered_map<BlockKey, uint8_t> model;  // key → tiers
  for (int step = 0; step < 20000; ++step) {
    const BlockKey& k = universe[rng() % universe.size()];
    const Tier t = kAllTiers[rng() % 3];
    const auto it = model.find(k);
    switch (rng() % 3) {
      case 0:
        if (it == model.end() && model.size() >= 512) break;  // keep the model's own capacity rule simple
        ASSERT_TRUE(index.insert(record(k, {0, 0}, t, 5)).ok());
        model[k] |= tier_bit(t);
        break;
      case 1: {
        const Status s = index.remove(k);
        EXPECT_EQ(s.ok(), it != model.end()) << s;
        model.erase(k);
        break;
      }
      case 2: {
        const Status s = index.drop_tier(k, t);
        const bool resident = it != model.end() && (it->second & tier_bit(t)) != 0;
        EXPECT_EQ(s.ok(), resident) << s;
        if (resident && (it->second &= static_cast<uint8_t>(~tier_bit(t))) == 0) model.erase(it);
        break;
      }
    }
    if (step % 1000 == 0) {
      ASSERT_TRUE(index.check_invariants().ok()) << index.check_invariants();
    }
  }
  for (const auto& k : universe) {
    const auto info = index.lookup(k);
    const auto it = model.find(k);
    ASSERT_EQ(info.has_value(), it != model.end());
    if (info) {
      EXPECT_EQ(info->tiers, it->second);
    }
  }
  EXPECT_EQ(index.stats().entries, model.size());
  EXPECT_TRUE(index.check_invariants().ok()) << index.check_invariants();
}

TEST(BlockIndexTest, ChangeRingIsGapFreeAndReportsLoss) {
  ScopedSegment seg("ring");
  auto index = BlockIndex::create(seg.options(1000, /*ring=*/64)).value();
  std::mt19937_64 rng(9);
  const auto chain = random_chain(rng, 40);
  insert_chain(index, chain);
  ASSERT_TRUE(index.insert(record(chain[0], {0, 0}, Tier::kSsd, 3)).ok());
  ASSERT_TRUE(index.remove(chain[39]).ok());
  std::vector<IndexChange> out(100);
  uint64_t next = 0;
  bool lost = true;
  const size_t n = index::IndexMechanics::read_changes(index, 0, out, &next, &lost);
  ASSERT_EQ(n, 42u);
  EXPECT_FALSE(lost);
  EXPECT_EQ(next, 42u);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(out[i].seq, i);
  EXPECT_EQ(out[0].kind, IndexChange::Kind::kStored);
  EXPECT_EQ(out[1].parent_lo, chain[0].lo);
  EXPECT_EQ(out[40].tiers_before, tier_bit(Tier::kHost));
  EXPECT_EQ(out[40].tiers_after, tier_bit(Tier::kHost) | tier_bit(Tier::kSsd));
  EXPECT_EQ(out[41].kind, IndexChange::Kind::kRemoved);
  EXPECT_EQ(out[41].key, chain[39]);
  // Fall more than a ring behind: told so, and given what is still there.
  insert_chain(index, random_chain(rng, 100));
  const size_t m = index::IndexMechanics::read_changes(index, 10, out, &next, &lost);
  EXPECT_TRUE(lost);
  EXPECT_EQ(m, 64u);
  EXPECT_EQ(out[0].seq, 142u - 64);
  EXPECT_EQ(next, 142u);
}

}  // namespace
}  // namespace kvtier
