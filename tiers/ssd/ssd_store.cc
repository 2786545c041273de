#include "tiers/ssd/ssd_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/shared_segment.h"  // round_up
#include "tiers/ssd/ssd_store_impl.h"

namespace kvtier::ssd {

Result<RegionReclaim> parse_region_reclaim(std::string_view name) {
  if (name == "fifo") return RegionReclaim::kFifo;
  if (name == "lru") return RegionReclaim::kLru;
  return Status::invalid_argument(fmt::format("unknown SSD region reclaim '{}' (fifo, lru)", name));
}

Status SsdStoreOptions::validate() const {
  if (files.empty()) return Status::invalid_argument("the SSD tier needs at least one file");
  if (metadata_dir.empty()) return Status::invalid_argument("the SSD tier needs a metadata directory");
  if (region_bytes < (1ULL << 20) || region_bytes > (1ULL << 32) || region_bytes % kIoAlign != 0) {
    return Status::invalid_argument(
        fmt::format("ssd region size {} must be 1 MiB..4 GiB and a multiple of {}", region_bytes, kIoAlign));
  }
  if (io_bytes < kIoAlign || io_bytes % kIoAlign != 0 || io_bytes > region_bytes) {
    return Status::invalid_argument(
        fmt::format("ssd io size {} must be a multiple of {} no larger than a region", io_bytes, kIoAlign));
  }
  if (queue_depth == 0 || queue_depth > 1024) return Status::invalid_argument("ssd queue depth must be 1..1024");
  if (write_buffers < 2 || write_buffers > 64) return Status::invalid_argument("ssd write buffers must be 2..64");
  const uint64_t regions = bytes / region_bytes;
  if (regions < write_buffers + 2) {
    return Status::invalid_argument(
        fmt::format("ssd capacity {} holds {} regions of {} bytes; at least {} are needed (write buffers + 2)", bytes,
                    regions, region_bytes, write_buffers + 2));
  }
  if (regions > 0xFFFFFF) return Status::invalid_argument("ssd capacity is more than 2^24 regions: use larger regions");
  if (zstd_level < 1 || zstd_level > 19) return Status::invalid_argument("ssd zstd level must be 1..19");
  return {};
}

Result<std::unique_ptr<SsdStore>> SsdStore::open(const SsdStoreOptions& options, const DeviceFactory& factory) {
  KVTIER_RETURN_IF_ERROR(options.validate());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  auto meta = SsdMetadata::open(options.metadata_dir, options.start_empty_if_unreadable, options.sync_writes,
                                options.metadata_env);
  if (!meta.ok()) return meta.status();
  impl->metadata = std::move(meta).value();
  std::unordered_set<uint32_t> replaced;
  KVTIER_RETURN_IF_ERROR(impl->open_files(factory, replaced));
  KVTIER_RETURN_IF_ERROR(impl->recover(replaced));
  for (uint32_t i = 0; i < options.write_buffers + 1; ++i) {  // + the spare for hot-block rewrites
    AlignedBuffer b = aligned_alloc_bytes(options.region_bytes);
    if (!b) return Status::resource_exhausted("allocating SSD write buffers");
    std::memset(b.get(), 0, options.region_bytes);  // fault the pages in now, not on the demotion path
    impl->free_buffers.push_back(b.get());
    impl->buffer_store.push_back(std::move(b));
  }
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->writer_loop(); });
  return std::unique_ptr<SsdStore>(new SsdStore(std::move(impl)));
}

SsdStore::SsdStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SsdStore::~SsdStore() {
  {
    std::unique_lock lock(impl_->mu);
    impl_->queue_filling_locked();
    impl_->stopping = true;
  }
  impl_->changed.notify_all();
  impl_->writer.join();
}

void SsdStore::set_drop_listener(std::function<void(const BlockKey&)> listener) {
  std::lock_guard lock(impl_->mu);
  impl_->drop_listener = std::move(listener);
}

void SsdStore::Impl::notify(const std::vector<BlockKey>& dropped) {
  if (dropped.empty()) return;
  std::function<void(const BlockKey&)> listener;
  {
    std::lock_guard lock(mu);
    listener = drop_listener;
  }
  if (!listener) return;
  for (const BlockKey& k : dropped) listener(k);
}

