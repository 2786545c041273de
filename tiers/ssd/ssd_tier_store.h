// The SSD tier as a TierStore: SsdStore behind the interface the mover uses, with the node's
// per-namespace codecs. Blocks are found by key (the locator is the index's copy of where they
// lie); insert() writes to the region being filled and commit() has nothing left to do: a block
// the index never names is put back in it by the next start's reconciliation, or reclaimed.
#pragma once

#include <unordered_map>

#include "tiers/ssd/ssd_store.h"
#include "tiers/tier_store.h"

namespace kvtier::ssd {

class SsdTierStore final : public tiers::TierStore {
 public:
  SsdTierStore(SsdStore& store, std::unordered_map<uint16_t, Codec> codecs)
      : store_(store), codecs_(std::move(codecs)) {}

  Tier tier() const override { return Tier::kSsd; }
  uint64_t capacity_bytes() const override { return store_.stats().capacity_bytes; }
  uint64_t used_bytes() const override { return store_.occupied_bytes(); }
  bool contains(const BlockKey& key, uint64_t) const override { return store_.contains(key); }
  Result<tiers::TierSpace> reserve(const tiers::TierBlock&) override {
    return Status::failed_precondition("SSD blocks are written through insert()");
  }
  Result<uint64_t> insert(const tiers::TierBlock& block, std::span<const uint8_t> payload) override;
  Status commit(uint64_t) override { return {}; }
  void abandon(const BlockKey& key, uint64_t) override { (void)store_.remove(key); }
  std::span<const uint8_t> view(uint64_t, uint32_t) const override { return {}; }
  void read(std::span<tiers::TierRead> reads) override;
  void remove(const BlockKey& key, uint64_t) override { (void)store_.remove(key); }
  Status flush() override { return store_.flush(); }
  void recover(const std::function<void(const tiers::TierBlock&, uint64_t)>& fn) const override;
  void visit_counters(tiers::CounterVisitor& visitor) const override;

  SsdStore& store() { return store_; }

 private:
  SsdStore& store_;
  std::unordered_map<uint16_t, Codec> codecs_;  // absent: stored as is
};

}  // namespace kvtier::ssd
