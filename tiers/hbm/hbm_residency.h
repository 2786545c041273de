// HBM residency: which blocks each engine holds in its GPU memory, recorded in the node's index
// so that matches, snapshots and events (and so schedulers) see the HBM tier. kvtier never owns
// GPU memory; the engine reports what it stored and evicted. A record names its holder: the
// engine's process slot in the index (high 8 bits) and its block id (low 24 bits). When the
// process leaves or dies, the index drops its records (IndexWriter::drop_hbm_of_process).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kvtier/block_index.h"
#include "kvtier/hbm_block.h"

namespace kvtier::hbm {

inline constexpr uint32_t kMaxBlockId = (uint32_t{1} << 24) - 1;

// The index locator of an HBM copy.
constexpr uint64_t locator(uint32_t process_slot, uint32_t block_id) {
  return (uint64_t{process_slot} << 24) | block_id;
}

// Records the blocks, of namespace `namespace_id` and `payload_bytes` each, as held in HBM by
// `process_slot`. A block another engine already holds in HBM keeps that holder (the node has it
// in HBM either way) and is not counted. Returns the blocks recorded for this holder.
Result<size_t> record_stored(BlockIndex& index, uint32_t process_slot, uint16_t namespace_id, uint32_t payload_bytes,
                             std::span<const HbmBlock> blocks);
// Drops the HBM records this holder has for the blocks; others' records stay. Returns how many
// were dropped.
Result<size_t> record_evicted(BlockIndex& index, uint32_t process_slot, std::span<const HbmBlock> blocks);

}  // namespace kvtier::hbm
