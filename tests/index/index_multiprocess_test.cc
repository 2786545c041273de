// The index across processes: concurrent readers and writers checked against what each key must
// hold, writers SIGKILLed at random instants and at every named crash point, and pins of dead
// processes reclaimed without timeouts.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <random>
#include <thread>
#include <unordered_map>

#include "index/crash_points.h"
#include "index/index_mechanics.h"
#include "index_test_support.h"
#include "kvtier/block_index.h"
#include "process_harness.h"

namespace kvtier {
namespace {

using Clock = std::chrono::steady_clock;
using testing_support::random_chain;
using testing_support::ReadyPipe;
using testing_support::ScopedSegment;
using testing_support::spawn;
using testing_support::wait_for;

// Every field of a churned block is a function of its key, so a reader can tell a torn read.
BlockRecord derived_record(const BlockKey& k, Tier tier) {
  BlockRecord r;
  r.key = k;
  r.parent = {k.hi ^ 1, k.lo ^ 1};
  r.namespace_id = static_cast<uint16_t>(k.hi & 0xFF);
  r.payload_bytes = 1024 + static_cast<uint32_t>(k.lo % 4096);
  r.tier = tier;
  // HBM: holder 0xFF is no process slot (0..31), so no process leaving takes these records.
  r.locator = tier == Tier::kHost  ? (k.lo & 0xFFFFFFFF)
              : tier == Tier::kSsd ? k.hi
                                   : ((uint64_t{0xFF} << 24) | (k.lo & 0xFFFFFF));
  return r;
}

bool consistent(const BlockInfo& b) {
  const BlockRecord r = derived_record(b.key, Tier::kHost);
  return b.payload_bytes == r.payload_bytes && b.namespace_id == r.namespace_id && b.parent_lo == r.parent.lo &&
         (!b.in(Tier::kHost) || b.host_loc == (b.key.lo & 0xFFFFFFFF)) &&
         (!b.in(Tier::kSsd) || b.ssd_loc == b.key.hi) && (!b.in(Tier::kHbm) || b.hbm_block == (b.key.lo & 0xFFFFFF));
}

// Stable chains are inserted first and never touched again; they must always be found.
// With pin_stable the parent holds leases on them, so no eviction may take them either.
struct Fixture {
  ScopedSegment seg;
  std::vector<std::vector<BlockKey>> stable;
  BlockIndex index;
  std::vector<BlockLease> stable_leases;

  Fixture(const std::string& tag, uint64_t capacity, size_t chains, size_t chain_len, bool pin_stable = false)
      : seg(tag), index(BlockIndex::create(seg.options(capacity, 4096)).value()) {
    std::mt19937_64 rng(std::hash<std::string>()(tag));
    for (size_t c = 0; c < chains; ++c) {
      stable.push_back(random_chain(rng, chain_len));
      BlockKey parent{0, 0};
      for (const auto& k : stable.back()) {
        EXPECT_TRUE(index.insert(testing_support::record(k, parent, Tier::kHost, 1, 512)).ok());
        parent = k;
      }
      if (pin_stable) {
        auto leases = index.acquire(stable.back());
        EXPECT_TRUE(leases.ok());
        for (auto& lease : *leases) stable_leases.push_back(std::move(lease));
      }
    }
  }