void SsdStore::Impl::queue_filling_locked() {
  if (filling == kNoRegion) return;
  Region& r = regions[filling];
  if (r.used == 0) {  // nothing written into it: give it back
    r.state = RegionState::kFree;
    free_buffers.push_back(r.buffer);
    r.buffer = nullptr;
    free_regions.push_back(filling);
  } else {
    r.state = RegionState::kQueued;
    write_queue.push_back(filling);
  }
  filling = kNoRegion;
  changed.notify_all();
}

// Places a block's stored bytes in the filling region, opening a new one when it is full.
Status SsdStore::Impl::place_locked(std::unique_lock<std::mutex>& lock, const StoredBlock& proto, const uint8_t* bytes,
                                    bool may_wait, uint64_t* locator) {
  const auto aligned = static_cast<uint32_t>(round_up(proto.stored_bytes, kIoAlign));
  const auto deadline = Clock::now() + std::chrono::milliseconds(options.insert_wait_ms);
  while (filling == kNoRegion || regions[filling].used + aligned > options.region_bytes) {
    if (filling != kNoRegion) queue_filling_locked();
    // One buffer is kept for the writer's rewrites of hot blocks, which must never wait.
    const size_t spare = may_wait ? 1 : 0;
    if (free_buffers.size() > spare && !free_regions.empty()) {
      filling = free_regions.back();
      free_regions.pop_back();
      Region& r = regions[filling];
      r.state = RegionState::kFilling;
      r.buffer = free_buffers.back();
      free_buffers.pop_back();
      r.used = 0;
      r.keys.clear();
      break;
    }
    if (!may_wait || stopping) return Status::resource_exhausted("the SSD writer has no free region buffer");
    changed.notify_all();  // wake the writer: it frees buffers and reclaims regions
    if (changed.wait_until(lock, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
      return Status::resource_exhausted("the SSD tier is writing slower than blocks arrive");
    }
  }
  Region& r = regions[filling];
  StoredBlock b = proto;
  b.region = filling;
  b.region_gen = r.gen;
  b.offset = r.used;
  std::memcpy(r.buffer + r.used, bytes, b.stored_bytes);
  std::memset(r.buffer + r.used + b.stored_bytes, 0, aligned - b.stored_bytes);
  r.used += aligned;
  r.keys.push_back(b.key);
  set_entry(b);
  last_insert = now();
  *locator = locator_of(b);
  return {};
}

Result<uint64_t> SsdStore::insert(const SsdBlockMeta& meta, std::span<const uint8_t> payload, Codec codec) {
  // A block's payload fits a region even when it would be stored compressed (compressed bytes are
  // only kept when fewer), so recovery can bound every catalogue entry's payload by the region size.
  if (payload.empty() || payload.size() > impl_->options.region_bytes) {
    return Status::invalid_argument(
        fmt::format("a {}-byte block does not fit a {}-byte SSD region", payload.size(), impl_->options.region_bytes));
  }
  StoredBlock b;
  b.key = meta.key;
  b.parent_lo = meta.parent_lo;
  b.namespace_id = meta.namespace_id;
  b.payload_bytes = static_cast<uint32_t>(payload.size());
  const uint8_t* stored = payload.data();
  thread_local std::vector<uint8_t> compressed;
  b.codec = Codec::kNone;
  if (codec == Codec::kZstd && zstd_compress(payload, impl_->options.zstd_level, compressed)) {
    b.codec = Codec::kZstd;
    stored = compressed.data();
  }
  b.stored_bytes = b.codec == Codec::kZstd ? static_cast<uint32_t>(compressed.size()) : b.payload_bytes;
  b.checksum = stored_block_checksum(b.key, stored, b.stored_bytes);

  std::unique_lock lock(impl_->mu);
  SsdStats& c = impl_->counters;
  if (auto it = impl_->entries.find(meta.key); it != impl_->entries.end()) return locator_of(it->second.block);
  if (impl_->file_deleted) {
    ++c.inserts_refused;
    return Status::unavailable("an SSD file was deleted underneath; the tier admits nothing until restarted");
  }
  if (impl_->now() < impl_->full_until) {
    ++c.inserts_refused;
    return Status::resource_exhausted("the SSD tier's disk is full (ENOSPC); admitting nothing for now");
  }
  uint64_t locator = 0;
  if (Status s = impl_->place_locked(lock, b, stored, /*may_wait=*/true, &locator); !s.ok()) {
    ++c.inserts_refused;
    return s;
  }
  ++c.inserts;
  if (b.codec == Codec::kZstd) {
    ++c.compressed_blocks;
    c.compressed_payload_bytes += b.payload_bytes;
    c.compressed_stored_bytes += b.stored_bytes;
  }
  return locator;
}

bool SsdStore::contains(const BlockKey& key) const {
  std::lock_guard lock(impl_->mu);
  return impl_->entries.contains(key);
}

Status SsdStore::remove(const BlockKey& key) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->entries.find(key);
  if (it == impl_->entries.end()) return Status::not_found(fmt::format("block {} is not on SSD", key.to_hex()));
  const Impl::RegionState state = impl_->regions[it->second.block.region].state;
  impl_->erase_entry(it);
  // A block of a region not yet committed has no record; one committed has, and must go.
  if (state == Impl::RegionState::kSealed || state == Impl::RegionState::kReclaiming)
    return impl_->metadata->drop_block(key);
  return {};
}

