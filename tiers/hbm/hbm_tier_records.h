// HbmTierRecords: the HBM tier behind the tier seam. Engines hold their KV blocks in their own GPU
// memory; kvtier never owns it and never moves bytes into or out of it on its own, so the HBM tier
// has records and no byte store (TierRecords, not TierStore). The engine reports what it stored and
// evicted; the records go into the node's index so that matches, snapshots and events (and so
// schedulers) see the tier. A record names its holder: the engine's process slot in the index (high
// 8 bits of the locator) and its block id (low 24 bits). When the process leaves or dies, the index
// drops its records (IndexWriter::drop_hbm_of_process).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "kvtier/block_index.h"
#include "kvtier/hbm_block.h"
#include "tiers/tier_store.h"

namespace kvtier::hbm {

inline constexpr uint32_t kMaxBlockId = (uint32_t{1} << 24) - 1;

// The index locator of an HBM copy.
constexpr uint64_t locator(uint32_t process_slot, uint32_t block_id) {
  return (uint64_t{process_slot} << 24) | block_id;
}

struct HbmRecordStats {
  uint64_t recorded = 0;        // blocks recorded as held in HBM by this process's engine
  uint64_t held_elsewhere = 0;  // reported stored, but another engine on the node already held them
  uint64_t evicted = 0;         // records the engine withdrew (it evicted the copies)
  uint64_t dropped = 0;         // records the index dropped while the engine may still hold the copy
};

class HbmTierRecords final : public tiers::TierRecords {
 public:
  explicit HbmTierRecords(BlockIndex& index) : index_(index) {}

  // Records the blocks, of namespace `namespace_id` and `payload_bytes` each, as held in HBM by
  // `process_slot`. A block another engine already holds in HBM keeps that holder (the node has it
  // in HBM either way) and is not counted. Returns the blocks recorded for this holder.
  Result<size_t> record_stored(uint32_t process_slot, uint16_t namespace_id, uint32_t payload_bytes,
                               std::span<const HbmBlock> blocks);
  // Withdraws the HBM records this holder has for the blocks; others' records stay. Returns how
  // many were withdrawn.
  Result<size_t> record_evicted(uint32_t process_slot, std::span<const HbmBlock> blocks);
  HbmRecordStats stats() const;

  Tier tier() const override { return Tier::kHbm; }
  uint64_t capacity_bytes() const override { return 0; }  // the engines size their own caches
  // Whether the index still names this holder's copy.
  bool contains(const BlockKey& key, uint64_t locator) const override;
  // The index dropped a record (a full table making room for another block): the GPU memory is the
  // engine's, so there is nothing to free; counted, since the node no longer offers that copy.
  void remove(const BlockKey& key, uint64_t locator) override;
  void visit_counters(tiers::CounterVisitor& visitor) const override;

 private:
  BlockIndex& index_;
  std::atomic<uint64_t> recorded_{0}, held_elsewhere_{0}, evicted_{0}, dropped_{0};
};

}  // namespace kvtier::hbm
