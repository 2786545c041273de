// HostArena: the host-memory tier, a shared-memory arena every engine process on the node maps.
//
// Blocks are reserved by a writer (owned by its process until committed), filled in place, then
// committed (owned by the cache: the index records its locator) and released when evicted. A
// reservation whose process died is reclaimed; allocation takes a robust lock, so a process
// killed while allocating never leaves it held (docs/host_tier.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/shared_segment.h"
#include "kvtier/result.h"
#include "tiers/host/arena_layout.h"

namespace kvtier::host {

struct ArenaOptions {
  std::string segment_name;           // /dev/shm/<name>
  uint64_t bytes = 1ULL << 30;        // block data capacity
  uint64_t slab_bytes = 32ULL << 20;  // each slab holds blocks of one size; ≥ the largest block
};

struct ArenaStats {
  uint64_t data_bytes = 0, slab_bytes = 0, slabs = 0, free_slabs = 0;
  uint64_t reserved_blocks = 0, committed_blocks = 0, used_bytes = 0;
  uint64_t recoveries = 0, reclaimed = 0;
  uint32_t classes = 0;
};

class HostArena {
 public:
  static Result<std::unique_ptr<HostArena>> create(const ArenaOptions& options);
  static Result<std::unique_ptr<HostArena>> attach(std::string_view segment_name);
  static Status destroy(std::string_view segment_name);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  // The size class for blocks of `block_bytes` (registered on first use; at most 16 sizes).
  Result<uint8_t> size_class(uint64_t block_bytes);

  // A free block of the class, reserved for `owner` (make_owner(process slot, generation)).
  // resource_exhausted when no slab has room.
  Result<uint32_t> reserve(uint8_t size_class, uint32_t owner);
  // Reserved → committed; evicted-while-reserved (see release_evicted) → free, also OK.
  // failed_precondition unless reserved by `owner`.
  Status commit(uint32_t locator, uint32_t owner);
  // Reserved or committed → free: a writer dropping its own reservation, or a block it owns.
  Status release(uint32_t locator);
  // What the index's eviction calls: a committed block is freed; one still reserved (published,
  // its writer not yet committed) is only marked, and the writer's commit() frees it. Freeing it
  // at once would let another writer reuse memory the first is still writing or committing.
  Status release_evicted(uint32_t locator);

  uint8_t* data(uint32_t locator) const;
  // All block data as mapped in this process (what an engine registers with its GPU runtime).
  std::span<uint8_t> data_region() const;
  // XXH3-64 of a committed block's bytes, recorded when it is sealed (before it leaves host
  // memory); 0 when none is recorded. Cleared when the block is freed.
  uint64_t checksum(uint32_t locator) const;
  void set_checksum(uint32_t locator, uint64_t checksum);
  uint64_t block_bytes(uint32_t locator) const;

  // Asks the kernel to back the block data with transparent huge pages in this process (fewer TLB
  // misses on large copies). Best effort: it takes effect where the shared-memory filesystem
  // allows huge pages (a tmpfs mounted with huge=within_size or always); false if refused.
  bool advise_huge_pages();

  // Settles reservations whose owner is no longer alive: one the index already references (the
  // owner died between publishing and committing it) becomes committed; any other is freed.
  // Returns how many were freed.
  uint64_t reclaim(const std::function<bool(uint32_t owner)>& owner_alive,
                   const std::function<bool(uint32_t locator)>& referenced = nullptr);
  Status check_invariants() const;
  ArenaStats stats() const;
  // stats().used_bytes alone, without stats()' walk over the slabs (the upkeep reads it often).
  uint64_t used_bytes() const;
  const std::string& name() const { return name_; }

 private:
  HostArena() = default;
  class Lock;
  void recover();
  uint64_t slab_of(uint32_t locator) const { return locator / header_->units_per_slab; }
  std::atomic<uint32_t>& state(uint32_t locator) const { return states_[locator]; }
  void free_block_locked(uint32_t locator, BlockState was);

  std::string name_;
  std::unique_ptr<SharedSegment> segment_;
  ArenaHeader* header_ = nullptr;
  SlabInfo* slabs_ = nullptr;
  std::atomic<uint32_t>* states_ = nullptr;
  std::atomic<uint64_t>* checksums_ = nullptr;
  uint8_t* data_ = nullptr;
};

}  // namespace kvtier::host
