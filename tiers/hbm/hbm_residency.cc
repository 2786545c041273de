#include "tiers/hbm/hbm_residency.h"

#include <fmt/format.h>

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

Result<size_t> record_stored(BlockIndex& index, uint32_t process_slot, uint16_t namespace_id, uint32_t payload_bytes,
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
    const Status s = index.insert(rec);
    if (s.ok()) {
      ++recorded;
    } else if (s.code() != StatusCode::kAlreadyExists) {  // another engine holds it in HBM
      return s.with_context(fmt::format("recording block {} in HBM", b.key.to_hex()));
    }
  }
  return recorded;
}

Result<size_t> record_evicted(BlockIndex& index, uint32_t process_slot, std::span<const HbmBlock> blocks) {
  for (const HbmBlock& b : blocks) KVTIER_RETURN_IF_ERROR(check_block_id(b));
  size_t dropped = 0;
  for (const HbmBlock& b : blocks) {
    const Status s = index.drop_tier_at(b.key, Tier::kHbm, locator(process_slot, b.block_id));
    if (s.ok()) {
      ++dropped;
    } else if (s.code() != StatusCode::kNotFound) {
      return s.with_context(fmt::format("dropping block {} from HBM", b.key.to_hex()));
    }
  }
  return dropped;
}

}  // namespace kvtier::hbm
