// Promotion: SSD blocks engines asked for are read in one batch straight into host-arena space
// (io_uring into shared memory, no bounce buffer for uncompressed blocks) and then published in
// the index, which is the moment engines can acquire them.
#include <algorithm>
#include <unordered_set>

#include "common/shared_segment.h"  // round_up
#include "server/node/node_tiers_impl.h"

namespace kvtier::node {

size_t NodeTiers::Impl::promote(std::span<const BlockKey> keys) {
  if (!ssd) return 0;
  auto owner = index.owner_tag();
  if (!owner.ok()) return 0;
  struct Pending {
    BlockInfo info;
    uint32_t loc;
  };
  std::vector<Pending> pending;
  std::vector<ssd::SsdRead> reads;
  std::unordered_set<BlockKey, BlockKeyHash> seen;
  for (const BlockKey& key : keys) {
    if (!seen.insert(key).second) continue;
    auto info = index.lookup(key);
    if (!info || info->in(Tier::kHost)) continue;  // evicted meanwhile, or already up
    if (!info->in(Tier::kSsd)) {
      promote_misses.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    auto cls = arena->size_class(info->payload_bytes);
    if (!cls.ok()) {
      promote_failed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    auto loc = arena->reserve(*cls, *owner);
    if (!loc.ok() && loc.status().code() == StatusCode::kResourceExhausted) {
      (void)demote(uint64_t{info->payload_bytes} * (keys.size() - pending.size()));
      loc = arena->reserve(*cls, *owner);
    }
    if (!loc.ok()) {
      promote_failed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    pending.push_back({*info, *loc});
    // Arena blocks are whole 64 KiB units, so the read may round up to the device's alignment.
    reads.push_back(
        ssd::SsdRead{key, std::span<uint8_t>(arena->data(*loc), round_up(info->payload_bytes, ssd::kIoAlign)), {}, 0});
  }
  if (reads.empty()) return 0;
  ssd->read(reads);
  size_t promoted_now = 0;
  for (size_t i = 0; i < reads.size(); ++i) {
    const Pending& p = pending[i];
    bool published = false;
    if (reads[i].status.ok()) {
      // As in Client::commit: publish, then commit the arena block (a crash between is adopted).
      // Once published the block is the index's: should it be evicted before the commit, the
      // commit frees it, and nothing here may release it again.
      published = index
                      .insert(BlockRecord{p.info.key, BlockKey{0, p.info.parent_lo}, p.info.namespace_id,
                                          p.info.payload_bytes, Tier::kHost, p.loc})
                      .ok();
      if (published) (void)arena->commit(p.loc, *owner);
    } else if (reads[i].status.code() == StatusCode::kNotFound) {
      promote_misses.fetch_add(1, std::memory_order_relaxed);
    }
    if (published) {
      ++promoted_now;
    } else {
      (void)arena->release(p.loc);
      if (!reads[i].status.ok() && reads[i].status.code() != StatusCode::kNotFound) {
        promote_failed.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  promoted.fetch_add(promoted_now, std::memory_order_relaxed);
  return promoted_now;
}

}  // namespace kvtier::node
