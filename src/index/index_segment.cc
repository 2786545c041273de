#include "index/index_segment.h"

#include "common/shared_segment.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <xxhash.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <new>
#include <system_error>
#include <thread>

#include "common/robust_mutex.h"
#include "common/versioned_segment.h"

namespace kvtier::index {

namespace {

// How long an attach waits for a creator in progress (create_if_missing in another process).
constexpr auto kCreatorWait = std::chrono::seconds(5);

constexpr SegmentFormat kIndexFormat{"index segment", kSegmentMagic, kOldestReadableFormatVersion,
                                     kSegmentFormatVersion, sizeof(SegmentHeader)};
static_assert(offsetof(SegmentHeader, magic) == offsetof(SegmentPreamble, magic) &&
              offsetof(SegmentHeader, format_version) == offsetof(SegmentPreamble, format_version));

struct Geometry {
  uint64_t slots, process_table_offset, journal_offset, ring_offset, tags_offset, table_offset, ghosts_offset,
      learning_offset, total_bytes;
};

// Slots = capacity × 5/4: linear probing at ≤ 80% load keeps hit probes near one cache line.
// `ghost_slots` 0: a format-1 segment, which ends with the table; `learning` false: one of format
// 2, which ends with the ghost cells.
Geometry plan(uint64_t capacity, uint64_t ring_records, uint64_t ghost_slots, bool learning) {
  Geometry g{};
  g.slots = capacity + capacity / 4 + 1;
  g.process_table_offset = round_up(sizeof(SegmentHeader), kPageBytes);
  g.journal_offset = round_up(g.process_table_offset + kMaxProcesses * sizeof(ProcessSlot), kPageBytes);
  g.ring_offset = round_up(g.journal_offset + sizeof(Journal), kPageBytes);
  g.tags_offset = round_up(g.ring_offset + ring_records * sizeof(ChangeRecord), kPageBytes);
  g.table_offset = round_up(g.tags_offset + g.slots, kPageBytes);
  g.ghosts_offset = round_up(g.table_offset + g.slots * sizeof(IndexEntry), kPageBytes);
  const uint64_t ghosts_end = g.ghosts_offset + ghost_slots * sizeof(uint16_t);
  if (!learning) {
    g.total_bytes = round_up(ghosts_end, kPageBytes);
    return g;
  }
  g.learning_offset = round_up(ghosts_end, alignof(ReuseLearning));
  g.total_bytes = round_up(g.learning_offset + sizeof(ReuseLearning) + ghost_slots * sizeof(uint32_t), kPageBytes);
  return g;
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // ms resolution is plenty for LRU ages; no syscall
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

IndexSegment::~IndexSegment() = default;

Status IndexSegment::validate_name(std::string_view name) { return SharedSegment::validate_name(name); }

void IndexSegment::bind_parts() {
  auto* base = static_cast<char*>(mapping_->address());
  header_ = reinterpret_cast<SegmentHeader*>(base);
  processes_ = reinterpret_cast<ProcessSlot*>(base + header_->process_table_offset);
  journal_ = reinterpret_cast<Journal*>(base + header_->journal_offset);
  ring_ = reinterpret_cast<ChangeRecord*>(base + header_->ring_offset);
  tags_ = reinterpret_cast<uint8_t*>(base + header_->tags_offset);
  table_ = reinterpret_cast<IndexEntry*>(base + header_->table_offset);
  if (header_->format_version >= 2 && header_->ghost_slots > 0) {
    ghosts_ = reinterpret_cast<uint16_t*>(base + header_->ghosts_offset);
    ghost_slots_ = header_->ghost_slots;
  }
  if (header_->format_version >= 3 && ghosts_ != nullptr) {
    learning_ = reinterpret_cast<ReuseLearning*>(base + header_->learning_offset);
    ghost_last_uses_ = reinterpret_cast<uint32_t*>(base + header_->learning_offset + sizeof(ReuseLearning));
  }
  slots_ = header_->slots;
  capacity_ = header_->capacity;
  ring_records_ = header_->ring_records;
}

Result<std::unique_ptr<IndexSegment>> IndexSegment::create(const IndexOptions& options) {
  KVTIER_RETURN_IF_ERROR(validate_name(options.segment_name));
  if (options.capacity < 16 || options.capacity > (uint64_t{1} << 32)) {
    return Status::invalid_argument(fmt::format("index capacity must be in [16, 2^32], got {}", options.capacity));
  }
  if (options.change_ring_records < 16 || options.change_ring_records > (uint64_t{1} << 26)) {
    return Status::invalid_argument(
        fmt::format("index change_ring_records must be in [16, 2^26], got {}", options.change_ring_records));
  }
  if (options.node_name.size() >= sizeof(SegmentHeader::node_name)) {
    return Status::invalid_argument("index node_name must be at most 63 bytes");
  }
  const uint64_t ghost_slots = std::bit_ceil(options.capacity * kGhostSlotsPerEntry);
  const Geometry g = plan(options.capacity, options.change_ring_records, ghost_slots, /*learning=*/true);
  std::unique_ptr<IndexSegment> seg(new IndexSegment());
  auto shared = create_segment(options.segment_name, g.total_bytes, kIndexFormat);
  if (!shared.ok()) return shared.status();
  seg->mapping_ = std::move(shared).value();

  // A fresh tmpfs object reads as zeros, which is every field's initial value; construct the
  // parts that need more than zeros.
  auto* h = new (seg->mapping_->address()) SegmentHeader();
  h->format_version = kSegmentFormatVersion;  // the magic is published last (versioned_segment.h)
  h->entry_bytes = sizeof(IndexEntry);
  h->header_bytes = sizeof(SegmentHeader);
  h->max_processes = kMaxProcesses;
  h->capacity = options.capacity;
  h->slots = g.slots;
  h->ring_records = options.change_ring_records;
  h->total_bytes = g.total_bytes;
  h->process_table_offset = g.process_table_offset;
  h->journal_offset = g.journal_offset;
  h->ring_offset = g.ring_offset;
  h->tags_offset = g.tags_offset;
  h->table_offset = g.table_offset;
  h->ghosts_offset = g.ghosts_offset;
  h->ghost_slots = ghost_slots;
  h->learning_offset = g.learning_offset;
  h->node_id = XXH3_64bits(options.node_name.data(), options.node_name.size());
  h->creation_epoch = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  h->created_monotonic_ns = monotonic_ns();
  h->manual_clock = options.manual_clock ? 1 : 0;
  std::memcpy(h->node_name, options.node_name.data(), options.node_name.size());
  for (size_t t = 0; t < kNumTiers; ++t) {
    h->tier_high_permille[t].store(950, std::memory_order_relaxed);
    h->tier_low_permille[t].store(900, std::memory_order_relaxed);
  }
  if (Status s = init_robust_mutex(&h->writer_lock); !s.ok()) {
    destroy(options.segment_name).ok();
    return s;
  }
  seg->bind_parts();
  for (uint32_t i = 0; i < kMaxProcesses; ++i) new (&seg->process(i)) ProcessSlot();
  new (seg->journal_) Journal();
  h->ready.store(1, std::memory_order_release);  // what builds before the shared protocol wait for
  publish_segment(*seg->mapping_, kIndexFormat);
  return seg;
}

Result<std::unique_ptr<IndexSegment>> IndexSegment::attach(std::string_view name) {
  KVTIER_RETURN_IF_ERROR(validate_name(name));
  std::unique_ptr<IndexSegment> seg(new IndexSegment());
  // A process creating the node right now (create_if_missing) has the object before its header.
  auto attached = attach_segment(name, kIndexFormat, kCreatorWait);
  if (!attached.ok()) return attached.status();
  seg->mapping_ = std::move(attached->segment);
  const uint64_t size = seg->mapping_->size();
  const auto mismatch = [&](std::string what) {
    return Status::version_mismatch(fmt::format("index segment '{}' {}", name, what));
  };
  const auto* h = static_cast<const SegmentHeader*>(seg->mapping_->address());
  if (h->entry_bytes != sizeof(IndexEntry) || h->header_bytes != sizeof(SegmentHeader) ||
      h->max_processes != kMaxProcesses) {
    return mismatch(fmt::format("has a different layout (entry {} B, header {} B, {} processes)", h->entry_bytes,
                                h->header_bytes, h->max_processes));
  }
  // A segment an older build made published its magic first and `ready` last.
  if (h->ready.load(std::memory_order_acquire) == 0) {
    return Status::unavailable(fmt::format("index segment '{}' was never finished by its creator", name));
  }
  const uint64_t ghost_slots = h->format_version >= 2 ? h->ghost_slots : 0;
  // Every part the process binds is where the header's sizes put it, inside the mapping. The sizes
  // are bounded first (each entry, record and cell takes at least a byte), so a damaged header
  // cannot make the arithmetic wrap round to the mapping's size.
  const bool bounded = h->capacity <= size && h->ring_records <= size && ghost_slots <= size;
  const bool learning = h->format_version >= 3 && ghost_slots != 0;
  const Geometry g = bounded ? plan(h->capacity, h->ring_records, ghost_slots, learning) : Geometry{};
  if (!bounded || h->total_bytes != size || g.total_bytes != size || g.slots != h->slots ||
      g.process_table_offset != h->process_table_offset || g.journal_offset != h->journal_offset ||
      g.ring_offset != h->ring_offset || g.tags_offset != h->tags_offset || g.table_offset != h->table_offset ||
      (ghost_slots & (ghost_slots - 1)) != 0 || (ghost_slots != 0 && g.ghosts_offset != h->ghosts_offset) ||
      (learning && g.learning_offset != h->learning_offset)) {
    return Status::corruption(fmt::format("index segment '{}' geometry does not add up (size {}, header says {})", name,
                                          size, h->total_bytes));
  }
  seg->bind_parts();
  return seg;
}

Status IndexSegment::destroy(std::string_view name) { return SharedSegment::destroy(name); }

Status IndexSegment::set_clock(uint32_t ticks) {
  if (header_->manual_clock == 0) {
    return Status::failed_precondition("the index follows the monotonic clock (created without manual_clock)");
  }
  header_->manual_now.store(ticks, std::memory_order_relaxed);
  return {};
}

uint32_t IndexSegment::now_ticks() const {
  if (header_->manual_clock != 0) return header_->manual_now.load(std::memory_order_relaxed);
  return static_cast<uint32_t>((monotonic_ns() - header_->created_monotonic_ns) >> 20);  // ≈ 1/1024 s
}

}  // namespace kvtier::index