void SsdStore::read(std::span<SsdRead> reads) {
  Impl::ReadPlan plan = impl_->plan_reads(reads);
  if (plan.planned.empty()) return;
  impl_->run_reads(plan, reads);
  impl_->settle_reads(plan, reads);
}

// Misses, bad buffers and blocks still in memory are answered at once; the rest become device
// reads, straight into the caller's buffer where it is aligned and the block stored raw. Each
// planned block's region counts a reader, so it is not reclaimed under the read.
SsdStore::Impl::ReadPlan SsdStore::Impl::plan_reads(std::span<SsdRead> reads) {
  ReadPlan plan;
  plan.ops.resize(devices.size());
  plan.op_plan.resize(devices.size());
  std::lock_guard lock(mu);
  for (size_t i = 0; i < reads.size(); ++i) {
    SsdRead& rd = reads[i];
    ++counters.reads;
    auto it = entries.find(rd.key);
    if (it == entries.end() || regions[it->second.block.region].state == RegionState::kReclaiming) {
      rd.status = Status::not_found("not on SSD");
      ++counters.read_misses;
      continue;
    }
    const StoredBlock& b = it->second.block;
    if (rd.out.size() < b.payload_bytes) {
      rd.status = Status::invalid_argument(
          fmt::format("read buffer of {} bytes for a {}-byte block", rd.out.size(), b.payload_bytes));
      continue;
    }
    Region& reg = regions[b.region];
    if (reg.buffer != nullptr) {  // not yet on the device: served from memory
      const std::span<const uint8_t> src(reg.buffer + b.offset, b.stored_bytes);
      rd.status = b.codec == Codec::kZstd ? zstd_decompress(src, rd.out.first(b.payload_bytes))
                                          : (std::memcpy(rd.out.data(), src.data(), b.stored_bytes), Status());
      rd.bytes = rd.status.ok() ? b.payload_bytes : 0;
      ++it->second.hits;
      ++counters.read_hits;
      continue;
    }
    ++reg.readers;
    const auto len = static_cast<uint32_t>(round_up(b.stored_bytes, kIoAlign));
    PlannedRead p{i, b, nullptr, nullptr, {}};
    const bool direct =
        b.codec == Codec::kNone && rd.out.size() >= len && reinterpret_cast<uintptr_t>(rd.out.data()) % kIoAlign == 0;
    if (direct) {
      p.target = rd.out.data();
    } else {
      p.scratch = aligned_alloc_bytes(len);
      p.target = p.scratch.get();
    }
    const uint32_t dev = device_of(b.region);
    plan.ops[dev].push_back(IoOp{IoOp::Kind::kRead, device_offset(b.region) + b.offset, p.target, len, 0});
    plan.op_plan[dev].push_back(plan.planned.size());
    plan.planned.push_back(std::move(p));
  }
  return plan;
}

// Each block is verified (and decompressed) as soon as its read completes, outside the lock,
// while the device works on the others.
void SsdStore::Impl::run_reads(ReadPlan& plan, std::span<SsdRead> reads) {
  const auto verify = [&](size_t j, int32_t result) {
    PlannedRead& p = plan.planned[j];
    SsdRead& rd = reads[p.read];
    if (result < 0) {
      p.outcome = Status::io_error(fmt::format("reading block {}: {}", rd.key.to_hex(), errno_message(-result)));
    } else if (stored_block_checksum(p.block.key, p.target, p.block.stored_bytes) != p.block.checksum) {
      p.outcome = Status::corruption(fmt::format("block {} failed its checksum on SSD", rd.key.to_hex()));
    } else if (p.block.codec == Codec::kZstd) {
      p.outcome = zstd_decompress({p.target, p.block.stored_bytes}, rd.out.first(p.block.payload_bytes));
    } else if (p.target != rd.out.data()) {
      std::memcpy(rd.out.data(), p.target, p.block.payload_bytes);
    }
  };
  for (size_t d = 0; d < plan.ops.size(); ++d) {
    if (plan.ops[d].empty()) continue;
    std::vector<IoOp>& dev_ops = plan.ops[d];
    const std::vector<size_t>& op_plan = plan.op_plan[d];
    const Status s = devices[d]->run(dev_ops, [&](size_t k) { verify(op_plan[k], dev_ops[k].result); });
    if (!s.ok()) {
      for (size_t k = 0; k < dev_ops.size(); ++k) verify(op_plan[k], -EINVAL);
    }
  }
}

