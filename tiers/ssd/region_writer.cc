// The SSD writer thread: streams full regions to the device and commits each to the catalogue
// once its data is written (docs/ssd.md).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

#include "tiers/ssd/ssd_store_impl.h"

namespace kvtier::ssd {

void SsdStore::Impl::writer_loop() {
  std::unique_lock lock(mu);
  while (true) {
    const bool idle_flush = filling != kNoRegion && regions[filling].used > 0 &&
                            now() - last_insert >= std::chrono::milliseconds(options.flush_after_ms);
    if (idle_flush) queue_filling_locked();
    if (!write_queue.empty()) {
      stream_writes(lock, device_of(write_queue.front()));
      continue;
    }
    // Keep enough free regions that inserts never wait for a reclaim.
    if (free_regions.size() < options.write_buffers && !stopping && reclaim_one(lock)) continue;
    if (stopping) break;
    changed.wait_for(lock, std::chrono::milliseconds(std::max<uint32_t>(options.flush_after_ms / 4, 10)));
  }
  changed.notify_all();
}

// Streams the queued regions of one device to it: the device pulls write requests as its queue
// frees up, regions queued meanwhile included, so it never drains between regions. Each region is
// committed to the catalogue as its last request finishes.
void SsdStore::Impl::stream_writes(std::unique_lock<std::mutex>& lock, uint32_t device) {
  writing = true;
  lock.unlock();
  devices[device]->stream([&](IoOp& op, uint64_t& tag) { return next_write(device, op, tag); },
                          [&](const IoOp& op, uint64_t tag) { write_done(device, op, tag); });
  lock.lock();
  writing = false;
  changed.notify_all();
}

// The stream's source: the next request of the region being issued, or of the next queued region
// on this device. Keeps the free-region reserve too, so a full tier streams without pausing.
bool SsdStore::Impl::next_write(uint32_t device, IoOp& op, uint64_t& tag) {
  std::unique_lock lock(mu);
  if (free_regions.size() < options.write_buffers && !stopping) (void)reclaim_one(lock);
  if (issuing == kNoRegion) {
    auto it = std::find_if(write_queue.begin(), write_queue.end(), [&](uint32_t r) { return device_of(r) == device; });
    if (it == write_queue.end()) return false;
    issuing = *it;
    write_queue.erase(it);
    Region& reg = regions[issuing];
    reg.state = RegionState::kWriting;
    reg.write_next = 0;
    reg.writes_pending = (reg.used + options.io_bytes - 1) / options.io_bytes;
    reg.write_error = 0;
  }
  Region& reg = regions[issuing];
  const uint32_t len = std::min(options.io_bytes, reg.used - reg.write_next);
  op = IoOp{IoOp::Kind::kWrite, device_offset(issuing) + reg.write_next, reg.buffer + reg.write_next, len, 0};
  tag = issuing;
  reg.write_next += len;
  if (reg.write_next == reg.used) issuing = kNoRegion;
  return true;
}

// The stream's sink: a write request finished; the region's last one commits it.
void SsdStore::Impl::write_done(uint32_t device, const IoOp& op, uint64_t tag) {
  const auto r = static_cast<uint32_t>(tag);
  std::unique_lock lock(mu);
  Region& reg = regions[r];
  if (op.result < 0 && reg.write_error == 0) reg.write_error = -op.result;
  if (--reg.writes_pending > 0 || reg.write_next < reg.used) return;
  Status written;
  if (reg.write_error != 0) {
    written = Status::io_error(
        fmt::format("writing SSD region {} to {}: {}", r, devices[device]->name(), errno_message(reg.write_error)));
  } else if (options.sync_writes) {
    lock.unlock();
    written = devices[device]->sync();
    lock.lock();
  }
  settle_region(lock, r, written, reg.write_error);
}

// After a region's write: commit it to the catalogue, or drop its blocks if it failed.
void SsdStore::Impl::settle_region(std::unique_lock<std::mutex>& lock, uint32_t r, Status written, int err) {
  Region& reg = regions[r];
  const uint32_t used = reg.used;
  uint8_t* buffer = reg.buffer;
  if (written.ok()) {
    // The data is on the device: now, and only now, the catalogue may name it.
    std::vector<StoredBlock> blocks;
    blocks.reserve(reg.keys.size());
    for (const BlockKey& k : reg.keys) {
      auto it = entries.find(k);
      if (it != entries.end() && it->second.block.region == r && it->second.block.region_gen == reg.gen) {
        blocks.push_back(it->second.block);
      }
    }
    const SealedRegion sealed{r, reg.gen, seal_seq + 1};
    written = metadata->commit_region(sealed, blocks);
    if (written.ok()) {
      seal_seq = sealed.seal_seq;
      reg.seal_seq = sealed.seal_seq;
      reg.last_access = ++access_clock;
      reg.state = RegionState::kSealed;
      ++counters.regions_written;
      counters.blocks_durable += blocks.size();
      counters.bytes_written += used;
    } else {
      err = written.code() == StatusCode::kResourceExhausted ? ENOSPC : EIO;
    }
  }
  std::vector<BlockKey> dropped;
  if (!written.ok()) {
    // Nothing of this region reached the catalogue: its blocks are lost from the tier.
    ++counters.write_errors;
    for (const BlockKey& k : reg.keys) {
      auto it = entries.find(k);
      if (it != entries.end() && it->second.block.region == r && it->second.block.region_gen == reg.gen) {
        erase_entry(it);
        dropped.push_back(k);
      }
    }
    counters.blocks_lost += dropped.size();
    reg.gen += 1;
    reg.state = RegionState::kFree;
    reg.keys.clear();
    reg.used = 0;
    free_regions.push_back(r);
    if (err == ENOSPC) {
      ++counters.enospc_events;
      full_until = now() + std::chrono::milliseconds(options.full_backoff_ms);
      spdlog::error("ssd: {}; admitting no blocks for {} ms", written.message(), options.full_backoff_ms);
    } else {
      spdlog::error("ssd: {}", written.message());
    }
  }
  free_buffers.push_back(buffer);
  reg.buffer = nullptr;
  changed.notify_all();
  if (!dropped.empty()) {
    lock.unlock();
    notify(dropped);
    lock.lock();
  }
}

}  // namespace kvtier::ssd
