#include "tiers/hbm/hbm_tier_records.h"

#include <fmt/format.h>

#include "tiers/tier_releaser.h"

namespace kvtier::hbm {
namespace {

Status check_block_id(const HbmBlock& b) {
  if (b.block_id > kMaxBlockId) {
    return Status::invalid_argument(
        fmt::format("HBM block id {} of block {} exceeds {} (24 bits)", b.block_id, b.key.to_hex(), kMaxBlockId));
  }
  return {};
}

}  // namespace

Result<size_t> HbmTierRecords::record_stored(uint32_t process_slot, uint16_t namespace_id, uint32_t payload_bytes,
                                             std::span<const HbmBlock> blocks) {
  for (const HbmBlock& b : blocks) KVTIER_RETURN_IF_ERROR(check_block_id(b));  // all or nothing
  size_t recorded = 0;
  for (const HbmBlock& b : blocks) {
    BlockRecord rec;
    rec.key = b.key;
    rec.parent = b.parent;
    rec.namespace_id = namespace_id;
    rec.payload_bytes = payload_bytes;
    rec.tier = Tier::kHbm;
    rec.locator = locator(process_slot, b.block_id);
    const Status s = index_.insert(rec);
    if (s.ok()) {
      ++recorded;
    } else if (s.code() == StatusCode::kAlreadyExists) {  // another engine holds it in HBM
      held_elsewhere_.fetch_add(1, std::memory_order_relaxed);
    } else {
      recorded_.fetch_add(recorded, std::memory_order_relaxed);
      return s.with_context(fmt::format("recording block {} in HBM", b.key.to_hex()));
    }
  }
  recorded_.fetch_add(recorded, std::memory_order_relaxed);
  return recorded;
}

Result<size_t> HbmTierRecords::record_evicted(uint32_t process_slot, std::span<const HbmBlock> blocks) {
  for (const HbmBlock& b : blocks) KVTIER_RETURN_IF_ERROR(check_block_id(b));
  size_t withdrawn = 0;
  Status failed;
  for (const HbmBlock& b : blocks) {
    const Status s = index_.drop_tier_at(b.key, Tier::kHbm, locator(process_slot, b.block_id));
    if (s.ok()) {
      ++withdrawn;
    } else if (s.code() != StatusCode::kNotFound) {
      failed = s.with_context(fmt::format("dropping block {} from HBM", b.key.to_hex()));
      break;
    }
  }
  evicted_.fetch_add(withdrawn, std::memory_order_relaxed);
  if (!failed.ok()) return failed;
  return withdrawn;
}

HbmRecordStats HbmTierRecords::stats() const {
  return {recorded_.load(std::memory_order_relaxed), held_elsewhere_.load(std::memory_order_relaxed),
          evicted_.load(std::memory_order_relaxed), dropped_.load(std::memory_order_relaxed)};
}

bool HbmTierRecords::contains(const BlockKey& key, uint64_t loc) const {
  const std::optional<BlockInfo> b = index_.lookup(key);
  return b.has_value() && b->in(Tier::kHbm) && tiers::locator_in(*b, Tier::kHbm) == loc;
}

void HbmTierRecords::remove(const BlockKey& /*key*/, uint64_t /*locator*/) {
  dropped_.fetch_add(1, std::memory_order_relaxed);
}

void HbmTierRecords::visit_counters(tiers::CounterVisitor& v) const {
  const HbmRecordStats s = stats();
  v.counter("hbm_records_total", "Blocks engines in this process reported stored in HBM and the index recorded.",
            s.recorded);
  v.counter("hbm_records_held_elsewhere_total",
            "Blocks reported stored in HBM that another engine on the node already held (its record kept).",
            s.held_elsewhere);
  v.counter("hbm_records_withdrawn_total", "HBM records withdrawn because the engine evicted its copy.", s.evicted);
  v.counter("hbm_records_dropped_total",
            "HBM records this process's index writes dropped (a full table making room for another block) "
            "while the engine may still hold the copy.",
            s.dropped);
}

}  // namespace kvtier::hbm
