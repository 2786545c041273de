// How the host arena and the block index stay in step: blocks leaving host memory free their
// arena space, and reservations of dead processes are freed or (when the index already names
// them) adopted. Shared by the client library and the node daemon.
#pragma once

#include "kvtier/block_index.h"
#include "tiers/host/host_arena.h"

namespace kvtier::host {

// Frees the arena space of blocks the index evicts from host memory. It never demotes: the node
// daemon writes SSD copies before evicting (docs/ssd.md), so a process without the SSD tier
// drops host-only blocks instead.
class ArenaReleaser final : public EvictionListener {
 public:
  explicit ArenaReleaser(HostArena& arena) : arena_(arena) {}
  Result<uint64_t> demote_to_ssd(const BlockInfo&) override {
    return Status::unavailable("SSD copies are written by the node daemon before eviction");
  }
  void released(const BlockInfo& block, Tier tier) override {
    if (tier == Tier::kHost) (void)arena_.release_evicted(block.host_loc);
  }
  bool demotes() const override { return false; }

 private:
  HostArena& arena_;
};

// Index upkeep (dead writers, dead processes' pins), then the arena's dead reservations.
Status maintain_index_and_arena(BlockIndex& index, HostArena& arena);

}  // namespace kvtier::host
