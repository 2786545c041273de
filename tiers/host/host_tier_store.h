// The host arena as a TierStore: the tier the mover promotes into and demotes from.
//
// Locators are the arena's block numbers. Space is reserved for this process (its tag in the
// index's process table) and committed once the index names it, so a daemon killed in between
// leaves a reservation the next upkeep adopts or frees. The arena keeps no catalogue of its own:
// the index, in the same shared memory, names its blocks, so recover() has nothing to report.
#pragma once

#include "kvtier/block_index.h"
#include "tiers/host/host_arena.h"
#include "tiers/tier_store.h"

namespace kvtier::host {

class HostTierStore final : public tiers::TierStore {
 public:
  HostTierStore(HostArena& arena, BlockIndex& index) : arena_(arena), index_(index) {}

  Tier tier() const override { return Tier::kHost; }
  uint64_t capacity_bytes() const override;
  uint64_t used_bytes() const override;
  bool contains(const BlockKey& key, uint64_t locator) const override;
  Result<tiers::TierSpace> reserve(const tiers::TierBlock& block) override;
  Result<uint64_t> insert(const tiers::TierBlock& block, std::span<const uint8_t> payload) override;
  Status commit(uint64_t locator) override;
  void abandon(const BlockKey& key, uint64_t locator) override;
  std::span<const uint8_t> view(uint64_t locator, uint32_t payload_bytes) const override;
  void read(std::span<tiers::TierRead> reads) override;
  // A committed block is freed; one still reserved (published, its writer not yet committed) is
  // freed by that writer's commit (HostArena::release_evicted).
  void remove(const BlockKey& key, uint64_t locator) override;
  Status flush() override { return {}; }  // shared memory: nothing to make durable
  void recover(const std::function<void(const tiers::TierBlock&, uint64_t)>& fn) const override;
  void visit_counters(tiers::CounterVisitor& visitor) const override;

 private:
  HostArena& arena_;
  BlockIndex& index_;
};

}  // namespace kvtier::host
