// SsdStore's state, shared by its files: ssd_store.cc (the public operations), ssd_recovery.cc
// (opening and recovering), region_writer.cc (the writer thread) and region_reclaim.cc.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kvtier/checksum.h"
#include "tiers/ssd/ssd_store.h"

namespace kvtier::ssd {

using Clock = std::chrono::steady_clock;

inline constexpr uint32_t kNoRegion = UINT32_MAX;
inline constexpr uint64_t kFileHeaderBytes = kSsdFileHeaderBytes;
inline constexpr char kFileMagic[8] = {'K', 'V', 'T', 'S', 'S', 'D', '0', '1'};
// 2: block checksums bind the key (stored_block_checksum); a catalogue of version 1 is cleared.
inline constexpr uint32_t kFormatVersion = 2;

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, AlignedFree>;

inline AlignedBuffer aligned_alloc_bytes(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kIoAlign, std::max<size_t>(bytes, kIoAlign)) != 0) return nullptr;
  return AlignedBuffer(static_cast<uint8_t*>(p));
}

// The checksum a catalogue entry records for a block: XXH3-64 of its stored bytes mixed with a
// hash of its key, so that an entry naming key A but carrying another block's place and checksum
// (a damaged or mixed-up catalogue) fails its check instead of serving that block's bytes as A's.
// Never 0. Costs one 16-byte hash beyond the bytes' own.
inline uint64_t stored_block_checksum(const BlockKey& key, const uint8_t* bytes, size_t size) {
  const auto key_bytes = key.to_bytes();
  const uint64_t sum = xxh3_64(bytes, size) ^ xxh3_64(key_bytes.data(), key_bytes.size());
  return sum != 0 ? sum : 1;
}

// The index's SSD locator: region (24 bits), generation (16), offset in kIoAlign units (24).
inline uint64_t locator_of(const StoredBlock& b) {
  return (static_cast<uint64_t>(b.region & 0xFFFFFF) << 40) | (static_cast<uint64_t>(b.region_gen & 0xFFFF) << 24) |
         ((b.offset / kIoAlign) & 0xFFFFFF);
}

struct SsdStore::Impl {
  enum class RegionState : uint8_t { kFree, kFilling, kQueued, kWriting, kSealed, kReclaiming };
  struct Region {
    RegionState state = RegionState::kFree;
    uint32_t gen = 1;
    uint32_t used = 0;
    uint8_t* buffer = nullptr;  // while filling, queued or being written
    std::vector<BlockKey> keys;
    uint64_t seal_seq = 0;
    uint64_t last_access = 0;
    uint32_t readers = 0;
    // While being written: the next byte to hand the device, requests not finished, first error.
    uint32_t write_next = 0;
    uint32_t writes_pending = 0;
    int write_error = 0;
  };
  struct Entry {
    StoredBlock block;
    uint32_t hits = 0;  // reads since written
  };

  SsdStoreOptions options;
  std::vector<std::unique_ptr<Device>> devices;
  std::unique_ptr<SsdMetadata> metadata;
  uint64_t regions_per_file = 0;

  mutable std::mutex mu;
  std::condition_variable changed;  // region written/freed, buffer freed, work queued
  std::vector<Region> regions;
  std::vector<uint32_t> free_regions;
  // Change only through set_entry / erase_entry, which keep the live totals with it: stats() reads
  // those rather than walk every block under `mu` (a metrics scrape held it for O(blocks)).
  std::unordered_map<BlockKey, Entry, BlockKeyHash> entries;
  uint64_t live_stored_bytes = 0, live_payload_bytes = 0;
  void set_entry(const StoredBlock& b) {
    auto [it, fresh] = entries.try_emplace(b.key, Entry{b, 0});
    if (!fresh) {
      live_stored_bytes -= it->second.block.stored_bytes;
      live_payload_bytes -= it->second.block.payload_bytes;
      it->second = Entry{b, 0};
    }
    live_stored_bytes += b.stored_bytes;
    live_payload_bytes += b.payload_bytes;
  }
  void erase_entry(std::unordered_map<BlockKey, Entry, BlockKeyHash>::iterator it) {
    live_stored_bytes -= it->second.block.stored_bytes;
    live_payload_bytes -= it->second.block.payload_bytes;
    entries.erase(it);
  }
  std::vector<AlignedBuffer> buffer_store;
  std::vector<uint8_t*> free_buffers;
  std::deque<uint32_t> write_queue;
  uint32_t filling = kNoRegion;
  uint32_t issuing = kNoRegion;  // the region whose writes are being handed to the device
  Clock::time_point last_insert{};
  bool writing = false;
  bool stopping = false;
  uint64_t seal_seq = 0;
  uint64_t access_clock = 0;
  Clock::time_point full_until{};
  bool file_deleted = false;
  std::function<void(const BlockKey&)> drop_listener;
  SsdStats counters;  // the event counters; the gauges are computed in stats()
  std::thread writer;

  Clock::time_point now() const { return clock_or_steady(options.clock).now(); }
  uint32_t device_of(uint32_t region) const { return region % static_cast<uint32_t>(devices.size()); }
  uint64_t device_offset(uint32_t region) const {
    return kFileHeaderBytes + (region / devices.size()) * options.region_bytes;
  }

  // --- opening ---
  Status open_files(const DeviceFactory& factory, std::unordered_set<uint32_t>& replaced_files);
  Status recover(const std::unordered_set<uint32_t>& replaced_files);

  // --- reading: plan (under mu), device reads verified as they complete, settle (under mu) ---
  struct PlannedRead {
    size_t read;  // index into the caller's batch
    StoredBlock block;
    uint8_t* target;        // the caller's buffer (direct) or scratch
    AlignedBuffer scratch;  // when the block is compressed or the buffer unaligned
    Status outcome;
  };
  struct ReadPlan {
    std::vector<PlannedRead> planned;
    std::vector<std::vector<IoOp>> ops;        // per device
    std::vector<std::vector<size_t>> op_plan;  // per device: the planned read of each op
  };
  ReadPlan plan_reads(std::span<SsdRead> reads);
  void run_reads(ReadPlan& plan, std::span<SsdRead> reads);
  void settle_reads(ReadPlan& plan, std::span<SsdRead> reads);

  // --- under mu ---
  Status place_locked(std::unique_lock<std::mutex>& lock, const StoredBlock& proto, const uint8_t* bytes, bool may_wait,
                      uint64_t* locator);
  void queue_filling_locked();
  void notify(const std::vector<BlockKey>& dropped);

  // --- writer thread ---
  void writer_loop();
  void stream_writes(std::unique_lock<std::mutex>& lock, uint32_t device);
  bool next_write(uint32_t device, IoOp& op, uint64_t& tag);
  void write_done(uint32_t device, const IoOp& op, uint64_t tag);
  void settle_region(std::unique_lock<std::mutex>& lock, uint32_t region, Status written, int err);
  bool reclaim_one(std::unique_lock<std::mutex>& lock);
};

}  // namespace kvtier::ssd
