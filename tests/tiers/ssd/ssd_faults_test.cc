// Device faults the SSD tier must survive, injected under real files, and a process killed with
// SIGKILL while writing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "fault_injecting_device.h"
#include "ssd_test_support.h"
#include "unsynced_dropping_fs.h"

namespace kvtier::ssd {
namespace {

using testing::block_bytes;
using testing::Faults;
using testing::ScratchDir;
using testing::small_store;
using testing::test_key;

constexpr size_t kBlock = 64 << 10;

struct FaultyStore {
  std::shared_ptr<Faults> faults = std::make_shared<Faults>();
  std::unique_ptr<SsdStore> store;
  std::vector<BlockKey> dropped;
  std::mutex mu;

  explicit FaultyStore(const SsdStoreOptions& o) {
    auto s = SsdStore::open(o, testing::faulty_files(faults));
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    store = std::move(s).value();
    store->set_drop_listener([this](const BlockKey& k) {
      std::lock_guard lock(mu);
      dropped.push_back(k);
    });
  }
  Status insert(uint64_t i) {
    const auto bytes = block_bytes(test_key(i), kBlock);
    return store->insert({test_key(i), 0, 1}, bytes, Codec::kNone).status();
  }
  Status read(uint64_t i) {
    void* raw = nullptr;
    EXPECT_EQ(posix_memalign(&raw, kIoAlign, kBlock), 0);
    std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(raw), &std::free);
    SsdRead r{test_key(i), {buf.get(), kBlock}, {}, 0};
    store->read({&r, 1});
    if (r.status.ok()) {
      const auto want = block_bytes(test_key(i), kBlock);
      EXPECT_EQ(std::memcmp(buf.get(), want.data(), kBlock), 0) << "block " << i;
    }
    return r.status;
  }
};

TEST(SsdFaults, EnospcStopsAdmittingReportsItAndKeepsServing) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  o.full_backoff_ms = 60000;
  FaultyStore fs(o);
  for (uint64_t i = 0; i < 16; ++i) ASSERT_TRUE(fs.insert(i).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  fs.faults->write_errno = ENOSPC;
  for (uint64_t i = 16; i < 20; ++i) ASSERT_TRUE(fs.insert(i).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  const SsdStats s = fs.store->stats();
  EXPECT_TRUE(s.full);
  EXPECT_EQ(s.enospc_events, 1u);
  EXPECT_EQ(s.blocks_lost, 4u);
  EXPECT_EQ(fs.insert(30).code(), StatusCode::kResourceExhausted);
  EXPECT_GE(fs.store->stats().inserts_refused, 1u);
  EXPECT_EQ(fs.read(17).code(), StatusCode::kNotFound) << "the failed region's blocks are gone";
  EXPECT_TRUE(fs.read(3).ok()) << "what was written before keeps being served";
  std::lock_guard lock(fs.mu);
  EXPECT_EQ(fs.dropped.size(), 4u);
}

TEST(SsdFaults, EnospcBackoffEndsAndTheTierAdmitsAgain) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  ManualClock clock;  // the backoff ends when the test says, not after a sleep
  o.clock = &clock;
  o.full_backoff_ms = 10000;
  FaultyStore fs(o);
  fs.faults->write_errno = ENOSPC;
  ASSERT_TRUE(fs.insert(0).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  EXPECT_TRUE(fs.store->stats().full);
  fs.faults->write_errno = 0;
  EXPECT_EQ(fs.insert(1).code(), StatusCode::kResourceExhausted) << "within the backoff";
  clock.advance(std::chrono::milliseconds(9000));
  EXPECT_TRUE(fs.store->stats().full);
  clock.advance(std::chrono::milliseconds(1001));
  EXPECT_FALSE(fs.store->stats().full);
  ASSERT_TRUE(fs.insert(1).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  EXPECT_TRUE(fs.read(1).ok());
}

TEST(SsdFaults, ReadErrorDropsTheBlockAndCountsIt) {
  ScratchDir dir;
  FaultyStore fs(small_store(dir));
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(fs.insert(i).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  fs.faults->read_errno = EIO;
  fs.faults->reads_to_fail = 1;
  EXPECT_EQ(fs.read(2).code(), StatusCode::kIOError);
  EXPECT_EQ(fs.store->stats().read_errors, 1u);
  EXPECT_FALSE(fs.store->contains(test_key(2)));
  EXPECT_EQ(fs.read(2).code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs.read(1).ok());
  std::lock_guard lock(fs.mu);
  EXPECT_EQ(fs.dropped, std::vector<BlockKey>{test_key(2)});
}

TEST(SsdFaults, CorruptReadIsNeverServed) {
  ScratchDir dir;
  FaultyStore fs(small_store(dir));
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(fs.insert(i).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  fs.faults->reads_to_corrupt = 1;
  EXPECT_EQ(fs.read(0).code(), StatusCode::kCorruption);
  EXPECT_EQ(fs.store->stats().corrupt_blocks, 1u);
  EXPECT_EQ(fs.read(0).code(), StatusCode::kNotFound);
}

TEST(SsdFaults, ShortReadsAreContinued) {
  ScratchDir dir;
  FaultyStore fs(small_store(dir));
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(fs.insert(i).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  fs.faults->short_reads = 3;
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(fs.read(i).ok()) << i;
  EXPECT_GE(fs.store->stats().short_reads, 3u);
}

TEST(SsdFaults, ReadsThatMakeNoProgressAreErrors) {
  ScratchDir dir;
  FaultyStore fs(small_store(dir));
  ASSERT_TRUE(fs.insert(0).ok());
  ASSERT_TRUE(fs.store->flush().ok());
  fs.faults->stall_reads = true;
  EXPECT_EQ(fs.read(0).code(), StatusCode::kIOError);
  EXPECT_EQ(fs.store->stats().read_errors, 1u);
}

// A process writing blocks is killed with SIGKILL at an arbitrary moment. Every block of every
// region it had committed is found again, byte for byte; nothing else is.
TEST(SsdCrash, SigkillUnderWriteLoadRestartsWithEveryFlushedBlock) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir, 64);
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    auto store = SsdStore::open(o);
    if (!store.ok()) ::_exit(2);
    std::atomic<bool> done{false};
    // Reports how many blocks are durable whenever that grows; regions commit in insert order.
    std::thread reporter([&] {
      uint64_t last = 0;
      while (!done) {
        const uint64_t durable = (*store)->stats().blocks_durable;
        if (durable != last && ::write(report[1], &durable, sizeof(durable)) != sizeof(durable)) ::_exit(3);
        last = durable;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    for (uint64_t i = 0;; ++i) {
      const auto bytes = block_bytes(test_key(i), kBlock);
      (void)(*store)->insert({test_key(i), 0, 1}, bytes, Codec::kNone);
      if (i == 48 * 16) std::this_thread::sleep_for(std::chrono::hours(1));  // stay alive to be killed
    }
  }
  ::close(report[1]);
  uint64_t durable = 0, v = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (durable < 20 * 16 && std::chrono::steady_clock::now() < until) {
    if (::read(report[0], &v, sizeof(v)) == sizeof(v)) durable = v;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  while (::read(report[0], &v, sizeof(v)) == sizeof(v)) durable = v;  // reports written before death
  ::close(report[0]);
  ASSERT_GE(durable, 20u * 16) << "the writer made too little progress";

  auto store = SsdStore::open(o);
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  const SsdStats s = (*store)->stats();
  EXPECT_GE(s.recovered_blocks, durable);
  uint64_t verified = 0;
  for (uint64_t i = 0; i < durable; ++i) {
    void* raw = nullptr;
    ASSERT_EQ(posix_memalign(&raw, kIoAlign, kBlock), 0);
    std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(raw), &std::free);
    SsdRead r{test_key(i), {buf.get(), kBlock}, {}, 0};
    (*store)->read({&r, 1});
    const auto want = block_bytes(test_key(i), kBlock);
    if (r.status.ok() && std::memcmp(buf.get(), want.data(), kBlock) == 0) ++verified;
  }
  EXPECT_EQ(verified, durable) << "every block of a committed region comes back intact";
  // Whatever else was recovered is also intact (a region may commit after the last report).
  (*store)->for_each([&](const StoredBlock& b, uint64_t) { EXPECT_EQ(b.payload_bytes, kBlock); });
}

}  // namespace
}  // namespace kvtier::ssd

namespace kvtier::ssd {
namespace {

// A power cut: the catalogue's writes not yet synced are lost (the region data, written with
// O_DIRECT, is on the device). With sync_writes every block of a flushed region survives; without
// it the tier may come back with fewer blocks, never with a block it cannot serve whole.
TEST(SsdPowerLoss, DroppingUnsyncedCatalogueWritesLosesNothingSynced) {
  for (const bool sync_writes : {true, false}) {
    SCOPED_TRACE(sync_writes ? "sync_writes" : "no sync_writes");
    ScratchDir dir;
    auto fs = std::make_shared<testing::UnsyncedDroppingFs>();
    const std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    SsdStoreOptions o = small_store(dir);
    o.sync_writes = sync_writes;
    o.metadata_env = env.get();
    constexpr uint64_t kFlushed = 40, kLater = 10;
    {
      auto store = SsdStore::open(o).value();
      for (uint64_t i = 0; i < kFlushed; ++i) {
        const auto bytes = block_bytes(test_key(i), kBlock);
        ASSERT_TRUE(store->insert({test_key(i), 0, 1}, bytes, Codec::kNone).ok());
      }
      ASSERT_TRUE(store->flush().ok());  // durable, if sync_writes says so
      for (uint64_t i = kFlushed; i < kFlushed + kLater; ++i) {
        const auto bytes = block_bytes(test_key(i), kBlock);
        ASSERT_TRUE(store->insert({test_key(i), 0, 1}, bytes, Codec::kNone).ok());
      }
    }  // the destructor writes the region being filled
    fs->drop_unsynced();
    EXPECT_GT(fs->files_cut(), 0u);

    o.metadata_env = nullptr;
    FaultyStore check(o);  // opening succeeds (it expects so)
    ASSERT_NE(check.store, nullptr);
    uint64_t recovered = 0;
    for (uint64_t i = 0; i < kFlushed + kLater; ++i) {
      if (!check.store->contains(test_key(i))) {
        EXPECT_FALSE(sync_writes && i < kFlushed) << "block " << i << " of a flushed region was lost";
        continue;
      }
      ++recovered;
      EXPECT_TRUE(check.read(i).ok()) << "block " << i << " is served whole or not at all";
    }
    EXPECT_EQ(check.store->stats().corrupt_blocks, 0u);
    if (sync_writes) {
      EXPECT_GE(recovered, kFlushed);
    }
  }
}

}  // namespace
}  // namespace kvtier::ssd
