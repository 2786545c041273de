// SsdMetadata: the SSD tier's durable catalogue in RocksDB (docs/ssd.md, "Durability rule").
//
//   "L"            → layout (format version, region size, files): a mismatch starts the tier empty
//   "F" u32 file   → the 16-byte identity written in that file's header block
//   "R" u32 region → the region's generation and seal sequence: present only while sealed
//   "B" key(16)    → one block: region, generation, offset, lengths, checksum, codec, namespace
//
// A region's block records are written in one batch after its data is on the device; a region's
// records are deleted in one batch before it is rewritten. A block record is trusted only when
// its region record exists with the same generation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "kvtier/block_key.h"
#include "kvtier/result.h"
#include "tiers/ssd/block_codec.h"

namespace rocksdb {
class DB;
class Env;
}  // namespace rocksdb

namespace kvtier::ssd {

struct StoredBlock {
  BlockKey key;
  uint64_t parent_lo = 0;  // low half of the parent's key, as the index records it
  uint16_t namespace_id = 0;
  uint32_t payload_bytes = 0;  // as the host tier holds it
  uint32_t region = 0;
  uint32_t region_gen = 0;
  uint32_t offset = 0;        // within the region, kIoAlign-aligned
  uint32_t stored_bytes = 0;  // on the device (compressed or not)
  uint64_t checksum = 0;      // stored_block_checksum: XXH3-64 of the stored bytes, bound to the key
  Codec codec = Codec::kNone;
};

struct SealedRegion {
  uint32_t region = 0;
  uint32_t gen = 0;
  uint64_t seal_seq = 0;
};

// The catalogue's record keys ("R" + region, "B" + block key, as above): the store's own, and what
// tests and the fuzz target use to read or damage single records through put() and get().
std::string region_record_key(uint32_t region);
std::string block_record_key(const BlockKey& key);

class SsdMetadata {
 public:
  // Opens (creating) the database in `dir`. An unreadable database is a clear error, or, with
  // `start_empty_if_unreadable`, is destroyed and recreated empty (the SSD tier's data is a cache).
  // `env`: RocksDB's file access (null: the default); tests pass one that can lose unsynced writes.
  static Result<std::unique_ptr<SsdMetadata>> open(const std::string& dir, bool start_empty_if_unreadable,
                                                   bool sync_writes, rocksdb::Env* env = nullptr);
  ~SsdMetadata();

  // Layout and file identities.
  Result<std::string> get(std::string_view key) const;  // not_found if absent
  Status put(std::string_view key, std::string_view value);
  // Deletes every region and block record (the layout changed, or a file was replaced).
  Status clear_catalogue();

  Status commit_region(const SealedRegion& region, std::span<const StoredBlock> blocks);
  Status release_region(uint32_t region, std::span<const BlockKey> blocks);
  Status drop_block(const BlockKey& key);
  // Calls the functions for every record; block records come after every region record.
  Status scan(const std::function<void(const SealedRegion&)>& on_region,
              const std::function<void(const StoredBlock&)>& on_block) const;
  bool recreated() const { return recreated_; }  // the database was unreadable and started empty
  // Bytes RocksDB holds in memory for the catalogue: memtables (written, not yet flushed), table
  // readers (index and filter blocks of open files) and the block cache. Each is bounded by its
  // options; together they fill over the first minutes of a busy daemon.
  uint64_t memory_bytes() const;

 private:
  SsdMetadata() = default;
  std::unique_ptr<rocksdb::DB> db_;
  bool sync_ = false;
  bool recreated_ = false;
};

}  // namespace kvtier::ssd