// Outcomes into the caller's batch and the counters; an unreadable or corrupt block is never
// served and is dropped (catalogue too, and the drop listener told) so it is not tried again.
void SsdStore::Impl::settle_reads(ReadPlan& plan, std::span<SsdRead> reads) {
  std::vector<BlockKey> dropped;
  {
    std::lock_guard lock(mu);
    for (PlannedRead& p : plan.planned) {
      SsdRead& rd = reads[p.read];
      Region& reg = regions[p.block.region];
      --reg.readers;
      reg.last_access = ++access_clock;
      auto it = entries.find(rd.key);
      const bool same = it != entries.end() && it->second.block.region == p.block.region &&
                        it->second.block.region_gen == p.block.region_gen;
      rd.status = p.outcome;
      if (p.outcome.ok()) {
        rd.bytes = p.block.payload_bytes;
        ++counters.read_hits;
        counters.bytes_read += round_up(p.block.stored_bytes, kIoAlign);
        if (same) ++it->second.hits;
        continue;
      }
      if (p.outcome.code() == StatusCode::kCorruption) {
        ++counters.corrupt_blocks;
      } else {
        ++counters.read_errors;
      }
      if (same) {
        erase_entry(it);
        (void)metadata->drop_block(rd.key);
        dropped.push_back(rd.key);
      }
    }
    if (!dropped.empty()) changed.notify_all();
  }
  notify(dropped);
}

Status SsdStore::flush() {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  im.queue_filling_locked();
  im.changed.notify_all();
  im.changed.wait(lock, [&] { return im.stopping || (im.write_queue.empty() && !im.writing); });
  return {};
}

void SsdStore::for_each(const std::function<void(const StoredBlock&, uint64_t locator)>& fn) const {
  std::vector<StoredBlock> blocks;
  {
    std::lock_guard lock(impl_->mu);
    blocks.reserve(impl_->entries.size());
    for (const auto& [key, e] : impl_->entries) blocks.push_back(e.block);
  }
  for (const StoredBlock& b : blocks) fn(b, locator_of(b));
}

void SsdStore::check_health() {
  bool deleted = false;
  for (const auto& d : impl_->devices) {
    if (d->detached()) {
      deleted = true;
      std::lock_guard lock(impl_->mu);
      if (!impl_->file_deleted) {
        spdlog::error("ssd: file {} was deleted underneath; serving what it holds, admitting nothing until restart",
                      d->name());
      }
    }
  }
  std::lock_guard lock(impl_->mu);
  impl_->file_deleted = impl_->file_deleted || deleted;
}

uint64_t SsdStore::occupied_bytes() const {
  const Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  const uint64_t free = im.free_regions.size();
  const uint64_t spare = free > im.options.write_buffers ? free - im.options.write_buffers : 0;
  return (im.regions.size() - spare) * im.options.region_bytes;
}

SsdStats SsdStore::stats() const {
  const Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  SsdStats s = im.counters;
  s.region_bytes = im.options.region_bytes;
  s.regions = im.regions.size();
  s.capacity_bytes = s.regions * s.region_bytes;
  s.regions_free = im.free_regions.size();
  for (const auto& r : im.regions) s.regions_sealed += r.state == Impl::RegionState::kSealed ? 1 : 0;
  s.blocks = im.entries.size();
  s.stored_bytes = im.live_stored_bytes;
  s.payload_bytes = im.live_payload_bytes;
  for (const auto& d : im.devices) {
    const DeviceStats ds = d->stats();
    s.short_reads += ds.short_transfers;
  }
  s.full = im.now() < im.full_until;
  s.file_deleted = im.file_deleted;
  lock.unlock();
  s.catalog_memory_bytes = im.metadata->memory_bytes();  // RocksDB's own locks; not under the store's
  return s;
}

}  // namespace kvtier::ssd
