// Demotion, in two phases so that no SSD work happens under the index's writer lock:
//   1. the policy's first victims are pinned quietly (a pin that is not a use), and those the
//      admission filter accepts are copied into the SSD tier and recorded as SSD-resident;
//   2. exactly those victims are evicted from host memory: the copied ones stay cached on SSD,
//      the refused ones are dropped (when the policy allows; prefix-aware keeps inner blocks).
// Blocks put between the phases are never touched: a fresh leaf is not dropped for lack of a copy.
#include <spdlog/spdlog.h>

#include "server/node/node_tiers_impl.h"

namespace kvtier::node {

Result<size_t> NodeTiers::Impl::demote(uint64_t bytes, EvictionReport* out) {
  std::lock_guard guard(demote_mu);
  const uint64_t want = std::max(bytes, index.bytes_over_watermark(Tier::kHost));
  if (want == 0) return size_t{0};
  size_t written = 0;
  const uint32_t min_uses = ssd ? admission.options().min_accesses : UINT32_MAX;
  const std::vector<BlockInfo> victims = index.eviction_candidates(Tier::kHost, want, *policy, min_uses);
  std::vector<BlockKey> keys;
  keys.reserve(victims.size());
  for (const BlockInfo& v : victims) keys.push_back(v.key);
  if (ssd) {
    for (const BlockInfo& c : victims) {
      if (c.in(Tier::kSsd) || !admission.admit(c.frequency, c.payload_bytes)) continue;
      auto leases = index.acquire({&c.key, 1}, BlockIndex::AccessMode::kQuiet);
      if (!leases.ok()) return leases.status();
      if (leases->empty() || !leases->front().info().in(Tier::kHost)) continue;  // gone meanwhile
      const BlockInfo& pinned = leases->front().info();
      const std::span<const uint8_t> bytes_in_host(arena->data(pinned.host_loc), pinned.payload_bytes);
      auto locator = ssd->insert({pinned.key, pinned.parent_lo, pinned.namespace_id}, bytes_in_host,
                                 codec_for(pinned.namespace_id));
      if (!locator.ok()) {
        demote_refused.fetch_add(1, std::memory_order_relaxed);
        // Full or failing: stop writing this pass; eviction below drops what it must.
        if (locator.status().code() == StatusCode::kResourceExhausted ||
            locator.status().code() == StatusCode::kUnavailable) {
          break;
        }
        continue;
      }
      const Status recorded = index.insert(BlockRecord{pinned.key, BlockKey{0, pinned.parent_lo}, pinned.namespace_id,
                                                       pinned.payload_bytes, Tier::kSsd, *locator});
      if (!recorded.ok()) {
        (void)ssd->remove(pinned.key);
        continue;
      }
      ++written;
    }
  }
  demoted.fetch_add(written, std::memory_order_relaxed);
  auto report = index.evict_keys(Tier::kHost, keys, *policy, releaser.get());
  if (!report.ok()) return report.status();
  if (out != nullptr) *out = *report;
  return written;
}

}  // namespace kvtier::node
