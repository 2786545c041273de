#include "tiers/host/host_arena.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "../../index/process_harness.h"

namespace kvtier::host {
namespace {

using testing_support::ReadyPipe;
using testing_support::spawn;
using testing_support::wait_for;

struct ScopedArena {
  std::string name = "kvtier-test-arena-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::unique_ptr<HostArena> arena;
  static inline int counter = 0;
  explicit ScopedArena(uint64_t bytes, uint64_t slab = 4 << 20) {
    arena = HostArena::create({name, bytes, slab}).value();
  }
  ~ScopedArena() { (void)HostArena::destroy(name); }
};

constexpr uint32_t kOwner = make_owner(3, 77);

TEST(HostArenaTest, ReserveWriteCommitReadRelease) {
  ScopedArena a(64 << 20);
  const uint8_t cls = a.arena->size_class(256 << 10).value();
  EXPECT_EQ(a.arena->size_class(256 << 10).value(), cls);  // one class per size
  const uint32_t loc = a.arena->reserve(cls, kOwner).value();
  EXPECT_EQ(a.arena->block_bytes(loc), 256u << 10);
  std::memset(a.arena->data(loc), 0xAB, 256 << 10);
  ASSERT_TRUE(a.arena->commit(loc, kOwner).ok());
  // Another mapping of the same arena sees the bytes in place.
  auto other = HostArena::attach(a.name).value();
  EXPECT_EQ(other->data(loc)[0], 0xAB);
  EXPECT_EQ(other->data(loc)[(256 << 10) - 1], 0xAB);
  const ArenaStats s = other->stats();
  EXPECT_EQ(s.committed_blocks, 1u);
  EXPECT_EQ(s.used_bytes, 256u << 10);
  ASSERT_TRUE(a.arena->release(loc).ok());
  EXPECT_EQ(a.arena->release(loc).code(), StatusCode::kNotFound);
  EXPECT_EQ(a.arena->stats().used_bytes, 0u);
  EXPECT_TRUE(a.arena->check_invariants().ok());
}

// The index may evict a block between its writer publishing it and committing it. The memory
// must stay the writer's until the commit (which then frees it), never go to another writer.
TEST(HostArenaTest, ABlockEvictedBeforeItsCommitIsFreedByTheCommitNotBefore) {
  ScopedArena a(64 << 20);
  const uint8_t cls = a.arena->size_class(256 << 10).value();
  const uint32_t loc = a.arena->reserve(cls, kOwner).value();
  ASSERT_TRUE(a.arena->release_evicted(loc).ok());  // eviction, between publish and commit
  EXPECT_EQ(a.arena->stats().reserved_blocks, 1u) << "still the writer's";
  // No other reservation may be handed the same memory meanwhile.
  std::vector<uint32_t> others;
  for (auto r = a.arena->reserve(cls, make_owner(4, 1)); r.ok(); r = a.arena->reserve(cls, make_owner(4, 1))) {
    EXPECT_NE(*r, loc);
    others.push_back(*r);
  }
  EXPECT_TRUE(a.arena->check_invariants().ok());
  ASSERT_TRUE(a.arena->commit(loc, kOwner).ok()) << "the put happened; the block is simply gone";
  EXPECT_EQ(a.arena->stats().reserved_blocks, others.size());
  EXPECT_EQ(a.arena->stats().committed_blocks, 0u);
  EXPECT_EQ(a.arena->release_evicted(loc).code(), StatusCode::kNotFound);
  for (uint32_t o : others) ASSERT_TRUE(a.arena->release(o).ok());
  // A committed block is freed by eviction at once.
  const uint32_t committed = a.arena->reserve(cls, kOwner).value();
  ASSERT_TRUE(a.arena->commit(committed, kOwner).ok());
  ASSERT_TRUE(a.arena->release_evicted(committed).ok());
  EXPECT_EQ(a.arena->stats().used_bytes, 0u);
  // A writer that dies after the eviction leaves nothing behind: reclaim frees it.
  const uint32_t orphan = a.arena->reserve(cls, kOwner).value();
  ASSERT_TRUE(a.arena->release_evicted(orphan).ok());
  EXPECT_EQ(a.arena->reclaim([](uint32_t) { return false; }, [](uint32_t) { return true; }), 1u);
  EXPECT_EQ(a.arena->stats().used_bytes, 0u);
  EXPECT_TRUE(a.arena->check_invariants().ok());
}

TEST(HostArenaTest, BadInputIsAClearError) {
  ScopedArena a(16 << 20);
  EXPECT_EQ(a.arena->size_class(0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a.arena->size_class(5 << 20).status().code(), StatusCode::kInvalidArgument);  // over a slab
  EXPECT_EQ(a.arena->reserve(9, kOwner).status().code(), StatusCode::kInvalidArgument);
  const uint8_t cls = a.arena->size_class(64 << 10).value();
  const uint32_t loc = a.arena->reserve(cls, kOwner).value();
  EXPECT_EQ(a.arena->commit(loc, make_owner(4, 77)).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.arena->commit(UINT32_MAX, kOwner).code(), StatusCode::kInvalidArgument);
  for (uint64_t b = 1; b < 16; ++b) ASSERT_TRUE(a.arena->size_class((b + 1) * (64 << 10)).ok());
  EXPECT_EQ(a.arena->size_class(17 * (64 << 10)).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(HostArena::create({"bad/name", 16 << 20, 4 << 20}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HostArena::create({a.name, 16 << 20, 4 << 20}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(HostArena::create({"x", 1 << 20, 4 << 20}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HostArena::attach("kvtier-test-no-such-arena").status().code(), StatusCode::kNotFound);
}

TEST(HostArenaTest, AForeignOrNewerSegmentIsAVersionMismatch) {
  ScopedArena a(16 << 20);
  {
    // Rewrite the format version (after the 8-byte magic) through the file.
    FILE* f = std::fopen(("/dev/shm/" + a.name).c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 8, SEEK_SET);
    const uint32_t v = 99;
    std::fwrite(&v, sizeof v, 1, f);
    std::fclose(f);
  }
  auto r = HostArena::attach(a.name);
  EXPECT_EQ(r.status().code(), StatusCode::kVersionMismatch) << r.status();
  EXPECT_NE(r.status().message().find("format version 99"), std::string::npos) << r.status();
  (void)a.arena->advise_huge_pages();  // best effort: must not fail or crash either way
}

TEST(HostArenaTest, AnArenaLargerThanSharedMemoryIsRefusedCleanly) {
  const std::string name = "kvtier-test-arena-huge-" + std::to_string(::getpid());
  auto r = HostArena::create({name, 1ULL << 40, 32 << 20});  // 1 TiB: more than /dev/shm holds here
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status();
  EXPECT_EQ(HostArena::attach(name).status().code(), StatusCode::kNotFound);  // nothing left behind
}

TEST(HostArenaTest, FullIsResourceExhaustedAndReleaseMakesRoom) {
  ScopedArena a(16 << 20);  // 4 slabs of 4 MiB
  const uint8_t cls = a.arena->size_class(1 << 20).value();
  std::vector<uint32_t> held;
  for (int i = 0; i < 16; ++i) held.push_back(a.arena->reserve(cls, kOwner).value());
  EXPECT_EQ(a.arena->reserve(cls, kOwner).status().code(), StatusCode::kResourceExhausted);
  ASSERT_TRUE(a.arena->release(held[5]).ok());
  EXPECT_TRUE(a.arena->reserve(cls, kOwner).ok());
  EXPECT_TRUE(a.arena->check_invariants().ok());
}

// Mixed sizes churning for a long time must not strand capacity: afterwards the arena can still
// be filled to ≥ 90% of its bytes.
TEST(HostArenaTest, UsableCapacityStaysAbove90PercentAfterMixedChurn) {
  ScopedArena a(256 << 20, 8 << 20);
  const std::vector<uint64_t> sizes = {64 << 10, 256 << 10, 512 << 10, 2 << 20};
  std::vector<uint8_t> classes;
  for (uint64_t s : sizes) classes.push_back(a.arena->size_class(s).value());
  std::mt19937_64 rng(1);
  std::vector<uint32_t> live;
  const uint64_t data = a.arena->stats().data_bytes;
  for (int step = 0; step < 200000; ++step) {
    const bool grow = a.arena->stats().used_bytes < data * 8 / 10 ? rng() % 3 != 0 : rng() % 3 == 0;
    if (grow || live.empty()) {
      auto r = a.arena->reserve(classes[rng() % classes.size()], kOwner);
      if (r.ok()) live.push_back(*r);
    } else {
      const size_t i = rng() % live.size();
      ASSERT_TRUE(a.arena->release(live[i]).ok());
      live[i] = live.back();
      live.pop_back();
    }
  }
  ASSERT_TRUE(a.arena->check_invariants().ok());
  // Fill up with the same mix until nothing of any size fits.
  for (bool progress = true; progress;) {
    progress = false;
    for (uint8_t c : classes) {
      while (a.arena->reserve(c, kOwner).ok()) progress = true;
    }
  }
  const double usable = static_cast<double>(a.arena->stats().used_bytes) / static_cast<double>(data);
  RecordProperty("usable_fraction", std::to_string(usable));
  EXPECT_GE(usable, 0.90);
}

TEST(HostArenaTest, ReservationsOfAKilledProcessAreReclaimed) {
  ScopedArena a(32 << 20);
  const uint8_t cls = a.arena->size_class(1 << 20).value();
  const uint32_t dead_owner = make_owner(5, 1234);
  ReadyPipe ready;
  const pid_t child = spawn([&] {
    auto arena = HostArena::attach(a.name).value();
    for (int i = 0; i < 10; ++i) {
      if (!arena->reserve(cls, dead_owner).ok()) return false;
    }
    ready.signal();
    ::pause();  // killed mid-put, reservations outstanding
    return true;
  });
  ASSERT_TRUE(ready.wait());
  const uint32_t mine = a.arena->reserve(cls, kOwner).value();
  ::kill(child, SIGKILL);
  ASSERT_EQ(wait_for(child), 128 + SIGKILL);
  EXPECT_EQ(a.arena->stats().reserved_blocks, 11u);
  const uint64_t freed = a.arena->reclaim([&](uint32_t owner) { return owner != dead_owner; });
  EXPECT_EQ(freed, 10u);
  EXPECT_EQ(a.arena->stats().reserved_blocks, 1u);
  EXPECT_TRUE(a.arena->commit(mine, kOwner).ok());  // a live process's reservation is untouched
  EXPECT_TRUE(a.arena->check_invariants().ok());
}

// Allocators killed at random instants, some while holding the allocation lock: the survivor's
// next allocation gets through at once and the arena's bookkeeping is whole.
TEST(HostArenaTest, AllocatorsKilledAtRandomInstantsLeaveNoLockHeldAndNoLeak) {
  ScopedArena a(64 << 20);
  const uint8_t small = a.arena->size_class(64 << 10).value();
  const uint8_t big = a.arena->size_class(1 << 20).value();
  std::mt19937_64 rng(2);
  uint64_t recoveries = 0;  // summed over the arenas this test recreates
  for (int it = 0; it < 300; ++it) {
    ReadyPipe ready;
    const uint32_t owner = make_owner(7, static_cast<uint32_t>(it));
    const pid_t child = spawn([&]() -> bool {
      auto arena = HostArena::attach(a.name).value();
      std::mt19937_64 crng(it);
      std::vector<uint32_t> mine;
      ready.signal();
      for (;;) {
        if (mine.size() < 20 || crng() % 2 == 0) {
          auto r = arena->reserve(crng() % 2 ? small : big, owner);
          if (r.ok()) mine.push_back(*r);
        } else {
          const uint32_t loc = mine.back();
          mine.pop_back();
          if (crng() % 2 == 0 && arena->commit(loc, owner).ok()) continue;  // committed blocks now belong to the cache
          (void)arena->release(loc);
        }
      }
    });
    ASSERT_TRUE(ready.wait());
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
    ::kill(child, SIGKILL);
    ASSERT_EQ(wait_for(child), 128 + SIGKILL);
    const auto t0 = std::chrono::steady_clock::now();
    (void)a.arena->reclaim([&](uint32_t o) { return o != owner; });
    ASSERT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
    const Status inv = a.arena->check_invariants();
    ASSERT_TRUE(inv.ok()) << "iteration " << it << ": " << inv;
    EXPECT_EQ(a.arena->stats().reserved_blocks, 0u) << "iteration " << it;
    // Committed blocks are the cache's; free them as an evictor would, to keep room.
    ASSERT_TRUE(a.arena->reclaim([](uint32_t) { return true; }) == 0);
    if (a.arena->stats().used_bytes > (48u << 20)) {
      recoveries += a.arena->stats().recoveries;
      a.arena.reset();
      (void)HostArena::destroy(a.name);
      a.arena = HostArena::create({a.name, 64 << 20, 4 << 20}).value();
      ASSERT_EQ(a.arena->size_class(64 << 10).value(), small);
      ASSERT_EQ(a.arena->size_class(1 << 20).value(), big);
    }
  }
  recoveries += a.arena->stats().recoveries;
  std::printf("300 SIGKILLs of allocators: %llu of them died holding the allocation lock and were recovered\n",
              static_cast<unsigned long long>(recoveries));
  EXPECT_GT(recoveries, 0u);  // the kills did land inside the lock, so recovery was exercised
}

}  // namespace
}  // namespace kvtier::host
