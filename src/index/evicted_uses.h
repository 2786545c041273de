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
// Cells are read and written under the writer lock; they are advisory and not journaled.
#pragma once

#include <algorithm>
#include <cstdint>

#include "index/index_segment.h"

namespace kvtier::index {

inline constexpr uint8_t kMaxRememberedUses = 15;

constexpr uint16_t ghost_cell_value(uint64_t key_hi, uint8_t uses) {
  const auto fingerprint = static_cast<uint16_t>(key_hi >> 52);
  return static_cast<uint16_t>((fingerprint << 4) | std::min(uses, kMaxRememberedUses));
}

// Records the use count of a block leaving the index.
inline void remember_uses(const IndexSegment& seg, uint64_t key_hi, uint64_t key_lo, uint8_t uses) {
  if (seg.ghost_slots() == 0 || uses == 0) return;
  seg.ghost(key_lo & (seg.ghost_slots() - 1)) = ghost_cell_value(key_hi, uses);
}

// The uses remembered for a block entering the index, 0 if none.
inline uint8_t recalled_uses(const IndexSegment& seg, uint64_t key_hi, uint64_t key_lo) {
  if (seg.ghost_slots() == 0) return 0;
  const uint16_t cell = seg.ghost(key_lo & (seg.ghost_slots() - 1));
  if (cell == 0 || (cell >> 4) != ghost_cell_value(key_hi, 0) >> 4) return 0;
  return static_cast<uint8_t>(cell & 0xF);
}

}  // namespace kvtier::index
