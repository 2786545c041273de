// The SSD block store against real files (io_uring, O_DIRECT) and a real RocksDB catalogue.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "ssd_test_support.h"
#include "tiers/ssd/ssd_metadata.h"
#include "tiers/ssd/ssd_store.h"

namespace kvtier::ssd {
namespace {

using testing::block_bytes;
using testing::ScratchDir;
using testing::small_store;
using testing::test_key;

constexpr size_t kBlock = 64 << 10;

std::unique_ptr<SsdStore> open_store(const SsdStoreOptions& o) {
  auto s = SsdStore::open(o);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? std::move(s).value() : nullptr;
}

// Reclaim runs in the writer thread after writes; wait until it has restored its free reserve.
void wait_for_reclaim(SsdStore& store, uint64_t free_regions) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store.stats().regions_free < free_regions && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void insert_blocks(SsdStore& store, uint64_t from, uint64_t to, size_t size = kBlock, Codec codec = Codec::kNone) {
  for (uint64_t i = from; i < to; ++i) {
    const BlockKey k = test_key(i);
    const auto bytes = block_bytes(k, size);
    auto loc = store.insert({k, i == 0 ? 0 : test_key(i - 1).lo, 7}, bytes, codec);
    ASSERT_TRUE(loc.ok()) << i << ": " << loc.status().to_string();
  }
}

// Reads one block into an aligned buffer; returns its status and checks its bytes when OK.
// The store keeps its live totals as blocks come and go; they must equal a walk over the blocks.
void expect_totals_match_a_walk(SsdStore& store) {
  uint64_t blocks = 0, stored = 0, payload = 0;
  store.for_each([&](const StoredBlock& b, uint64_t) {
    ++blocks;
    stored += b.stored_bytes;
    payload += b.payload_bytes;
  });
  const SsdStats s = store.stats();
  EXPECT_EQ(s.blocks, blocks);
  EXPECT_EQ(s.stored_bytes, stored);
  EXPECT_EQ(s.payload_bytes, payload);
}

Status read_and_verify(SsdStore& store, uint64_t i, size_t size = kBlock) {
  std::vector<uint8_t, std::allocator<uint8_t>> unused;
  void* raw = nullptr;
  EXPECT_EQ(posix_memalign(&raw, kIoAlign, size + kIoAlign), 0);
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(raw), &std::free);
  SsdRead r{test_key(i), {buf.get(), size + kIoAlign}, {}, 0};
  store.read({&r, 1});
  if (r.status.ok()) {
    EXPECT_EQ(r.bytes, size);
    const auto want = block_bytes(test_key(i), size);
    EXPECT_EQ(std::memcmp(buf.get(), want.data(), size), 0) << "block " << i << " came back with other bytes";
  }
  return r.status;
}

TEST(SsdStore, ServesBlocksFromMemoryThenFromTheDevice) {
  ScratchDir dir;
  auto store = open_store(small_store(dir));
  insert_blocks(*store, 0, 20);
  for (uint64_t i = 0; i < 20; ++i) EXPECT_TRUE(read_and_verify(*store, i).ok());  // still in region buffers
  ASSERT_TRUE(store->flush().ok());
  for (uint64_t i = 0; i < 20; ++i) EXPECT_TRUE(read_and_verify(*store, i).ok());  // from the file
  const SsdStats s = store->stats();
  EXPECT_EQ(s.blocks, 20u);
  EXPECT_EQ(s.blocks_durable, 20u);
  EXPECT_GE(s.regions_written, 2u);  // 16 blocks of 64 KiB fill a 1 MiB region
  EXPECT_GT(s.bytes_read, 0u);
  EXPECT_EQ(read_and_verify(*store, 999).code(), StatusCode::kNotFound);
}

TEST(SsdStore, ReopenFindsEveryFlushedBlock) {
  ScratchDir dir;
  {
    auto store = open_store(small_store(dir));
    insert_blocks(*store, 0, 40);
    ASSERT_TRUE(store->flush().ok());
  }
  auto store = open_store(small_store(dir));
  EXPECT_EQ(store->stats().recovered_blocks, 40u);
  for (uint64_t i = 0; i < 40; ++i) EXPECT_TRUE(read_and_verify(*store, i).ok()) << i;
  std::set<uint64_t> parents;
  store->for_each([&](const StoredBlock& b, uint64_t) { parents.insert(b.parent_lo); });
  EXPECT_TRUE(parents.contains(test_key(3).lo));
}

TEST(SsdStore, RemoveForgetsTheBlockAcrossRestarts) {
  ScratchDir dir;
  {
    auto store = open_store(small_store(dir));
    insert_blocks(*store, 0, 4);
    ASSERT_TRUE(store->flush().ok());
    ASSERT_TRUE(store->remove(test_key(2)).ok());
    EXPECT_EQ(store->remove(test_key(2)).code(), StatusCode::kNotFound);
    expect_totals_match_a_walk(*store);
    EXPECT_EQ(store->stats().payload_bytes, 3 * kBlock);
  }
  auto store = open_store(small_store(dir));
  EXPECT_EQ(store->stats().blocks, 3u);
  expect_totals_match_a_walk(*store);  // as recovered
  EXPECT_FALSE(store->contains(test_key(2)));
}

TEST(SsdStore, FifoReclaimDropsColdBlocksAndRewritesHotOnes) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir, 6);
  auto store = open_store(o);
  std::vector<BlockKey> dropped;
  std::mutex mu;
  store->set_drop_listener([&](const BlockKey& k) {
    std::lock_guard lock(mu);
    dropped.push_back(k);
  });
  insert_blocks(*store, 0, 32);  // two regions
  ASSERT_TRUE(store->flush().ok());
  ASSERT_TRUE(read_and_verify(*store, 3).ok());  // block 3 is hot
  insert_blocks(*store, 32, 96);                 // six regions' worth in all: the first is reclaimed
  ASSERT_TRUE(store->flush().ok());
  wait_for_reclaim(*store, o.write_buffers);
  const SsdStats s = store->stats();
  EXPECT_GT(s.regions_reclaimed, 0u);
  EXPECT_GE(s.blocks_reinserted, 1u);
  EXPECT_GE(s.blocks_evicted, 15u);
  EXPECT_TRUE(store->contains(test_key(3))) << "a block read since written survives its region's reclaim";
  EXPECT_TRUE(read_and_verify(*store, 3).ok());
  EXPECT_FALSE(store->contains(test_key(4)));
  EXPECT_TRUE(store->contains(test_key(95)));
  expect_totals_match_a_walk(*store);  // after reclaim and a rewrite
  std::lock_guard lock(mu);
  EXPECT_NE(std::find(dropped.begin(), dropped.end(), test_key(4)), dropped.end());
  EXPECT_EQ(std::find(dropped.begin(), dropped.end(), test_key(3)), dropped.end());
}

