// HbmBlock: a block an engine holds in its GPU memory, as the engine reports it to the node
// (Client::hbm_stored / hbm_evicted, docs/client.md#hbm-residency).
#pragma once

#include <cstdint>

#include "kvtier/block_key.h"

namespace kvtier {

// Its key, its predecessor (the namespace root for a chain's first block) and the engine's own id
// for it (below 2^24), which names the copy in the index.
struct HbmBlock {
  BlockKey key;
  BlockKey parent;
  uint32_t block_id = 0;
};

}  // namespace kvtier
