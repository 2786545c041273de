// TierReleaser: frees a tier's copy when the index stops naming it. The index calls it under its
// writer lock for every block it evicts or drops (BlockIndex::evict, and insert() making room in a
// full table), so the space a block held is freed with the locator the index really had.
#pragma once

#include <array>

#include "index/index_mechanics.h"
#include "kvtier/block_index.h"
#include "tiers/tier_store.h"

namespace kvtier::tiers {

// The locator the index records for the block's copy in `tier`.
inline uint64_t locator_in(const BlockInfo& b, Tier tier) {
  switch (tier) {
    case Tier::kHost: return b.host_loc;
    case Tier::kSsd: return b.ssd_loc;
    case Tier::kHbm: return (uint64_t{b.hbm_process} << 24) | b.hbm_block;
  }
  return 0;
}

class TierReleaser final : public EvictionListener {
 public:
  // Frees copies in `records`' tier through it from now on (null: that tier is not this process's).
  void serve(Tier tier, TierRecords* records) { tiers_[tier_index(tier)] = records; }
  void released(const BlockInfo& block, Tier tier) override {
    if (TierRecords* t = tiers_[tier_index(tier)]; t != nullptr) t->remove(block.key, locator_in(block, tier));
  }

 private:
  std::array<TierRecords*, kNumTiers> tiers_{};
};

}  // namespace kvtier::tiers
