// How the host arena and the block index stay in step after a process dies: reservations of dead
// processes are freed or (when the index already names them) adopted. Shared by the client
// library and the node daemon. (Blocks leaving host memory free their arena space through
// HostTierStore, tiers/host/host_tier_store.h.)
#pragma once

#include "kvtier/block_index.h"
#include "tiers/host/host_arena.h"

namespace kvtier::host {

// Index upkeep (dead writers, dead processes' pins), then the arena's dead reservations.
Status maintain_index_and_arena(BlockIndex& index, HostArena& arena);

}  // namespace kvtier::host