TEST(SsdStore, LruReclaimKeepsRecentlyReadRegions) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir, 6);
  o.reclaim = RegionReclaim::kLru;
  o.reinsert_hot = false;
  auto store = open_store(o);
  insert_blocks(*store, 0, 64);  // four regions
  ASSERT_TRUE(store->flush().ok());
  ASSERT_TRUE(read_and_verify(*store, 0).ok());  // region of blocks 0..15 is now the most recent
  insert_blocks(*store, 64, 96);
  ASSERT_TRUE(store->flush().ok());
  wait_for_reclaim(*store, o.write_buffers);
  EXPECT_TRUE(store->contains(test_key(0)));
  EXPECT_FALSE(store->contains(test_key(16)));
}

TEST(SsdStore, ZstdCompressesWhatShrinksAndStoresTheRestRaw) {
  ScratchDir dir;
  auto store = open_store(small_store(dir));
  std::vector<uint8_t> compressible(kBlock);
  for (size_t i = 0; i < kBlock; ++i) compressible[i] = static_cast<uint8_t>((i / 64) % 7);
  ASSERT_TRUE(store->insert({test_key(1), 0, 1}, compressible, Codec::kZstd).ok());
  insert_blocks(*store, 2, 3, kBlock, Codec::kZstd);  // random bytes do not shrink
  ASSERT_TRUE(store->flush().ok());
  SsdStats s = store->stats();
  EXPECT_EQ(s.compressed_blocks, 1u);
  EXPECT_LT(s.compressed_stored_bytes, kBlock / 4);
  std::vector<uint8_t> out(kBlock);  // unaligned: goes through a bounce buffer
  SsdRead r{test_key(1), out, {}, 0};
  store->read({&r, 1});
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(out, compressible);
  EXPECT_TRUE(read_and_verify(*store, 2).ok());
}

