// SsdStore: the SSD tier's block store (docs/ssd.md).
//
// Blocks are appended to large regions (tens of MiB) filled in memory and written by a
// background writer with io_uring and O_DIRECT in big sequential writes; whole regions are
// reclaimed (FIFO or LRU of regions), rewriting the blocks read since they were written. Each
// block carries an XXH3-64 checksum of its stored bytes, bound to its key, verified on every
// read: a block that fails it, or that the device cannot read, is dropped and counted, never
// served. The catalogue lives in RocksDB (SsdMetadata) and is written only after a region's data
// is on the device, so a restart, even after SIGKILL, finds every block of every written region,
// and nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "kvtier/block_key.h"
#include "kvtier/result.h"
#include "tiers/ssd/block_codec.h"
#include "tiers/ssd/device.h"
#include "tiers/ssd/ssd_metadata.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace kvtier::ssd {

// Each file starts with its identity block, padded so regions start on 1 MiB boundaries; region r
// of n files lies in file r % n at kSsdFileHeaderBytes + (r / n) * region_bytes.
inline constexpr uint64_t kSsdFileHeaderBytes = 1ULL << 20;

enum class RegionReclaim : uint8_t {
  kFifo,  // oldest written region first: the fewest device writes per byte cached (CacheLib's choice)
  kLru,   // least recently read region first
};
Result<RegionReclaim> parse_region_reclaim(std::string_view name);  // "fifo" | "lru"

struct SsdStoreOptions {
  std::vector<std::string> files;  // one device per file or raw block device; regions alternate between them
  uint64_t bytes = 0;              // capacity across all files (whole regions)
  std::string metadata_dir;        // RocksDB
  uint64_t region_bytes = 16ULL << 20;
  uint32_t io_bytes = 1U << 20;  // bytes per write request
  uint32_t queue_depth = 8;      // requests in flight per device
  uint32_t write_buffers = 3;    // regions in memory at once: one filling, the rest queued or being written
                                 // (plus one kept for rewriting hot blocks during reclaim)
  RegionReclaim reclaim = RegionReclaim::kFifo;
  bool reinsert_hot = true;  // a reclaimed region's blocks read since written are rewritten, not dropped
  bool sync_writes = false;  // fdatasync and a synced WAL per region: survive power loss, not only a crash
  bool direct_io = true;     // O_DIRECT
  bool start_empty_if_unreadable = false;  // an unreadable catalogue starts the tier empty instead of failing
  int zstd_level = 1;
  uint32_t flush_after_ms = 1000;    // a partly filled region is written after this long without a new block
  uint32_t full_backoff_ms = 10000;  // after ENOSPC, how long the tier admits nothing
  uint32_t insert_wait_ms = 2000;    // how long insert() waits for the writer before refusing
  // RocksDB's file access for the catalogue (null: the default). Tests pass one that loses the
  // writes not yet synced, as a power cut does. Not owned; outlives the store.
  rocksdb::Env* metadata_env = nullptr;
  // The time the full-disk backoff and the idle flush are judged by (null: the steady clock).
  // Not owned; outlives the store.
  const kvtier::Clock* clock = nullptr;

  Status validate() const;
};

// What a block is, as the store records it (the rest of StoredBlock is where it lies).
struct SsdBlockMeta {
  BlockKey key;
  uint64_t parent_lo = 0;
  uint16_t namespace_id = 0;
};

struct SsdRead {
  BlockKey key;
  // Receives the block's payload; at least its size. When kIoAlign-aligned with room for the
  // block rounded up to kIoAlign, an uncompressed block is read straight into it (no copy).
  std::span<uint8_t> out;
  Status status;       // not_found: not on SSD (a miss); io_error / corruption: dropped, a miss
  uint32_t bytes = 0;  // payload bytes written to out
};

struct SsdStats {
  uint64_t capacity_bytes = 0, region_bytes = 0, regions = 0, regions_free = 0, regions_sealed = 0;
  uint64_t blocks = 0, stored_bytes = 0, payload_bytes = 0;  // live blocks
  uint64_t inserts = 0, inserts_refused = 0, blocks_durable = 0;
  uint64_t reads = 0, read_hits = 0, read_misses = 0, read_errors = 0, corrupt_blocks = 0, short_reads = 0;
  uint64_t regions_written = 0, write_errors = 0, enospc_events = 0;
  uint64_t regions_reclaimed = 0, blocks_evicted = 0, blocks_reinserted = 0, blocks_lost = 0;
  uint64_t bytes_written = 0, bytes_read = 0;
  uint64_t compressed_blocks = 0, compressed_payload_bytes = 0, compressed_stored_bytes = 0;
  uint64_t recovered_blocks = 0, recovery_dropped_records = 0;
  uint64_t catalog_memory_bytes = 0;  // what RocksDB holds in memory for the catalogue (SsdMetadata::memory_bytes)
  bool full = false;                  // refusing blocks after ENOSPC
  bool file_deleted = false;          // a file was deleted underneath: serving what it holds, admitting nothing
  bool metadata_recreated = false;
};

using DeviceFactory = std::function<Result<std::unique_ptr<Device>>(const FileDeviceOptions&)>;

class SsdStore {
 public:
  // Opens the files and the catalogue and recovers every block of every written region.
  // `factory` opens the devices (default: open_file_device); tests wrap it to inject faults.
  static Result<std::unique_ptr<SsdStore>> open(const SsdStoreOptions& options, const DeviceFactory& factory = {});
  // Writes the region being filled and stops the writer.
  ~SsdStore();
  SsdStore(const SsdStore&) = delete;
  SsdStore& operator=(const SsdStore&) = delete;

  // Copies a block into the region being filled (compressing it first with kZstd); the writer
  // puts it on the device. Returns its locator (region, generation, offset) for the index.
  // A block already stored returns its locator. resource_exhausted when the tier is full after
  // ENOSPC or its writer is too far behind; unavailable once a file was deleted underneath.
  Result<uint64_t> insert(const SsdBlockMeta& meta, std::span<const uint8_t> payload, Codec codec);
  // Reads a batch of blocks concurrently (one device request each).
  void read(std::span<SsdRead> reads);
  bool contains(const BlockKey& key) const;
  Status remove(const BlockKey& key);
  // Writes the region being filled now; returns when every block inserted before is durable, or
  // dropped because its region could not be written (told to the drop listener, counted).
  Status flush();
  // Every stored block (durable or still in memory), with its locator.
  void for_each(const std::function<void(const StoredBlock&, uint64_t locator)>& fn) const;
  // Told (outside the store's lock) of each block the tier lost: reclaimed, unreadable, corrupt,
  // or in a region that could not be written. The node drops it from the index.
  void set_drop_listener(std::function<void(const BlockKey&)> listener);
  // Looks for a file deleted underneath. The node calls it periodically.
  void check_health();
  // What the blocks take of the capacity, dead space until reclaimed included: every region but
  // the free ones beyond the writer's reserve (it reclaims to keep `write_buffers` free), so a
  // tier that must reclaim to take more reads as full. Constant time, unlike stats().
  uint64_t occupied_bytes() const;
  SsdStats stats() const;

 private:
  struct Impl;
  explicit SsdStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvtier::ssd
