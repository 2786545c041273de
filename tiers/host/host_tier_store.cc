#include "tiers/host/host_tier_store.h"

#include <cstring>

namespace kvtier::host {

uint64_t HostTierStore::capacity_bytes() const { return arena_.stats().data_bytes; }
uint64_t HostTierStore::used_bytes() const { return arena_.used_bytes(); }

bool HostTierStore::contains(const BlockKey& key, uint64_t locator) const {
  const auto info = index_.lookup(key);
  return info && info->in(Tier::kHost) && info->host_loc == locator;
}

Result<tiers::TierSpace> HostTierStore::reserve(const tiers::TierBlock& block) {
  KVTIER_ASSIGN_OR_RETURN(const uint8_t cls, arena_.size_class(block.payload_bytes));
  KVTIER_ASSIGN_OR_RETURN(const uint32_t owner, index_.owner_tag());
  KVTIER_ASSIGN_OR_RETURN(const uint32_t loc, arena_.reserve(cls, owner));
  // The whole arena block is writable: a read rounded up for direct I/O lands in it.
  return tiers::TierSpace{loc, std::span<uint8_t>(arena_.data(loc), arena_.block_bytes(loc))};
}

Result<uint64_t> HostTierStore::insert(const tiers::TierBlock& block, std::span<const uint8_t> payload) {
  if (payload.size() != block.payload_bytes) return Status::invalid_argument("payload size differs from the block's");
  KVTIER_ASSIGN_OR_RETURN(const tiers::TierSpace space, reserve(block));
  std::memcpy(space.bytes.data(), payload.data(), payload.size());
  return space.locator;
}

Status HostTierStore::commit(uint64_t locator) {
  KVTIER_ASSIGN_OR_RETURN(const uint32_t owner, index_.owner_tag());
  return arena_.commit(static_cast<uint32_t>(locator), owner);
}

void HostTierStore::abandon(const BlockKey&, uint64_t locator) { (void)arena_.release(static_cast<uint32_t>(locator)); }

std::span<const uint8_t> HostTierStore::view(uint64_t locator, uint32_t payload_bytes) const {
  return {arena_.data(static_cast<uint32_t>(locator)), payload_bytes};
}

void HostTierStore::read(std::span<tiers::TierRead> reads) {
  for (tiers::TierRead& r : reads) {
    if (!contains(r.block.key, r.locator)) {
      r.status = Status::not_found("not in host memory");
      continue;
    }
    if (r.out.size() < r.block.payload_bytes) {
      r.status = Status::invalid_argument("read buffer smaller than the block");
      continue;
    }
    std::memcpy(r.out.data(), arena_.data(static_cast<uint32_t>(r.locator)), r.block.payload_bytes);
    r.status = {};
  }
}

void HostTierStore::remove(const BlockKey&, uint64_t locator) {
  (void)arena_.release_evicted(static_cast<uint32_t>(locator));
}

void HostTierStore::recover(const std::function<void(const tiers::TierBlock&, uint64_t)>&) const {}

void HostTierStore::visit_counters(tiers::CounterVisitor& v) const {
  const ArenaStats s = arena_.stats();
  v.gauge("host_arena_used_bytes", "Host arena bytes in use (committed and reserved blocks).",
          static_cast<double>(s.used_bytes));
  v.gauge("host_arena_reserved_blocks", "Host arena blocks reserved by a writer, not yet committed.",
          static_cast<double>(s.reserved_blocks));
  v.gauge("host_arena_free_slabs", "Host arena slabs not yet given to a size class.",
          static_cast<double>(s.free_slabs));
  v.counter("host_arena_reclaimed_total", "Reservations of dead processes the arena freed.", s.reclaimed);
  v.counter("host_arena_recoveries_total", "Allocations a dead process left half done that the arena rolled back.",
            s.recoveries);
}

}  // namespace kvtier::host