TEST(SsdStore, CorruptBytesOnDiskAreDroppedNeverServed) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  auto store = open_store(o);
  insert_blocks(*store, 0, 16);
  ASSERT_TRUE(store->flush().ok());
  uint64_t locator = 0;
  store->for_each([&](const StoredBlock& b, uint64_t loc) {
    if (b.key == test_key(5)) locator = loc;
  });
  // Flip a byte of block 5 in the file itself (region and offset from its locator).
  const uint64_t region = locator >> 40, offset = (locator & 0xFFFFFF) * kIoAlign;
  const int fd = ::open(o.files[0].c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const off_t at = static_cast<off_t>(kSsdFileHeaderBytes + region * o.region_bytes + offset + 1000);
  uint8_t byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, at), 1);
  byte ^= 0xFF;
  ASSERT_EQ(::pwrite(fd, &byte, 1, at), 1);
  ::close(fd);
  std::vector<BlockKey> dropped;
  store->set_drop_listener([&](const BlockKey& k) { dropped.push_back(k); });
  EXPECT_EQ(read_and_verify(*store, 5).code(), StatusCode::kCorruption);
  EXPECT_EQ(store->stats().corrupt_blocks, 1u);
  expect_totals_match_a_walk(*store);  // the corrupt block left the tier
  EXPECT_EQ(dropped, std::vector<BlockKey>{test_key(5)});
  EXPECT_EQ(read_and_verify(*store, 5).code(), StatusCode::kNotFound) << "dropped, so a later read is a miss";
  EXPECT_TRUE(read_and_verify(*store, 6).ok());
  store.reset();
  store = open_store(o);
  EXPECT_FALSE(store->contains(test_key(5))) << "the dropped block's record is gone too";
}

// A catalogue entry damaged on disk (its sizes, codec or place no longer describe a block the
// store wrote) is dropped at recovery, never read: reads size their buffers and copies by it.
TEST(SsdStore, CatalogueEntriesThatDescribeNoBlockAreDroppedAtRecovery) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  {
    auto store = open_store(o);
    insert_blocks(*store, 0, 16);
    ASSERT_TRUE(store->flush().ok());
  }
  {
    auto meta = SsdMetadata::open(o.metadata_dir, /*start_empty_if_unreadable=*/false, /*sync_writes=*/true);
    ASSERT_TRUE(meta.ok()) << meta.status().to_string();
    std::map<uint32_t, SealedRegion> regions;
    std::map<uint64_t, StoredBlock> blocks;  // by the key's low half (distinct for test keys)
    ASSERT_TRUE((*meta)
                    ->scan([&](const SealedRegion& r) { regions[r.region] = r; },
                           [&](const StoredBlock& b) { blocks[b.key.lo] = b; })
                    .ok());
    const auto damage = [&](uint64_t i, const std::function<void(StoredBlock&)>& how) {
      StoredBlock b = blocks.at(test_key(i).lo);
      how(b);
      ASSERT_TRUE((*meta)->commit_region(regions.at(b.region), {&b, 1}).ok());
    };
    damage(1, [](StoredBlock& b) { b.payload_bytes *= 4; });             // raw, but longer than stored
    damage(2, [](StoredBlock& b) { b.codec = static_cast<Codec>(7); });  // no such codec
    damage(3, [](StoredBlock& b) { b.offset += 512; });                  // not aligned
    damage(4, [&](StoredBlock& b) { b.offset = static_cast<uint32_t>(o.region_bytes - kIoAlign); });  // past the region
  }
  auto store = open_store(o);
  const SsdStats s = store->stats();
  EXPECT_EQ(s.recovered_blocks, 12u);
  EXPECT_EQ(s.recovery_dropped_records, 4u);
  for (uint64_t i = 1; i <= 4; ++i) EXPECT_EQ(read_and_verify(*store, i).code(), StatusCode::kNotFound) << i;
  for (uint64_t i : {0, 5, 15}) EXPECT_TRUE(read_and_verify(*store, i).ok()) << i;
}

