#include "tiers/host/host_arena.h"

#include <fmt/format.h>

#include <sys/mman.h>

#include <chrono>
#include <new>
#include <thread>

#include "common/robust_mutex.h"
#include "common/shared_segment.h"
#include "common/versioned_segment.h"

namespace kvtier::host {

namespace {

constexpr SegmentFormat kArenaFormat{"host arena", kArenaMagic, kArenaFormatVersion, kArenaFormatVersion,
                                     sizeof(ArenaHeader)};
static_assert(offsetof(ArenaHeader, magic) == offsetof(SegmentPreamble, magic) &&
              offsetof(ArenaHeader, format_version) == offsetof(SegmentPreamble, format_version));

struct Geometry {
  uint64_t slabs, units_per_slab, slab_table_offset, state_offset, checksum_offset, data_offset, total_bytes;
};

Geometry plan(uint64_t data_bytes, uint64_t slab_bytes) {
  Geometry g{};
  g.slabs = data_bytes / slab_bytes;
  g.units_per_slab = slab_bytes / kUnitBytes;
  g.slab_table_offset = round_up(sizeof(ArenaHeader), kPageBytes);
  g.state_offset = round_up(g.slab_table_offset + g.slabs * sizeof(SlabInfo), kPageBytes);
  // Block data starts on a 2 MiB boundary, so huge pages can back it where the system has them.
  g.checksum_offset = round_up(g.state_offset + g.slabs * g.units_per_slab * sizeof(uint32_t), kPageBytes);
  g.data_offset = round_up(g.checksum_offset + g.slabs * g.units_per_slab * sizeof(uint64_t), 2ULL << 20);
  g.total_bytes = g.data_offset + g.slabs * slab_bytes;
  return g;
}

}  // namespace

// The allocation lock. Taking it from a holder that died recomputes every derived field from the
// block state words, which each changed atomically, so nothing the dead process did is lost.
class HostArena::Lock {
 public:
  explicit Lock(HostArena& a) : a_(a) {
    if (lock_robust(&a_.header_->alloc_lock) == LockOutcome::kOwnerDied) {
      a_.recover();
      a_.header_->recoveries.fetch_add(1, std::memory_order_relaxed);
      mark_consistent(&a_.header_->alloc_lock);
    }
  }
  ~Lock() { unlock_robust(&a_.header_->alloc_lock); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  HostArena& a_;
};

HostArena::~HostArena() = default;

Result<std::unique_ptr<HostArena>> HostArena::create(const ArenaOptions& o) {
  if (o.slab_bytes < kUnitBytes || o.slab_bytes % kUnitBytes != 0) {
    return Status::invalid_argument(
        fmt::format("arena slab_bytes must be a multiple of {}, got {}", kUnitBytes, o.slab_bytes));
  }
  if (o.bytes < o.slab_bytes) {
    return Status::invalid_argument(
        fmt::format("arena bytes ({}) must hold at least one slab ({})", o.bytes, o.slab_bytes));
  }
  const Geometry g = plan(o.bytes, o.slab_bytes);
  if (g.slabs * g.units_per_slab > UINT32_MAX) {
    return Status::invalid_argument("arena too large: block locators must fit in 32 bits");
  }
  auto segment = create_segment(o.segment_name, g.total_bytes, kArenaFormat);
  if (!segment.ok()) return segment.status();
  std::unique_ptr<HostArena> a(new HostArena());
  a->name_ = o.segment_name;
  a->segment_ = std::move(segment).value();
  auto* base = static_cast<uint8_t*>(a->segment_->address());
  auto* h = new (base) ArenaHeader();
  h->format_version = kArenaFormatVersion;  // the magic is published last (versioned_segment.h)
  h->header_bytes = sizeof(ArenaHeader);
  h->total_bytes = g.total_bytes;
  h->data_bytes = g.slabs * o.slab_bytes;
  h->slab_bytes = o.slab_bytes;
  h->slabs = g.slabs;
  h->units_per_slab = g.units_per_slab;
  h->slab_table_offset = g.slab_table_offset;
  h->state_offset = g.state_offset;
  h->checksum_offset = g.checksum_offset;
  h->data_offset = g.data_offset;
  if (Status s = init_robust_mutex(&h->alloc_lock); !s.ok()) {
    (void)SharedSegment::destroy(o.segment_name);
    return s;
  }
  a->header_ = h;
  a->slabs_ = reinterpret_cast<SlabInfo*>(base + g.slab_table_offset);
  a->states_ = reinterpret_cast<std::atomic<uint32_t>*>(base + g.state_offset);
  a->checksums_ = reinterpret_cast<std::atomic<uint64_t>*>(base + g.checksum_offset);
  a->data_ = base + g.data_offset;
  for (uint64_t s = 0; s < g.slabs; ++s) new (&a->slabs_[s]) SlabInfo{{kFreeSlab}, 0, {0}};
  h->ready.store(1, std::memory_order_release);  // what builds before the shared protocol wait for
  publish_segment(*a->segment_, kArenaFormat);
  return a;
}

Result<std::unique_ptr<HostArena>> HostArena::attach(std::string_view name) {
  // A process creating the node right now (create_if_missing) has the object before its header,
  // and reserves its pages (posix_fallocate: a while for gigabytes) before it is ready.
  constexpr auto kCreatorWait = std::chrono::seconds(5);
  auto attached = attach_segment(name, kArenaFormat, kCreatorWait);
  if (!attached.ok()) return attached.status();
  std::unique_ptr<SharedSegment> segment = std::move(attached->segment);
  const uint64_t size = segment->size();
  auto* base = static_cast<uint8_t*>(segment->address());
  const auto* h = reinterpret_cast<const ArenaHeader*>(base);
  if (h->header_bytes != sizeof(ArenaHeader)) {
    return Status::version_mismatch(fmt::format("host arena '{}' has a {}-byte header, this build's is {}", name,
                                                h->header_bytes, sizeof(ArenaHeader)));
  }
  // A segment an older build made published its magic first and `ready` last.
  if (h->ready.load(std::memory_order_acquire) == 0) {
    return Status::unavailable(fmt::format("host arena '{}' was never finished by its creator", name));
  }
  // Every part the process binds is where the header's sizes put it, inside the mapping; the sizes
  // are bounded first, so a damaged header can neither divide by zero nor wrap the arithmetic.
  const bool bounded =
      h->slab_bytes >= kUnitBytes && h->slab_bytes % kUnitBytes == 0 && h->slab_bytes <= size && h->data_bytes <= size;
  const Geometry g = bounded ? plan(h->data_bytes, h->slab_bytes) : Geometry{};
  if (!bounded || g.total_bytes != size || h->total_bytes != size || g.slabs != h->slabs ||
      g.units_per_slab != h->units_per_slab || g.slab_table_offset != h->slab_table_offset ||
      g.state_offset != h->state_offset || g.checksum_offset != h->checksum_offset || g.data_offset != h->data_offset ||
      g.slabs * g.units_per_slab > UINT32_MAX) {
    return Status::corruption(fmt::format("host arena '{}' geometry does not add up", name));
  }
  std::unique_ptr<HostArena> a(new HostArena());
  a->name_ = std::string(name);
  a->segment_ = std::move(segment);
  a->header_ = reinterpret_cast<ArenaHeader*>(base);
  a->slabs_ = reinterpret_cast<SlabInfo*>(base + h->slab_table_offset);
  a->states_ = reinterpret_cast<std::atomic<uint32_t>*>(base + h->state_offset);
  a->checksums_ = reinterpret_cast<std::atomic<uint64_t>*>(base + h->checksum_offset);
  a->data_ = base + h->data_offset;
  return a;
}

Status HostArena::destroy(std::string_view name) { return SharedSegment::destroy(name); }

Result<uint8_t> HostArena::size_class(uint64_t block_bytes) {
  if (block_bytes == 0 || block_bytes > header_->slab_bytes) {
    return Status::invalid_argument(
        fmt::format("block of {} bytes does not fit the arena's {}-byte slabs", block_bytes, header_->slab_bytes));
  }
  const auto units = static_cast<uint32_t>((block_bytes + kUnitBytes - 1) / kUnitBytes);
  Lock lock(*this);
  const uint32_t n = header_->num_classes.load(std::memory_order_acquire);
  for (uint32_t c = 0; c < n; ++c) {
    if (header_->classes[c].units_per_block == units) return static_cast<uint8_t>(c);
  }
  if (n == kMaxClasses) return Status::resource_exhausted("host arena already has 16 block sizes");
  header_->classes[n] = SizeClass{units, static_cast<uint32_t>(header_->units_per_slab / units)};
  header_->hint[n].store(0, std::memory_order_relaxed);
  header_->num_classes.store(n + 1, std::memory_order_release);
  return static_cast<uint8_t>(n);
}

Result<uint32_t> HostArena::reserve(uint8_t cls, uint32_t owner) {
  if (cls >= header_->num_classes.load(std::memory_order_acquire)) {
    return Status::invalid_argument(fmt::format("host arena has no size class {}", cls));
  }
  const SizeClass& sc = header_->classes[cls];
  Lock lock(*this);
  // The fullest partial slab of this class (so sparse slabs drain and return to the pool), else
  // a free slab. The hint makes the common case a single look.
  uint64_t chosen = header_->slabs;
  const uint64_t hint = header_->hint[cls].load(std::memory_order_relaxed);
  if (hint < header_->slabs && slabs_[hint].size_class.load(std::memory_order_relaxed) == cls &&
      slabs_[hint].used.load(std::memory_order_relaxed) < sc.blocks_per_slab) {
    chosen = hint;
  } else {
    uint32_t best_used = 0;
    uint64_t free_slab = header_->slabs;
    for (uint64_t s = 0; s < header_->slabs; ++s) {
      const uint16_t c = slabs_[s].size_class.load(std::memory_order_relaxed);
      const uint32_t used = slabs_[s].used.load(std::memory_order_relaxed);
      if (c == cls && used < sc.blocks_per_slab && (chosen == header_->slabs || used > best_used)) {
        chosen = s;
        best_used = used;
      } else if (c == kFreeSlab && free_slab == header_->slabs) {
        free_slab = s;
      }
    }
    if (chosen == header_->slabs) chosen = free_slab;
  }
  if (chosen == header_->slabs) {
    return Status::resource_exhausted(fmt::format("host arena '{}' has no room for a {}-byte block", name_,
                                                  uint64_t{sc.units_per_block} * kUnitBytes));
  }
  SlabInfo& slab = slabs_[chosen];
  slab.size_class.store(cls, std::memory_order_relaxed);
  for (uint32_t b = 0; b < sc.blocks_per_slab; ++b) {
    const auto locator = static_cast<uint32_t>(chosen * header_->units_per_slab + uint64_t{b} * sc.units_per_block);
    if (state_of(state(locator).load(std::memory_order_relaxed)) != BlockState::kFree) continue;
    state(locator).store(make_state(BlockState::kReserved, owner), std::memory_order_release);
    slab.used.fetch_add(1, std::memory_order_relaxed);
    header_->reserved_blocks.fetch_add(1, std::memory_order_relaxed);
    header_->used_bytes.fetch_add(uint64_t{sc.units_per_block} * kUnitBytes, std::memory_order_relaxed);
    header_->hint[cls].store(chosen, std::memory_order_relaxed);
    return locator;
  }
  return Status::internal(fmt::format("host arena slab {} counted room that its blocks do not have", chosen));
}

Status HostArena::commit(uint32_t locator, uint32_t owner) {
  if (locator >= header_->slabs * header_->units_per_slab) return Status::invalid_argument("locator out of range");
  Lock lock(*this);  // the counters below must move with the state word, even across a crash
  const uint32_t w = state(locator).load(std::memory_order_acquire);
  if (w == make_state(BlockState::kEvictedReserved, owner)) {
    free_block_locked(locator, BlockState::kEvictedReserved);  // evicted between publish and commit
    return {};
  }
  if (w != make_state(BlockState::kReserved, owner)) {
    return Status::failed_precondition(fmt::format("block {} is not reserved by this process", locator));
  }
  state(locator).store(make_state(BlockState::kCommitted, 0), std::memory_order_release);
  header_->reserved_blocks.fetch_sub(1, std::memory_order_relaxed);
  header_->committed_blocks.fetch_add(1, std::memory_order_relaxed);
  return {};
}

Status HostArena::release_evicted(uint32_t locator) {
  if (locator >= header_->slabs * header_->units_per_slab) return Status::invalid_argument("locator out of range");
  Lock lock(*this);
  const uint32_t w = state(locator).load(std::memory_order_acquire);
  switch (state_of(w)) {
    case BlockState::kCommitted: free_block_locked(locator, BlockState::kCommitted); return {};
    case BlockState::kReserved:
      // Published but not yet committed: the writer may still be copying or about to commit.
      // Freeing it now would hand its memory to another block under the writer's feet.
      state(locator).store(make_state(BlockState::kEvictedReserved, owner_of(w)), std::memory_order_release);
      return {};
    default: return Status::not_found(fmt::format("block {} is not a cached block", locator));
  }
}

void HostArena::free_block_locked(uint32_t locator, BlockState was) {
  const uint64_t s = slab_of(locator);
  const SizeClass& sc = header_->classes[slabs_[s].size_class.load(std::memory_order_relaxed)];
  checksums_[locator].store(0, std::memory_order_relaxed);
  state(locator).store(make_state(BlockState::kFree, 0), std::memory_order_release);
  (writer_owned(was) ? header_->reserved_blocks : header_->committed_blocks).fetch_sub(1, std::memory_order_relaxed);
  header_->used_bytes.fetch_sub(uint64_t{sc.units_per_block} * kUnitBytes, std::memory_order_relaxed);
  if (slabs_[s].used.fetch_sub(1, std::memory_order_relaxed) == 1) {
    slabs_[s].size_class.store(kFreeSlab, std::memory_order_relaxed);  // empty: back to the pool
  }
}

Status HostArena::release(uint32_t locator) {
  if (locator >= header_->slabs * header_->units_per_slab) return Status::invalid_argument("locator out of range");
  Lock lock(*this);
  const BlockState was = state_of(state(locator).load(std::memory_order_acquire));
  if (was == BlockState::kFree) return Status::not_found(fmt::format("block {} is not allocated", locator));
  free_block_locked(locator, was);
  return {};
}

uint8_t* HostArena::data(uint32_t locator) const { return data_ + uint64_t{locator} * kUnitBytes; }

std::span<uint8_t> HostArena::data_region() const { return {data_, header_->data_bytes}; }

bool HostArena::advise_huge_pages() { return ::madvise(data_, header_->data_bytes, MADV_HUGEPAGE) == 0; }

uint64_t HostArena::checksum(uint32_t locator) const { return checksums_[locator].load(std::memory_order_acquire); }

void HostArena::set_checksum(uint32_t locator, uint64_t checksum) {
  checksums_[locator].store(checksum, std::memory_order_release);
}

uint64_t HostArena::block_bytes(uint32_t locator) const {
  const uint16_t c = slabs_[slab_of(locator)].size_class.load(std::memory_order_acquire);
  return c == kFreeSlab ? 0 : uint64_t{header_->classes[c].units_per_block} * kUnitBytes;
}

uint64_t HostArena::reclaim(const std::function<bool(uint32_t owner)>& owner_alive,
                            const std::function<bool(uint32_t locator)>& referenced) {
  Lock lock(*this);
  uint64_t freed = 0;
  for (uint64_t s = 0; s < header_->slabs; ++s) {
    const uint16_t c = slabs_[s].size_class.load(std::memory_order_relaxed);
    if (c == kFreeSlab) continue;
    const SizeClass& sc = header_->classes[c];
    for (uint32_t b = 0; b < sc.blocks_per_slab; ++b) {
      const auto locator = static_cast<uint32_t>(s * header_->units_per_slab + uint64_t{b} * sc.units_per_block);
      const uint32_t w = state(locator).load(std::memory_order_acquire);
      if (!writer_owned(state_of(w)) || owner_alive(owner_of(w))) continue;
      // Published, not yet committed (and not evicted since): the cache owns it.
      if (state_of(w) == BlockState::kReserved && referenced && referenced(locator)) {
        state(locator).store(make_state(BlockState::kCommitted, 0), std::memory_order_release);
        header_->reserved_blocks.fetch_sub(1, std::memory_order_relaxed);
        header_->committed_blocks.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      {
        free_block_locked(locator, state_of(w));
        ++freed;
        if (slabs_[s].size_class.load(std::memory_order_relaxed) == kFreeSlab) break;
      }
    }
  }
  header_->reclaimed.fetch_add(freed, std::memory_order_relaxed);
  return freed;
}

// Derived fields from the state words: each slab's class and use count, and the counters.
void HostArena::recover() {
  uint64_t reserved = 0, committed = 0, used_bytes = 0;
  for (uint64_t s = 0; s < header_->slabs; ++s) {
    const uint16_t c = slabs_[s].size_class.load(std::memory_order_relaxed);
    uint32_t used = 0;
    if (c != kFreeSlab && c < header_->num_classes.load(std::memory_order_relaxed)) {
      const SizeClass& sc = header_->classes[c];
      for (uint32_t b = 0; b < sc.blocks_per_slab; ++b) {
        const uint32_t w = state(static_cast<uint32_t>(s * header_->units_per_slab + uint64_t{b} * sc.units_per_block))
                               .load(std::memory_order_relaxed);
        if (state_of(w) == BlockState::kFree) continue;
        ++used;
        (writer_owned(state_of(w)) ? reserved : committed) += 1;
        used_bytes += uint64_t{sc.units_per_block} * kUnitBytes;
      }
    }
    slabs_[s].used.store(used, std::memory_order_relaxed);
    if (used == 0) slabs_[s].size_class.store(kFreeSlab, std::memory_order_relaxed);
  }
  header_->reserved_blocks.store(reserved, std::memory_order_relaxed);
  header_->committed_blocks.store(committed, std::memory_order_relaxed);
  header_->used_bytes.store(used_bytes, std::memory_order_relaxed);
}

Status HostArena::check_invariants() const {
  auto& self = const_cast<HostArena&>(*this);
  Lock lock(self);
  uint64_t reserved = 0, committed = 0, used_bytes = 0;
  for (uint64_t s = 0; s < header_->slabs; ++s) {
    const uint16_t c = slabs_[s].size_class.load(std::memory_order_relaxed);
    uint32_t used = 0;
    for (uint64_t u = 0; u < header_->units_per_slab; ++u) {
      const uint32_t w = states_[s * header_->units_per_slab + u].load(std::memory_order_relaxed);
      if (state_of(w) == BlockState::kFree) continue;
      if (c == kFreeSlab) return Status::corruption(fmt::format("free slab {} holds an allocated block", s));
      const SizeClass& sc = header_->classes[c];
      if (u % sc.units_per_block != 0 || u / sc.units_per_block >= sc.blocks_per_slab) {
        return Status::corruption(fmt::format("slab {} has a block at unit {} off its class's grid", s, u));
      }
      ++used;
      (writer_owned(state_of(w)) ? reserved : committed) += 1;
      used_bytes += uint64_t{sc.units_per_block} * kUnitBytes;
    }
    if (used != slabs_[s].used.load(std::memory_order_relaxed)) {
      return Status::corruption(fmt::format("slab {} counts {} blocks, holds {}", s, slabs_[s].used.load(), used));
    }
  }
  if (reserved != header_->reserved_blocks.load() || committed != header_->committed_blocks.load() ||
      used_bytes != header_->used_bytes.load()) {
    return Status::corruption("host arena counters disagree with its blocks");
  }
  return {};
}

uint64_t HostArena::used_bytes() const { return header_->used_bytes.load(std::memory_order_relaxed); }

ArenaStats HostArena::stats() const {
  ArenaStats s;
  s.data_bytes = header_->data_bytes;
  s.slab_bytes = header_->slab_bytes;
  s.slabs = header_->slabs;
  for (uint64_t i = 0; i < header_->slabs; ++i) {
    s.free_slabs += slabs_[i].size_class.load(std::memory_order_relaxed) == kFreeSlab ? 1 : 0;
  }
  s.reserved_blocks = header_->reserved_blocks.load(std::memory_order_relaxed);
  s.committed_blocks = header_->committed_blocks.load(std::memory_order_relaxed);
  s.used_bytes = header_->used_bytes.load(std::memory_order_relaxed);
  s.recoveries = header_->recoveries.load(std::memory_order_relaxed);
  s.reclaimed = header_->reclaimed.load(std::memory_order_relaxed);
  s.classes = header_->num_classes.load(std::memory_order_relaxed);
  return s;
}

}  // namespace kvtier::host