  bool stable_all_found(const BlockIndex& ix) const {
    for (const auto& chain : stable) {
      if (ix.match_prefix(chain).overall != chain.size()) return false;
    }
    return true;
  }
};

// Random writer operations on keys from `universe`, until told to stop or killed. With a model
// (a writer checking its own keys) there is no eviction: it would take other writers' blocks.
void churn(BlockIndex& ix, std::vector<BlockKey>& universe, std::mt19937_64& rng,
           std::unordered_map<BlockKey, uint8_t>* model, const std::function<bool()>& keep_going) {
  while (keep_going()) {
    const BlockKey& k = universe[rng() % universe.size()];
    const Tier t = kAllTiers[rng() % 3];
    switch (rng() % (model ? 7 : 8)) {
      case 0:
      case 1:
      case 2:
        if (ix.insert(derived_record(k, t)).ok() && model) (*model)[k] |= tier_bit(t);
        break;
      case 3:
      case 4:
        if (ix.remove(k).ok() && model) model->erase(k);
        break;
      case 5:
        if (ix.drop_tier(k, t).ok() && model) {
          auto it = model->find(k);
          if (it != model->end() && (it->second &= static_cast<uint8_t>(~tier_bit(t))) == 0) model->erase(it);
        }
        break;
      case 6: {
        auto leases = ix.acquire({&k, 1});
        (void)leases;
        break;
      }
      case 7: (void)index::IndexMechanics::evict(ix, Tier::kSsd, 2048, *make_prefix_aware_policy(), nullptr); break;
    }
  }
}

TEST(IndexMultiProcessTest, ReadersAndWritersInSeparateProcessesAgree) {
  Fixture f("mp-agree", 8192, 40, 32);
  const auto deadline = Clock::now() + std::chrono::milliseconds(1500);
  std::vector<pid_t> writers, readers;
  for (int w = 0; w < 2; ++w) {
    writers.push_back(spawn([&, w] {
      auto ix = BlockIndex::attach(f.seg.name).value();
      std::mt19937_64 rng(100 + w);
      std::vector<BlockKey> mine = random_chain(rng, 1500);
      std::unordered_map<BlockKey, uint8_t> model;
      churn(ix, mine, rng, &model, [&] { return Clock::now() < deadline; });
      // This writer alone touched these keys: the index must hold exactly its model.
      for (const auto& k : mine) {
        const auto info = ix.lookup(k);
        const auto it = model.find(k);
        if (info.has_value() != (it != model.end()) || (info && info->tiers != it->second)) {
          std::fprintf(stderr, "writer %d: key %s disagrees with its model\n", w, k.to_hex().c_str());
          return false;
        }
      }
      return true;
    }));
  }
  for (int r = 0; r < 2; ++r) {
    readers.push_back(spawn([&, r] {
      auto ix = BlockIndex::attach(f.seg.name).value();
      std::mt19937_64 rng(200 + r);
      uint64_t rounds = 0;
      while (Clock::now() < deadline) {
        const auto& chain = f.stable[rng() % f.stable.size()];
        const PrefixMatch m = ix.match_prefix(chain);
        if (m.overall != chain.size() || m.in(Tier::kHost) != chain.size()) {
          std::fprintf(stderr, "reader %d: stable chain matched %zu of %zu\n", r, m.overall, chain.size());
          return false;
        }
        auto leases = ix.acquire(chain);
        if (!leases.ok() || leases->size() != chain.size()) {
          std::fprintf(stderr, "reader %d: acquire pinned %zu of %zu\n", r, leases.ok() ? leases->size() : 0,
                       chain.size());
          return false;
        }
        // Probe churned keys: whatever is found must be a consistent snapshot.
        std::mt19937_64 wrng(100 + rng() % 2);
        const auto universe = random_chain(wrng, 1500);
        for (int i = 0; i < 32; ++i) {
          if (auto info = ix.lookup(universe[rng() % universe.size()]); info && !consistent(*info)) {
            std::fprintf(stderr, "reader %d: torn entry for %s\n", r, info->key.to_hex().c_str());
            return false;
          }
        }
        ++rounds;
      }
      return rounds > 10;
    }));
  }
  for (pid_t p : writers) EXPECT_EQ(wait_for(p), 0);
  for (pid_t p : readers) EXPECT_EQ(wait_for(p), 0);
  EXPECT_TRUE(f.index.maintain().ok());
  EXPECT_TRUE(f.index.check_invariants().ok()) << f.index.check_invariants();
  EXPECT_TRUE(f.stable_all_found(f.index));
  EXPECT_EQ(f.index.stats().processes_attached, 0u);  // every child left (or was reclaimed)
}

// ≥ 1,000 writers killed with SIGKILL at random instants. After each: a survivor takes the writer
// lock within 1 s, the dead child's pins are reclaimed, and every invariant holds.
TEST(IndexMultiProcessTest, WritersKilledAtRandomInstantsNeverCorruptOrBlock) {
  Fixture f("mp-kill", 1024, 8, 16, /*pin_stable=*/true);
  std::mt19937_64 rng(7);
  const int iterations = 1000;
  double worst_wait_ms = 0;
  for (int it = 0; it < iterations; ++it) {
    ReadyPipe ready;
    const uint64_t seed = rng();
    const pid_t child = spawn([&] {
      auto ix = BlockIndex::attach(f.seg.name).value();
      std::mt19937_64 crng(seed);
      std::vector<BlockKey> universe = random_chain(crng, 300);
      ready.signal();
      churn(ix, universe, crng, nullptr, [] { return true; });
      return true;
    });
    ASSERT_TRUE(ready.wait());
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
    ::kill(child, SIGKILL);
    ASSERT_EQ(wait_for(child), 128 + SIGKILL);

    // The survivor: a write must get through promptly, recovering the dead writer if needed.
    const auto t0 = Clock::now();
    const BlockKey probe{rng(), rng()};
    ASSERT_TRUE(f.index.insert(testing_support::record(probe, {0, 0}, Tier::kHost, 1, 512)).ok());
    ASSERT_TRUE(f.index.remove(probe).ok());
    const double waited = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    worst_wait_ms = std::max(worst_wait_ms, waited);
    ASSERT_LT(waited, 1000.0) << "iteration " << it;
    ASSERT_TRUE(f.index.maintain().ok());
    const Status inv = f.index.check_invariants();
    ASSERT_TRUE(inv.ok()) << "iteration " << it << ": " << inv;
    ASSERT_TRUE(f.stable_all_found(f.index)) << "iteration " << it;
  }
  const IndexStats s = f.index.stats();
  RecordProperty("worst_survivor_wait_ms", std::to_string(worst_wait_ms));
  RecordProperty("writer_recoveries", std::to_string(s.recoveries));
  std::printf(
      "1000 SIGKILLs: %llu dead writers recovered, %llu dead processes reclaimed, worst survivor wait %.2f ms\n",
      static_cast<unsigned long long>(s.recoveries), static_cast<unsigned long long>(s.processes_reclaimed),
      worst_wait_ms);
  EXPECT_GT(s.processes_reclaimed, 0u);
}

// Each named window of the journal protocol, hit deterministically: the child dies exactly there.
class CrashPointTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CrashPointTest, ASurvivorRecoversAndReadersNeverWait) {
  const std::string point = GetParam();
  Fixture f("mp-point-" + std::to_string(std::hash<std::string>()(point) % 100000), 1024, 8, 16, /*pin_stable=*/true);
  for (int round = 0; round < 20; ++round) {
    static std::string armed;
    static int countdown;
    armed = point;
    countdown = 1 + round % 5;
    const pid_t child = spawn([&] {
      auto ix = BlockIndex::attach(f.seg.name).value();
      index::set_crash_hook_for_testing([](const char* p) {
        if (armed == p && --countdown == 0) ::raise(SIGKILL);
      });
      std::mt19937_64 crng(round);
      std::vector<BlockKey> universe = random_chain(crng, 200);
      if (point == "reclaim-started") {
        // Die while reclaiming another dead process's pins.
        auto leases = ix.acquire({&f.stable[0][0], 1});
        (void)ix.maintain();
      }
      churn(ix, universe, crng, nullptr, [] { return true; });
      return true;
    });
    const int rc = wait_for(child);
    ASSERT_EQ(rc, 128 + SIGKILL) << "child was not killed at " << point;

    // Readers first, before any writer has recovered: they must answer at once.
    const auto t0 = Clock::now();
    for (const auto& chain : f.stable) (void)f.index.match_prefix(chain);
    const double read_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    EXPECT_LT(read_ms, 100.0);

    ASSERT_TRUE(f.index.maintain().ok());
    const Status inv = f.index.check_invariants();
    ASSERT_TRUE(inv.ok()) << point << " round " << round << ": " << inv;
    ASSERT_TRUE(f.stable_all_found(f.index)) << point << " round " << round;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryWindow, CrashPointTest,
                         ::testing::Values("journal-committed", "entry-odd", "entry-written", "record-applied",
                                           "move-destination-written", "move-source-half-cleared", "shift-step"));

TEST(IndexMultiProcessTest, PinsOfAKilledProcessAreReclaimedWithoutATimeout) {
  Fixture f("mp-pins", 1024, 2, 8);
  ReadyPipe ready;
  const auto& chain = f.stable[0];
  const pid_t child = spawn([&] {
    auto ix = BlockIndex::attach(f.seg.name).value();
    auto leases = ix.acquire(chain);
    if (!leases.ok() || leases->size() != chain.size()) return false;
    ready.signal();
    ::pause();  // hold the leases until killed
    return true;
  });
  ASSERT_TRUE(ready.wait());
  EXPECT_EQ(f.index.remove(chain.back()).code(), StatusCode::kFailedPrecondition);  // pinned by a live process
  ASSERT_TRUE(f.index.maintain().ok());
  EXPECT_EQ(f.index.remove(chain.back()).code(), StatusCode::kFailedPrecondition);  // still alive: kept
  ::kill(child, SIGKILL);
  ASSERT_EQ(wait_for(child), 128 + SIGKILL);
  const auto t0 = Clock::now();
  ASSERT_TRUE(f.index.maintain().ok());
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0);
  EXPECT_TRUE(f.index.remove(chain.back()).ok());  // the dead process's pin is gone
  EXPECT_EQ(f.index.stats().processes_reclaimed, 1u);
  EXPECT_TRUE(f.index.check_invariants().ok());
}

TEST(IndexMultiProcessTest, ProcessSlotsRunOutCleanlyAndComeBack) {
  Fixture f("mp-slots", 1024, 1, 4);
  std::vector<pid_t> holders;
  for (int i = 0; i < 32; ++i) {
    ReadyPipe ready;
    holders.push_back(spawn([&] {
      auto ix = BlockIndex::attach(f.seg.name).value();
      auto leases = ix.acquire({&f.stable[0][0], 1});
      if (!leases.ok()) return false;
      ready.signal();
      ::pause();
      return true;
    }));
    ASSERT_TRUE(ready.wait());
  }
  auto refused = f.index.acquire(f.stable[0]);
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted) << refused.status();
  for (pid_t p : holders) ::kill(p, SIGKILL);
  for (pid_t p : holders) wait_for(p);
  auto granted = f.index.acquire(f.stable[0]);  // joining reclaims the dead on its own
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(granted->size(), 4u);
}

}  // namespace
}  // namespace kvtier
