// The host arena segment's bytes (docs/host_tier.md):
//
//   [ ArenaHeader | SlabInfo × slabs | state word × units | checksum × units | data: slabs × slab_bytes ]
//
// The per-block state words are the single source of truth; everything in SlabInfo and the
// counters is derived from them and recomputed after a crash.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace kvtier::host {

inline constexpr uint64_t kArenaMagic = 0x3130414E52414B56ULL;  // "VKARNA01" little-endian
inline constexpr uint32_t kArenaFormatVersion = 1;
inline constexpr uint32_t kMaxClasses = 16;
inline constexpr uint16_t kFreeSlab = 0xFFFF;
// Allocation unit: every block is a whole number of units. Large enough that the state table
// stays small (a word per unit), small against any real KV block (hundreds of KiB and up).
inline constexpr uint64_t kUnitBytes = uint64_t{64} * 1024;

// Block state word: state (2 bits) | owner process slot (6 bits) | owner generation (24 bits).
// kEvictedReserved: the index published the block and evicted it again before its writer
// committed; the writer's commit frees it (the put happened; the cache let it go at once).
enum class BlockState : uint32_t { kFree = 0, kReserved = 1, kCommitted = 2, kEvictedReserved = 3 };
// Reserved and evicted-while-reserved blocks are both a writer's until it commits or dies.
constexpr bool writer_owned(BlockState s) { return s == BlockState::kReserved || s == BlockState::kEvictedReserved; }
constexpr uint32_t make_state(BlockState s, uint32_t owner) { return static_cast<uint32_t>(s) | (owner << 2); }
constexpr BlockState state_of(uint32_t word) { return static_cast<BlockState>(word & 3); }
constexpr uint32_t owner_of(uint32_t word) { return word >> 2; }
// Owner tag: process slot (6 bits) | generation (24 bits), from the index's process table.
constexpr uint32_t make_owner(uint32_t slot, uint32_t generation) {
  return (slot & 63) | ((generation & 0xFFFFFF) << 6);
}

struct SizeClass {
  uint32_t units_per_block;
  uint32_t blocks_per_slab;
};

struct SlabInfo {
  std::atomic<uint16_t> size_class;  // kFreeSlab when no block is in it
  uint16_t reserved;
  std::atomic<uint32_t> used;  // blocks reserved or committed
};

struct alignas(4096) ArenaHeader {
  uint64_t magic;
  uint32_t format_version;
  uint32_t header_bytes;
  uint64_t total_bytes;  // of the whole segment
  uint64_t data_bytes;   // slabs × slab_bytes
  uint64_t slab_bytes;
  uint64_t slabs;
  uint64_t units_per_slab;
  uint64_t slab_table_offset, state_offset, checksum_offset, data_offset;
  std::atomic<uint32_t> ready;

  alignas(64) pthread_mutex_t alloc_lock;  // robust; guards classes, slabs and state changes
  std::atomic<uint32_t> num_classes;
  SizeClass classes[kMaxClasses];
  std::atomic<uint64_t> reserved_blocks;
  std::atomic<uint64_t> committed_blocks;
  std::atomic<uint64_t> used_bytes;         // bytes of reserved + committed blocks
  std::atomic<uint64_t> recoveries;         // dead allocators recovered
  std::atomic<uint64_t> reclaimed;          // reservations of dead processes freed
  std::atomic<uint64_t> hint[kMaxClasses];  // slab each class last allocated from
};

}  // namespace kvtier::host
