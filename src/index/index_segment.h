// IndexSegment: the mapping of one index's shared-memory object, and where each part lies in it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/shared_segment.h"
#include "index/segment_layout.h"
#include "kvtier/block_index.h"
#include "kvtier/result.h"

namespace kvtier::index {

__extension__ using uint128 = unsigned __int128;  // GCC/Clang builtin; pedantic mode needs the marker

class IndexSegment {
 public:
  static Result<std::unique_ptr<IndexSegment>> create(const IndexOptions& options);
  static Result<std::unique_ptr<IndexSegment>> attach(std::string_view name);
  static Status destroy(std::string_view name);
  static Status validate_name(std::string_view name);

  ~IndexSegment();
  IndexSegment(const IndexSegment&) = delete;
  IndexSegment& operator=(const IndexSegment&) = delete;

  SegmentHeader& header() const { return *header_; }
  ProcessSlot& process(uint32_t i) const { return processes_[i]; }
  Journal& journal() const { return *journal_; }
  ChangeRecord& ring(uint64_t seq) const { return ring_[seq % ring_records_]; }
  IndexEntry& entry(uint64_t slot) const { return table_[slot]; }
  uint8_t& tag(uint64_t slot) const { return tags_[slot]; }
  // Ghost cells (evicted_uses.h); none in a format-1 segment.
  uint64_t ghost_slots() const { return ghost_slots_; }
  uint16_t& ghost(uint64_t cell) const { return ghosts_[cell]; }
  // The reuse learning and each ghost cell's block's last use, in ticks (reuse_learning.h); none
  // before format 3.
  ReuseLearning* learning() const { return learning_; }
  uint32_t& ghost_last_use(uint64_t cell) const { return ghost_last_uses_[cell]; }
  uint64_t slots() const { return slots_; }
  uint64_t capacity() const { return capacity_; }
  uint64_t ring_records() const { return ring_records_; }
  const std::string& name() const { return mapping_->name(); }

  // Home slot of a key: keys are uniform hashes, so a multiply-shift range reduction suffices.
  uint64_t home(uint64_t key_lo) const { return static_cast<uint64_t>((static_cast<uint128>(key_lo) * slots_) >> 64); }
  uint64_t next(uint64_t slot) const { return slot + 1 == slots_ ? 0 : slot + 1; }
  // Ticks (1/1024 s) since the segment was created, from the system-wide monotonic clock.
  uint32_t now_ticks() const;
  Status set_clock(uint32_t ticks);  // manual-clock segments only

 private:
  IndexSegment() = default;
  void bind_parts();

  std::unique_ptr<SharedSegment> mapping_;
  SegmentHeader* header_ = nullptr;
  ProcessSlot* processes_ = nullptr;
  Journal* journal_ = nullptr;
  ChangeRecord* ring_ = nullptr;
  uint8_t* tags_ = nullptr;
  IndexEntry* table_ = nullptr;
  uint16_t* ghosts_ = nullptr;
  ReuseLearning* learning_ = nullptr;
  uint32_t* ghost_last_uses_ = nullptr;
  uint64_t slots_ = 0, capacity_ = 0, ring_records_ = 0, ghost_slots_ = 0;
};

}  // namespace kvtier::index
