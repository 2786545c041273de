// HBM residency through the client library: engines report what their GPU memory holds; the
// index, its matches and its change log show the HBM tier; records go when reported evicted,
// when the engine exits, and when it is SIGKILLed.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <numeric>
#include <vector>

#include "../index/process_harness.h"
#include "client_test_support.h"
#include "index/index_mechanics.h"
#include "kvtier/client.h"
#include "tiers/hbm/hbm_tier_records.h"

namespace kvtier {
namespace {

using testing_support::ReadyPipe;
using testing_support::spawn;
using testing_support::wait_for;

using testing_support::ScopedNode;
using testing_support::small_model;

std::vector<BlockKey> chain(const Client& c, const NamespaceHandle& ns, size_t blocks, uint32_t seed) {
  std::vector<TokenId> t(blocks * ns.ns.block_tokens());
  std::iota(t.begin(), t.end(), seed * 100000);
  return c.keys(ns, t);
}

// The engine's view: block i of the chain in GPU block id base + i.
std::vector<HbmBlock> hbm_blocks(const NamespaceHandle& ns, const std::vector<BlockKey>& keys, uint32_t base) {
  std::vector<HbmBlock> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    out.push_back({keys[i], i == 0 ? ns.ns.root() : keys[i - 1], base + static_cast<uint32_t>(i)});
  }
  return out;
}

size_t changes_of_kind(const BlockIndex& index, IndexChange::Kind kind, uint8_t tier_bits_before, uint8_t after) {
  std::vector<IndexChange> buf(1024);
  uint64_t next = 0;
  bool lost = false;
  const size_t n = index::IndexMechanics::read_changes(index, 0, buf, &next, &lost);
  EXPECT_FALSE(lost);
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    count += buf[i].kind == kind && buf[i].tiers_before == tier_bits_before && buf[i].tiers_after == after;
  }
  return count;
}

TEST(HbmResidencyTest, StoredBlocksMatchInHbmAndEvictedOnesLeave) {
  ScopedNode node(/*host_bytes=*/16 << 20);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = chain(*client, ns, 4, 1);
  const auto blocks = hbm_blocks(ns, keys, 100);
  ASSERT_EQ(client->hbm_stored(ns, blocks).value(), 4U);
  EXPECT_EQ(client->hbm_stored(ns, blocks).value(), 4U);  // the same holder again: a no-op
  PrefixMatch m = client->match(keys);
  EXPECT_EQ(m.overall, 4U);
  EXPECT_EQ(m.in(Tier::kHbm), 4U);
  EXPECT_EQ(m.in(Tier::kHost), 0U);
  const auto info = client->index().lookup(keys[2]).value();
  EXPECT_EQ(info.hbm_block, 102U);
  EXPECT_EQ(info.payload_bytes, ns.ns.bytes_per_block());
  EXPECT_EQ(changes_of_kind(client->index(), IndexChange::Kind::kStored, 0, tier_bit(Tier::kHbm)), 4U);

  // Evicting block 2 from HBM leaves a two-block prefix there.
  ASSERT_EQ(client->hbm_evicted(std::span(blocks).subspan(2, 1)).value(), 1U);
  m = client->match(keys);
  EXPECT_EQ(m.in(Tier::kHbm), 2U);
  EXPECT_FALSE(client->index().contains(keys[2]));
  // A report naming another block id is not this copy: nothing changes.
  HbmBlock wrong = blocks[3];
  wrong.block_id = 7;
  EXPECT_EQ(client->hbm_evicted(std::span(&wrong, 1)).value(), 0U);
  EXPECT_TRUE(client->index().contains(keys[3]));
  EXPECT_TRUE(client->index().check_invariants().ok());
}

// The HBM records are the HBM tier behind the tier seam (TierRecords): it holds a copy while the
// index names that holder's locator, and the node does not size the tier.
TEST(HbmResidencyTest, TheRecordsAreTheHbmTierBehindTheTierSeam) {
  ScopedNode node(/*host_bytes=*/16 << 20);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = chain(*client, ns, 3, 5);
  hbm::HbmTierRecords records(node.index());
  const tiers::TierRecords& tier = records;
  EXPECT_EQ(tier.tier(), Tier::kHbm);
  EXPECT_EQ(tier.capacity_bytes(), 0U);
  ASSERT_EQ(records.record_stored(/*process_slot=*/7, ns.id, 4096, hbm_blocks(ns, keys, 40)).value(), 3U);
  EXPECT_TRUE(tier.contains(keys[1], hbm::locator(7, 41)));
  EXPECT_FALSE(tier.contains(keys[1], hbm::locator(7, 40)));  // another block id: not this copy
  EXPECT_FALSE(tier.contains(keys[1], hbm::locator(6, 41)));  // another holder
  // Another process's engine reporting the same blocks keeps the first holder.
  hbm::HbmTierRecords other(node.index());
  EXPECT_EQ(other.record_stored(/*process_slot=*/8, ns.id, 4096, hbm_blocks(ns, keys, 0)).value(), 0U);
  EXPECT_EQ(other.stats().held_elsewhere, 3U);
  ASSERT_EQ(records.record_evicted(7, hbm_blocks(ns, keys, 40)).value(), 3U);
  EXPECT_FALSE(tier.contains(keys[1], hbm::locator(7, 41)));
  const hbm::HbmRecordStats s = records.stats();
  EXPECT_EQ(s.recorded, 3U);
  EXPECT_EQ(s.evicted, 3U);
  EXPECT_EQ(s.dropped, 0U);
}