// The catalogue's RocksDB memory is what /metrics reports as kvtier_ssd_catalog_memory_bytes:
// records written and not yet flushed sit in its memtables, and the store's stats carry it.
TEST(SsdStore, TheCatalogueReportsTheMemoryItsRecordsHold) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  {
    auto meta = SsdMetadata::open(o.metadata_dir, /*start_empty_if_unreadable=*/false, /*sync_writes=*/false);
    ASSERT_TRUE(meta.ok()) << meta.status().to_string();
    const uint64_t empty = (*meta)->memory_bytes();
    std::vector<StoredBlock> blocks(7000);  // ~80 bytes a record: ~560 KB, under a 1 MiB memtable
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i].key = test_key(i);
    ASSERT_TRUE((*meta)->commit_region(SealedRegion{1, 1, 1}, blocks).ok());
    EXPECT_GE((*meta)->memory_bytes(), empty + (256U << 10));
  }
  auto store = open_store(o);
  insert_blocks(*store, 0, 20);
  ASSERT_TRUE(store->flush().ok());
  EXPECT_GT(store->stats().catalog_memory_bytes, 0U);
}

// An entry that names one key but carries another block's place and checksum (a catalogue damaged
// or mixed up on disk) must not serve that block's bytes under its key: the checksum binds the key.
TEST(SsdStore, AnEntryPointingAtAnotherKeysBlockFailsItsChecksum) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  {
    auto store = open_store(o);
    insert_blocks(*store, 0, 8);
    insert_blocks(*store, 8, 12, kBlock, Codec::kZstd);
    ASSERT_TRUE(store->flush().ok());
  }
  {
    auto meta = SsdMetadata::open(o.metadata_dir, /*start_empty_if_unreadable=*/false, /*sync_writes=*/true);
    ASSERT_TRUE(meta.ok()) << meta.status().to_string();
    std::map<uint32_t, SealedRegion> regions;
    std::map<uint64_t, StoredBlock> blocks;
    ASSERT_TRUE((*meta)
                    ->scan([&](const SealedRegion& r) { regions[r.region] = r; },
                           [&](const StoredBlock& b) { blocks[b.key.lo] = b; })
                    .ok());
    const auto point = [&](uint64_t from, uint64_t at) {
      StoredBlock b = blocks.at(test_key(at).lo);
      b.key = test_key(from);
      ASSERT_TRUE((*meta)->commit_region(regions.at(b.region), {&b, 1}).ok());
    };
    point(1, 2);    // a stored key moved onto its neighbour
    point(99, 3);   // a key never stored, given a real block
    point(10, 11);  // compressed blocks too
  }
  auto store = open_store(o);
  for (uint64_t i : {1, 99, 10}) EXPECT_EQ(read_and_verify(*store, i).code(), StatusCode::kCorruption) << i;
  EXPECT_EQ(store->stats().corrupt_blocks, 3u);
  for (uint64_t i : {0, 2, 3, 11}) EXPECT_TRUE(read_and_verify(*store, i).ok()) << i;
}

