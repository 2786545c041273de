// The SSD tier as the policy study keeps it: the node's SsdStore (tiers/ssd) without its bytes.
// Blocks are appended to regions in the order they are written; to take more than its capacity
// the tier reclaims its oldest region (ssd.reclaim "fifo", the default), rewriting the blocks read
// since they were written (ssd.reinsert_hot) and losing the others, which the node's mover then
// forgets in the index as the store's drop listener has it do. So the study's SSD tier gives up
// the blocks the daemon's does, not the ones the index's policy would pick.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "tiers/tier_store.h"

namespace kvtier::policy {

class SimulatedSsd final : public tiers::TierStore {
 public:
  // `capacity` in payload bytes (the study's are tokens), cut into `regions` equal regions.
  SimulatedSsd(uint64_t capacity, uint32_t regions, bool reinsert_hot);

  Tier tier() const override { return Tier::kSsd; }
  uint64_t capacity_bytes() const override { return capacity_; }
  // As SsdStore::occupied_bytes: the written regions, dead space included until reclaimed.
  uint64_t used_bytes() const override;
  bool contains(const BlockKey& key, uint64_t) const override { return blocks_.contains(key); }
  Result<tiers::TierSpace> reserve(const tiers::TierBlock&) override;
  Result<uint64_t> insert(const tiers::TierBlock& block, std::span<const uint8_t> payload) override;
  Status commit(uint64_t) override { return {}; }
  void abandon(const BlockKey& key, uint64_t) override { erase(key); }
  std::span<const uint8_t> view(uint64_t, uint32_t) const override { return {}; }
  void read(std::span<tiers::TierRead> reads) override;
  void remove(const BlockKey& key, uint64_t) override { erase(key); }
  Status flush() override { return {}; }
  void recover(const std::function<void(const tiers::TierBlock&, uint64_t)>&) const override {}
  void visit_counters(tiers::CounterVisitor& visitor) const override;

  // The blocks lost to reclaim since the last call (the drop listener's list).
  std::vector<BlockKey> take_lost();
  uint64_t reinserted() const { return reinserted_; }

 private:
  struct Stored {
    uint64_t region = 0;  // sequence number of the region holding it
    uint32_t bytes = 0;
    uint32_t hits = 0;  // reads since it was written
  };
  struct Region {
    uint64_t seq = 0;
    uint64_t bytes = 0;  // written, dead ones included
    std::vector<BlockKey> keys;
  };
  bool place(const BlockKey& key, uint32_t bytes);
  void append(const BlockKey& key, uint32_t bytes);
  void open_region();
  void erase(const BlockKey& key);

  uint64_t capacity_, region_bytes_;
  uint32_t regions_;
  bool reinsert_hot_;
  std::unordered_map<BlockKey, Stored, BlockKeyHash> blocks_;
  std::deque<Region> written_;  // oldest first; the back one is being filled
  uint64_t next_seq_ = 0, next_locator_ = 0, reinserted_ = 0;
  std::vector<BlockKey> lost_;
};

}  // namespace kvtier::policy
