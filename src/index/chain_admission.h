// Put admission, chain by chain (docs/index.md#admission). An engine writes a request's new
// blocks in chain order, reserving each before the one before it is committed. While host memory
// is full the node judges the first new block extending a cached chain, and the blocks after it
// follow their parent: admitted with it, or refused with it (a block whose parent is not cached
// can never be part of a matched prefix). Judging every block on its own cut chains at random
// depths, each judgement against another victim: on Mooncake's conversation trace at 1M host
// tokens that gave 0.090 of blocks against 0.097 judging chains (docs/benchmarks.md). The
// engines' client and the policy study use this same class, so the study measures what engines do.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>

#include "kvtier/block_index.h"
#include "kvtier/block_key.h"
#include "kvtier/tier.h"

namespace kvtier::index {

class ChainAdmission {
 public:
  // Whether the block `key`, extending `parent`, may enter `tier`, whose blocks take `occupied`
  // bytes of it. A refused block is remembered by the index as if admitted and evicted at once.
  bool admit(BlockIndex& index, const BlockKey& key, const BlockKey& parent, Tier tier, uint64_t occupied);

 private:
  // The chains being written: the last blocks judged, or following a judged parent, and their
  // verdicts (a process writes a few chains at a time; one that falls out of this, or that began
  // while the tier had room, is judged at its next block).
  static constexpr size_t kRecent = 64;
  void remember(const BlockKey& key, bool admitted);  // under mu_

  std::mutex mu_;
  std::array<BlockKey, kRecent> keys_{};
  std::array<bool, kRecent> admitted_{};
  size_t next_ = 0;
};

}  // namespace kvtier::index