TEST(SsdStore, UnreadableCatalogueIsAClearErrorOrStartsEmptyWhenAsked) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  {
    auto store = open_store(o);
    insert_blocks(*store, 0, 4);
  }
  for (const auto& e : std::filesystem::directory_iterator(o.metadata_dir)) {
    if (e.path().filename() == "CURRENT") {
      FILE* f = std::fopen(e.path().c_str(), "w");
      std::fputs("garbage-manifest-name\n", f);
      std::fclose(f);
    }
  }
  auto refused = SsdStore::open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--ssd-start-empty"), std::string::npos) << refused.status().to_string();
  o.start_empty_if_unreadable = true;
  auto store = open_store(o);
  EXPECT_TRUE(store->stats().metadata_recreated);
  EXPECT_EQ(store->stats().blocks, 0u);
  insert_blocks(*store, 10, 12);
  ASSERT_TRUE(store->flush().ok());
  EXPECT_TRUE(read_and_verify(*store, 10).ok());
}

TEST(SsdStore, FileDeletedUnderneathStopsAdmittingKeepsServingAndRestartsEmpty) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  auto store = open_store(o);
  insert_blocks(*store, 0, 8);
  ASSERT_TRUE(store->flush().ok());
  ASSERT_EQ(::unlink(o.files[0].c_str()), 0);
  store->check_health();
  EXPECT_TRUE(store->stats().file_deleted);
  auto refused = store->insert({test_key(100), 0, 1}, block_bytes(test_key(100), kBlock), Codec::kNone);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(read_and_verify(*store, 3).ok()) << "the open descriptor still reads the blocks";
  store.reset();
  store = open_store(o);
  EXPECT_EQ(store->stats().blocks, 0u) << "a new file holds none of the old catalogue's blocks";
  EXPECT_GT(store->stats().recovery_dropped_records, 0u);
}

TEST(SsdStore, LayoutChangeStartsTheTierEmpty) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  {
    auto store = open_store(o);
    insert_blocks(*store, 0, 4);
  }
  o.region_bytes = 2ULL << 20;
  o.bytes = 8 * o.region_bytes;
  auto store = open_store(o);
  EXPECT_EQ(store->stats().blocks, 0u);
}

TEST(SsdStore, RejectsBadOptions) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir);
  o.region_bytes = 12345;
  EXPECT_EQ(SsdStore::open(o).status().code(), StatusCode::kInvalidArgument);
  o = small_store(dir, 3);
  EXPECT_EQ(SsdStore::open(o).status().code(), StatusCode::kInvalidArgument);
  o = small_store(dir);
  o.files.clear();
  EXPECT_EQ(SsdStore::open(o).status().code(), StatusCode::kInvalidArgument);
  auto store = open_store(small_store(dir));
  std::vector<uint8_t> huge(2 << 20);
  EXPECT_EQ(store->insert({test_key(1), 0, 1}, huge, Codec::kNone).status().code(), StatusCode::kInvalidArgument);
  // Even when it would compress to a fraction of a region: recovery bounds payloads by the region.
  EXPECT_EQ(store->insert({test_key(1), 0, 1}, huge, Codec::kZstd).status().code(), StatusCode::kInvalidArgument);
}

TEST(SsdStore, SpreadsRegionsOverSeveralFiles) {
  ScratchDir dir;
  SsdStoreOptions o = small_store(dir, 8);
  o.files = {dir / "a.kvt", dir / "b.kvt"};
  {
    auto store = open_store(o);
    insert_blocks(*store, 0, 64);
    ASSERT_TRUE(store->flush().ok());
  }
  auto store = open_store(o);
  for (uint64_t i = 0; i < 64; ++i) EXPECT_TRUE(read_and_verify(*store, i).ok());
  EXPECT_GT(std::filesystem::file_size(o.files[1]), 1u << 20);
}

}  // namespace
}  // namespace kvtier::ssd
