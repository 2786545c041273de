// Region reclaim: the SSD tier frees space a whole region at a time (FIFO or LRU of regions),
// rewriting the blocks read since they were written.
#include <spdlog/spdlog.h>

#include "common/shared_segment.h"  // round_up
#include "tiers/ssd/ssd_store_impl.h"

namespace kvtier::ssd {

// Frees the coldest sealed region (by the reclaim order), first rewriting its blocks read since
// written when reinsertion is on. False when no region can be reclaimed now.
bool SsdStore::Impl::reclaim_one(std::unique_lock<std::mutex>& lock) {
  uint32_t victim = kNoRegion;
  for (uint32_t r = 0; r < regions.size(); ++r) {
    const Region& reg = regions[r];
    if (reg.state != RegionState::kSealed || reg.readers != 0) continue;
    if (victim == kNoRegion) {
      victim = r;
      continue;
    }
    const Region& best = regions[victim];
    const bool older =
        options.reclaim == RegionReclaim::kFifo ? reg.seal_seq < best.seal_seq : reg.last_access < best.last_access;
    if (older) victim = r;
  }
  if (victim == kNoRegion) return false;
  Region& reg = regions[victim];
  reg.state = RegionState::kReclaiming;
  std::vector<StoredBlock> live, hot;
  for (const BlockKey& k : reg.keys) {
    auto it = entries.find(k);
    if (it == entries.end() || it->second.block.region != victim || it->second.block.region_gen != reg.gen) continue;
    live.push_back(it->second.block);
    if (options.reinsert_hot && it->second.hits > 0) hot.push_back(it->second.block);
  }
  const uint64_t base = device_offset(victim);
  Device& dev = *devices[device_of(victim)];
  lock.unlock();

  // Read the hot blocks back before the region's records go (one batch), then release it.
  std::vector<AlignedBuffer> hot_bytes(hot.size());
  std::vector<IoOp> ops;
  for (size_t i = 0; i < hot.size(); ++i) {
    const auto len = static_cast<uint32_t>(round_up(hot[i].stored_bytes, kIoAlign));
    hot_bytes[i] = aligned_alloc_bytes(len);
    ops.push_back(IoOp{IoOp::Kind::kRead, base + hot[i].offset, hot_bytes[i].get(), len, 0});
  }
  const bool read_ok = ops.empty() || dev.run(ops).ok();
  std::vector<BlockKey> keys;
  keys.reserve(live.size());
  for (const StoredBlock& b : live) keys.push_back(b.key);
  const Status released = metadata->release_region(victim, keys);

  lock.lock();
  if (!released.ok()) {
    // The records still name this region, so it must not be rewritten: keep it sealed.
    spdlog::error("ssd: {}", released.message());
    reg.state = RegionState::kSealed;
    return false;
  }
  for (const StoredBlock& b : live) {
    if (auto it = entries.find(b.key); it != entries.end()) erase_entry(it);
  }
  reg.gen += 1;
  reg.state = RegionState::kFree;
  reg.keys.clear();
  reg.used = 0;
  free_regions.push_back(victim);
  ++counters.regions_reclaimed;

  std::unordered_set<BlockKey, BlockKeyHash> reinserted;
  for (size_t i = 0; i < hot.size() && read_ok; ++i) {
    if (ops[i].result < 0 ||
        stored_block_checksum(hot[i].key, hot_bytes[i].get(), hot[i].stored_bytes) != hot[i].checksum)
      continue;
    uint64_t locator = 0;
    if (!place_locked(lock, hot[i], hot_bytes[i].get(), /*may_wait=*/false, &locator).ok()) break;
    reinserted.insert(hot[i].key);
  }
  counters.blocks_reinserted += reinserted.size();
  std::vector<BlockKey> dropped;
  for (const StoredBlock& b : live) {
    if (!reinserted.contains(b.key)) dropped.push_back(b.key);
  }
  counters.blocks_evicted += dropped.size();
  changed.notify_all();
  lock.unlock();
  notify(dropped);
  lock.lock();
  return true;
}

}  // namespace kvtier::ssd
