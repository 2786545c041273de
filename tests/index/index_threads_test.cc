// The same protocols as the multi-process tests, with threads, so ThreadSanitizer can check the
// seqlock, the pin CAS and the writer lock (scripts/test --preset tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "index_test_support.h"
#include "kvtier/block_index.h"

namespace kvtier {
namespace {

using testing_support::random_chain;
using testing_support::record;
using testing_support::ScopedSegment;

TEST(IndexThreadsTest, ReadersPinnersAndWritersRunTogether) {
  ScopedSegment seg("threads");
  auto index = BlockIndex::create(seg.options(4096)).value();
  std::mt19937_64 rng(1);
  std::vector<std::vector<BlockKey>> stable;
  for (int c = 0; c < 16; ++c) {
    stable.push_back(random_chain(rng, 16));
    testing_support::insert_chain(index, stable.back());
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> failures{0}, reads{0}, pins{0}, writes{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      auto ix = BlockIndex::attach(seg.name).value();
      std::mt19937_64 r(10 + w);
      const auto universe = random_chain(r, 800);
      while (!stop.load(std::memory_order_relaxed)) {
        const BlockKey& k = universe[r() % universe.size()];
        if (r() % 2 == 0) {
          (void)ix.insert(record(k, {0, 0}, kAllTiers[r() % 3], 3));
        } else {
          (void)ix.remove(k);
        }
        writes.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 r(20 + t);
      while (!stop.load(std::memory_order_relaxed)) {
        const auto& chain = stable[r() % stable.size()];
        if (index.match_prefix(chain).overall != chain.size()) failures.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  threads.emplace_back([&] {
    std::mt19937_64 r(30);
    while (!stop.load(std::memory_order_relaxed)) {
      const auto& chain = stable[r() % stable.size()];
      auto leases = index.acquire(chain);
      if (!leases.ok() || leases->size() != chain.size()) failures.fetch_add(1);
      pins.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_GT(reads.load(), 100u);
  EXPECT_GT(pins.load(), 10u);
  EXPECT_GT(writes.load(), 100u);
  EXPECT_TRUE(index.check_invariants().ok()) << index.check_invariants();
  for (const auto& chain : stable) {
    for (const auto& k : chain) EXPECT_EQ(index.lookup(k)->pins, 0u);
  }
}

}  // namespace
}  // namespace kvtier