// A full index makes room by dropping blocks from every tier; the HBM records it drops are counted
// in the client's stats (the engine may still hold the copies, which the node no longer offers).
TEST(HbmResidencyTest, RecordsAFullIndexDropsAreCounted) {
  constexpr uint64_t kCapacity = 64;
  ScopedNode node(/*host_bytes=*/16 << 20, kCapacity);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const uint64_t capacity = client->index().stats().capacity;
  uint64_t stored = 0;
  for (uint32_t i = 0; stored < capacity + 8; ++i) {  // one-block chains: each droppable on its own
    const auto keys = chain(*client, ns, 1, 100 + i);
    stored += client->hbm_stored(ns, hbm_blocks(ns, keys, i)).value();
  }
  const ClientStats s = client->stats();
  EXPECT_EQ(s.hbm_recorded, stored);
  EXPECT_GE(s.hbm_dropped, 8U);
  EXPECT_EQ(s.hbm_recorded - s.hbm_dropped, s.index.tier_entries[tier_index(Tier::kHbm)]);
  EXPECT_TRUE(client->index().check_invariants().ok());
}

TEST(HbmResidencyTest, ABlockIdBeyond24BitsRecordsNothing) {
  ScopedNode node(/*host_bytes=*/16 << 20);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = chain(*client, ns, 2, 2);
  auto blocks = hbm_blocks(ns, keys, 0);
  blocks[1].block_id = 1U << 24;
  auto r = client->hbm_stored(ns, blocks);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("exceeds"), std::string::npos);
  EXPECT_EQ(client->match(keys).overall, 0U);
}

TEST(HbmResidencyTest, HostAndHbmCopiesAreTrackedApart) {
  ScopedNode node(/*host_bytes=*/16 << 20);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = chain(*client, ns, 2, 3);
  std::vector<uint8_t> bytes(ns.ns.bytes_per_block(), 1);
  ASSERT_TRUE(client->put(ns, keys[0], ns.ns.root(), bytes).ok());
  const auto blocks = hbm_blocks(ns, keys, 0);
  ASSERT_EQ(client->hbm_stored(ns, blocks).value(), 2U);
  auto held = client->acquire(keys).value();  // pins the host copy of block 0
  ASSERT_EQ(held.size(), 1U);
  // The pin holds the host bytes; the engine's GPU copy can still go.
  ASSERT_EQ(client->hbm_evicted(blocks).value(), 2U);
  const PrefixMatch m = client->match(keys);
  EXPECT_EQ(m.in(Tier::kHost), 1U);
  EXPECT_EQ(m.in(Tier::kHbm), 0U);
  EXPECT_EQ(changes_of_kind(client->index(), IndexChange::Kind::kRemoved, tier_bit(Tier::kHost) | tier_bit(Tier::kHbm),
                            tier_bit(Tier::kHost)),
            1U);
}

TEST(HbmResidencyMultiProcessTest, AnotherEnginesCopyKeepsItsHolderAndLeavesWithIt) {
  ScopedNode node(/*host_bytes=*/16 << 20);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = chain(*client, ns, 3, 4);
  ReadyPipe ready, done;
  const pid_t child = spawn([&] {
    auto c = node.open();
    const NamespaceHandle cns = c->register_namespace(small_model()).value();
    if (c->hbm_stored(cns, hbm_blocks(cns, keys, 500)).value_or(0) != 3) return false;
    ready.signal();
    return done.wait();  // then exit normally: the engine's GPU memory goes with it
  });
  ASSERT_TRUE(ready.wait());
  const auto mine = hbm_blocks(ns, keys, 9);
  EXPECT_EQ(client->hbm_stored(ns, mine).value(), 0U);  // the child holds them
  EXPECT_EQ(client->hbm_evicted(mine).value(), 0U);     // and this engine cannot drop its copies
  EXPECT_EQ(client->index().lookup(keys[0])->hbm_block, 500U);
  done.signal();
  ASSERT_EQ(wait_for(child), 0);
  EXPECT_EQ(client->match(keys).overall, 0U);
  EXPECT_TRUE(client->index().check_invariants().ok());
}

TEST(HbmResidencyMultiProcessTest, AKilledEnginesRecordsAreDroppedByMaintain) {
  ScopedNode node(/*host_bytes=*/16 << 20);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = chain(*client, ns, 6, 5);
  std::vector<uint8_t> bytes(ns.ns.bytes_per_block(), 2);
  ASSERT_TRUE(client->put(ns, keys[0], ns.ns.root(), bytes).ok());
  auto held = client->acquire(keys).value();  // block 0's host copy stays pinned throughout
  ReadyPipe ready;
  const pid_t child = spawn([&] {
    auto c = node.open();
    const NamespaceHandle cns = c->register_namespace(small_model()).value();
    if (c->hbm_stored(cns, hbm_blocks(cns, keys, 0)).value_or(0) != 6) return false;
    ready.signal();
    ::pause();
    return true;
  });
  ASSERT_TRUE(ready.wait());
  EXPECT_EQ(client->match(keys).in(Tier::kHbm), 6U);
  ::kill(child, SIGKILL);
  ASSERT_EQ(wait_for(child), 128 + SIGKILL);
  ASSERT_TRUE(client->maintain().ok());
  const PrefixMatch m = client->match(keys);
  EXPECT_EQ(m.in(Tier::kHbm), 0U);
  EXPECT_EQ(m.in(Tier::kHost), 1U);  // the host copy is untouched
  EXPECT_EQ(client->index().stats().tier_entries[tier_index(Tier::kHbm)], 0U);
  EXPECT_EQ(changes_of_kind(client->index(), IndexChange::Kind::kRemoved, tier_bit(Tier::kHbm), 0), 5U);
  EXPECT_TRUE(client->index().check_invariants().ok());
}

}  // namespace
}  // namespace kvtier
