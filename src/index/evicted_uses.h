// What the index remembers of blocks that left it: how often each was used, in "ghost" cells (the
// role of ARC's and S3-FIFO's ghost queues). A block that comes back after eviction starts with
// the uses it had, so a frequency-aware policy tells a conversation that returned from a prompt
// seen once. On Mooncake's conversation trace, where a conversation's next turn comes after about
// 10,000 other blocks were written, this is what keeps returning conversations cached in a small
// host tier (docs/benchmarks.md, policy study).
//
// A cell is 16 bits: a 12-bit fingerprint of the key and a 4-bit saturating use count; cells are
// direct-mapped by the key's low bits, so a newer eviction overwrites an older one and a wrong
// recall (another key with the same cell and fingerprint) only misjudges one block's frequency.
// From format 3 each cell also keeps its block's last use, and what comes back or
// is overwritten is evidence for the reuse learning (reuse_learning.h). A recalled cell is cleared:
// its block is cached again. A cell whose block has been gone longer than the learning's horizon
// is evidence too, found by a hand that sweeps the cells as blocks are inserted (age_out_ghosts):
// it counts as forgotten once and keeps its use count. Without the sweep an index sized for an
// SSD tier, with far more cells than blocks evicted in a horizon, overwrote too few cells to count
// the blocks that never come back, and learnt densities too high for exactly those blocks
// (hit-density fell from 0.092 to 0.086 of blocks on Mooncake's conversation trace at 1M host
// tokens in a 69,536-entry index). Cells are read and written under the writer lock; they are
// advisory and not journaled.
#pragma once

#include <algorithm>
#include <cstdint>

#include "index/index_segment.h"
#include "index/reuse_learning.h"

namespace kvtier::index {

inline constexpr uint8_t kMaxRememberedUses = 15;
// A cell's last use once the sweep has counted its block as forgotten (a real last use of this
// value, one tick in 2^32, only goes uncounted).
inline constexpr uint32_t kCountedAsForgotten = UINT32_MAX;

constexpr uint16_t ghost_cell_value(uint64_t key_hi, uint8_t uses) {
  const auto fingerprint = static_cast<uint16_t>(key_hi >> 52);
  return static_cast<uint16_t>((fingerprint << 4) | std::min(uses, kMaxRememberedUses));
}

// Records the use count and last use of a block leaving the index; the block whose cell it takes
// is forgotten.
inline void remember_uses(const IndexSegment& seg, uint64_t key_hi, uint64_t key_lo, uint8_t uses, uint32_t last_use,
                          uint32_t now) {
  if (seg.ghost_slots() == 0 || uses == 0) return;
  const uint64_t cell = key_lo & (seg.ghost_slots() - 1);
  if (ReuseLearning* learning = seg.learning(); learning != nullptr) {
    if (const uint16_t old = seg.ghost(cell); old != 0 && seg.ghost_last_use(cell) != kCountedAsForgotten) {
      observe_forgotten(learning, static_cast<uint8_t>(old & 0xF), now - seg.ghost_last_use(cell));
    }
    seg.ghost_last_use(cell) = last_use;
  }
  seg.ghost(cell) = ghost_cell_value(key_hi, uses);
}

// The uses remembered for a block entering the index, 0 if none. A remembered block came back:
// the reuse learning counts its return at the age it had, and its cell is freed.
inline uint8_t recalled_uses(const IndexSegment& seg, uint64_t key_hi, uint64_t key_lo, uint32_t now) {
  if (seg.ghost_slots() == 0) return 0;
  const uint64_t cell = key_lo & (seg.ghost_slots() - 1);
  const uint16_t value = seg.ghost(cell);
  if (value == 0 || (value >> 4) != ghost_cell_value(key_hi, 0) >> 4) return 0;
  const auto uses = static_cast<uint8_t>(value & 0xF);
  if (ReuseLearning* learning = seg.learning(); learning != nullptr) {
    if (seg.ghost_last_use(cell) != kCountedAsForgotten) observe_return(learning, uses, now - seg.ghost_last_use(cell));
    seg.ghost(cell) = 0;
  }
  return uses;
}

// The uses remembered for a block not in the index, 0 if none. Changes nothing.
inline uint8_t remembered_uses(const IndexSegment& seg, uint64_t key_hi, uint64_t key_lo) {
  if (seg.ghost_slots() == 0) return 0;
  const uint16_t value = seg.ghost(key_lo & (seg.ghost_slots() - 1));
  if (value == 0 || (value >> 4) != ghost_cell_value(key_hi, 0) >> 4) return 0;
  return static_cast<uint8_t>(value & 0xF);
}

// Cells the sweep looks at per insert, at most. Looking at every cell once per update of the
// learning took 512 cells per put in kvtier-bench host's sparse index (put_vs_memcpy 0.90 -> 0.76).
// A slower sweep counts the same blocks, only later: in a steady state as many are counted per
// update as are evicted, each at the age it had.
inline constexpr uint64_t kGhostSweepCells = 16;

// After an insert: looks at the next few cells (every cell once between two updates of the
// learning, 2 × live entries inserts, or kGhostSweepCells) and counts a block gone longer than the
// horizon as forgotten at the age it has.
inline void age_out_ghosts(const IndexSegment& seg, uint64_t live_entries, uint32_t now) {
  ReuseLearning* learning = seg.learning();
  if (learning == nullptr || learning->updates == 0 || seg.ghost_slots() == 0) return;
  const uint64_t period = std::max<uint64_t>(1024, 2 * live_entries);
  const uint64_t cells = std::min(kGhostSweepCells, (seg.ghost_slots() + period - 1) / period);
  uint64_t hand = learning->ghost_hand;
  for (uint64_t i = 0; i < cells; ++i, hand = (hand + 1) & (seg.ghost_slots() - 1)) {
    const uint16_t value = seg.ghost(hand);
    uint32_t& last_use = seg.ghost_last_use(hand);
    if (value == 0 || last_use == kCountedAsForgotten || now - last_use <= learning->horizon_ticks) continue;
    observe_forgotten(learning, static_cast<uint8_t>(value & 0xF), now - last_use);
    last_use = kCountedAsForgotten;
  }
  learning->ghost_hand = hand;
}

}  // namespace kvtier::index
