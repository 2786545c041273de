// The index's memory of evicted blocks (src/index/evicted_uses.h): a block that comes back starts
// with the uses it had; another process sees the same memory; a format-1 segment (no memory) is
// still attached and works; an unknown format is refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>

#include "common/shared_segment.h"
#include "index/index_mechanics.h"
#include "index/segment_layout.h"
#include "index_test_support.h"
#include "kvtier/block_index.h"

namespace kvtier {
namespace {

using testing_support::random_key;
using testing_support::record;
using testing_support::ScopedSegment;

void use(BlockIndex& index, const BlockKey& key, int times) {
  for (int i = 0; i < times; ++i) ASSERT_TRUE(index.acquire(std::span<const BlockKey>(&key, 1)).ok());
}

uint8_t frequency(const BlockIndex& index, const BlockKey& key) { return index.lookup(key).value().frequency; }

TEST(EvictedUses, ABlockThatComesBackStartsWithTheUsesItHad) {
  ScopedSegment seg("ghost");
  auto index = BlockIndex::create(seg.options(64)).value();
  std::mt19937_64 rng(7);
  const BlockKey returning = random_key(rng), one_off = random_key(rng), fresh = random_key(rng);
  ASSERT_TRUE(index.insert(record(returning, {0, 0})).ok());
  ASSERT_TRUE(index.insert(record(one_off, {0, 0})).ok());
  use(index, returning, 2);
  EXPECT_EQ(frequency(index, returning), 3);

  // Evicted (by policy), removed and dropped from its last tier: each path remembers.
  const std::vector<BlockKey> both{returning, one_off};
  ASSERT_TRUE(index::IndexMechanics::evict_keys(index, Tier::kHost, both, *make_lru_policy(), nullptr).ok());
  EXPECT_FALSE(index.contains(returning));
  ASSERT_TRUE(index.insert(record(returning, {0, 0})).ok());
  ASSERT_TRUE(index.insert(record(one_off, {0, 0})).ok());
  ASSERT_TRUE(index.insert(record(fresh, {0, 0})).ok());
  EXPECT_EQ(frequency(index, returning), 4) << "three uses remembered, plus this one";
  EXPECT_EQ(frequency(index, one_off), 2);
  EXPECT_EQ(frequency(index, fresh), 1) << "never seen: no memory";

  ASSERT_TRUE(index.remove(fresh).ok());
  ASSERT_TRUE(index.insert(record(fresh, {0, 0})).ok());
  EXPECT_EQ(frequency(index, fresh), 2);
  ASSERT_TRUE(index.drop_tier(fresh, Tier::kHost).ok());
  ASSERT_TRUE(index.insert(record(fresh, {0, 0})).ok());
  EXPECT_EQ(frequency(index, fresh), 3);

  // Counts saturate in the memory (4 bits), not in the entry.
  use(index, returning, 30);
  ASSERT_TRUE(index.remove(returning).ok());
  ASSERT_TRUE(index.insert(record(returning, {0, 0})).ok());
  EXPECT_EQ(frequency(index, returning), 16);
  EXPECT_TRUE(index.check_invariants().ok()) << index.check_invariants();
}

TEST(EvictedUses, TheMemoryIsTheNodesNotTheProcesss) {
  ScopedSegment seg("ghost-shared");
  auto writer = BlockIndex::create(seg.options(64)).value();
  auto other = BlockIndex::attach(seg.name).value();
  std::mt19937_64 rng(8);
  const BlockKey key = random_key(rng);
  ASSERT_TRUE(writer.insert(record(key, {0, 0})).ok());
  use(writer, key, 4);
  ASSERT_TRUE(writer.remove(key).ok());
  ASSERT_TRUE(other.insert(record(key, {0, 0})).ok());
  EXPECT_EQ(frequency(other, key), 6);
}

// Rewrites a fresh segment's header with `edit`, which returns the file's new size (0: unchanged).
template <typename Edit>
void rewrite_segment(const std::string& name, Edit edit) {
  const int fd = ::open(("/dev/shm/" + name).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, sizeof(index::SegmentHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  const uint64_t size = edit(*static_cast<index::SegmentHeader*>(p));
  ::munmap(p, sizeof(index::SegmentHeader));
  if (size != 0) {
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  }
  ::close(fd);
}

// The format kvtier wrote before the memory existed: version 1, no ghost fields, the file ending
// with the table.
void make_format_1(const std::string& name) {
  rewrite_segment(name, [](index::SegmentHeader& h) {
    const uint64_t table_end = h.ghosts_offset;
    h.format_version = 1;
    h.ghosts_offset = 0;
    h.ghost_slots = 0;
    h.total_bytes = table_end;
    return table_end;
  });
}

TEST(EvictedUses, AFormat1SegmentIsReadWithoutTheMemory) {
  ScopedSegment seg("ghost-v1");
  { ASSERT_TRUE(BlockIndex::create(seg.options(64)).ok()); }
  make_format_1(seg.name);
  auto index = BlockIndex::attach(seg.name);
  ASSERT_TRUE(index.ok()) << index.status();
  std::mt19937_64 rng(9);
  const BlockKey key = random_key(rng);
  ASSERT_TRUE(index->insert(record(key, {0, 0})).ok());
  use(*index, key, 2);
  ASSERT_TRUE(index->remove(key).ok());
  ASSERT_TRUE(index->insert(record(key, {0, 0})).ok());
  EXPECT_EQ(frequency(*index, key), 1) << "a format-1 segment has no memory of evicted blocks";
  EXPECT_TRUE(index->check_invariants().ok());
}

// Format 2: ghost cells, but no reuse learning after them.
void make_format_2(const std::string& name) {
  rewrite_segment(name, [](index::SegmentHeader& h) {
    const uint64_t ghosts_end =
        (h.ghosts_offset + h.ghost_slots * sizeof(uint16_t) + kPageBytes - 1) / kPageBytes * kPageBytes;
    h.format_version = 2;
    h.learning_offset = 0;
    h.total_bytes = ghosts_end;
    return ghosts_end;
  });
}

TEST(EvictedUses, AFormat2SegmentKeepsItsMemoryWithoutTheLearning) {
  ScopedSegment seg("ghost-v2");
  { ASSERT_TRUE(BlockIndex::create(seg.options(64)).ok()); }
  make_format_2(seg.name);
  auto index = BlockIndex::attach(seg.name);
  ASSERT_TRUE(index.ok()) << index.status();
  std::mt19937_64 rng(10);
  const BlockKey key = random_key(rng);
  ASSERT_TRUE(index->insert(record(key, {0, 0})).ok());
  use(*index, key, 2);
  ASSERT_TRUE(index->remove(key).ok());
  ASSERT_TRUE(index->insert(record(key, {0, 0})).ok());
  EXPECT_EQ(frequency(*index, key), 4) << "the memory of evicted blocks works as before";
  // hit-density has nothing learnt to go by: it orders as prefix-frequency does, and evicts.
  ASSERT_TRUE(index->record_eviction_policy("hit-density").ok());
  const auto victims = index::IndexMechanics::eviction_candidates(*index, Tier::kHost, 1, *index->eviction_policy(),
                                                                  index::DemotionBar{UINT32_MAX});
  EXPECT_EQ(victims.size(), 1u);
  EXPECT_TRUE(index->check_invariants().ok());
}

TEST(EvictedUses, AFormat3SegmentWhoseLearningIsMisplacedIsRefused) {
  ScopedSegment seg("ghost-bad-learning");
  { ASSERT_TRUE(BlockIndex::create(seg.options(64)).ok()); }
  rewrite_segment(seg.name, [](index::SegmentHeader& h) {
    h.learning_offset += 64;  // would put the ghost cells' last uses past the file's end
    return uint64_t{0};
  });
  auto index = BlockIndex::attach(seg.name);
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), StatusCode::kCorruption) << index.status();
}

TEST(EvictedUses, AFormatFromTheFutureIsRefused) {
  ScopedSegment seg("ghost-v3");
  { ASSERT_TRUE(BlockIndex::create(seg.options(64)).ok()); }
  const int fd = ::open(("/dev/shm/" + seg.name).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const uint32_t future = index::kSegmentFormatVersion + 1;
  ASSERT_EQ(::pwrite(fd, &future, sizeof(future), offsetof(index::SegmentHeader, format_version)),
            static_cast<ssize_t>(sizeof(future)));
  ::close(fd);
  auto index = BlockIndex::attach(seg.name);
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), StatusCode::kVersionMismatch) << index.status();
}

}  // namespace
}  // namespace kvtier
