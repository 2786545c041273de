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
// its block is cached again. Cells are read and written under the writer lock; they are advisory
// and not journaled.
#pragma once

#include <algorithm>
#include <cstdint>

#include "index/index_segment.h"
#include "index/reuse_learning.h"

namespace kvtier::index {

inline constexpr uint8_t kMaxRememberedUses = 15;

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
    if (const uint16_t old = seg.ghost(cell); old != 0) {
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
    observe_return(learning, uses, now - seg.ghost_last_use(cell));
    seg.ghost(cell) = 0;
  }
  return uses;
}

}  // namespace kvtier::index
