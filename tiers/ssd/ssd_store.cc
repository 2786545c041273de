#include "tiers/ssd/ssd_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/shared_segment.h"  // round_up

namespace kvtier::ssd {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kNoRegion = UINT32_MAX;
constexpr uint64_t kFileHeaderBytes = kSsdFileHeaderBytes;
constexpr char kFileMagic[8] = {'K', 'V', 'T', 'S', 'S', 'D', '0', '1'};
constexpr uint32_t kFormatVersion = 1;

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, AlignedFree>;

AlignedBuffer aligned_alloc_bytes(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kIoAlign, std::max<size_t>(bytes, kIoAlign)) != 0) return nullptr;
  return AlignedBuffer(static_cast<uint8_t*>(p));
}

uint64_t checksum_of(const uint8_t* data, size_t size) {
  const uint64_t sum = XXH3_64bits(data, size);
  return sum != 0 ? sum : 1;
}

// The index's SSD locator: region (24 bits), generation (16), offset in kIoAlign units (24).
uint64_t locator_of(const StoredBlock& b) {
  return (static_cast<uint64_t>(b.region & 0xFFFFFF) << 40) | (static_cast<uint64_t>(b.region_gen & 0xFFFF) << 24) |
         ((b.offset / kIoAlign) & 0xFFFFFF);
}

}  // namespace

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

struct SsdStore::Impl {
  enum class RegionState : uint8_t { kFree, kFilling, kQueued, kWriting, kSealed, kReclaiming };
  struct Region {
    RegionState state = RegionState::kFree;
    uint32_t gen = 1;
    uint32_t used = 0;
    uint8_t* buffer = nullptr;  // while filling, queued or being written
    std::vector<BlockKey> keys;
    uint64_t seal_seq = 0;
    uint64_t last_access = 0;
    uint32_t readers = 0;
    // While being written: the next byte to hand the device, requests not finished, first error.
    uint32_t write_next = 0;
    uint32_t writes_pending = 0;
    int write_error = 0;
  };
  struct Entry {
    StoredBlock block;
    uint32_t hits = 0;  // reads since written
  };

  SsdStoreOptions options;
  std::vector<std::unique_ptr<Device>> devices;
  std::unique_ptr<SsdMetadata> metadata;
  uint64_t regions_per_file = 0;

  mutable std::mutex mu;
  std::condition_variable changed;  // region written/freed, buffer freed, work queued
  std::vector<Region> regions;
  std::vector<uint32_t> free_regions;
  std::unordered_map<BlockKey, Entry, BlockKeyHash> entries;
  std::vector<AlignedBuffer> buffer_store;
  std::vector<uint8_t*> free_buffers;
  std::deque<uint32_t> write_queue;
  uint32_t filling = kNoRegion;
  uint32_t issuing = kNoRegion;  // the region whose writes are being handed to the device
  Clock::time_point last_insert{};
  bool writing = false;
  bool stopping = false;
  uint64_t seal_seq = 0;
  uint64_t access_clock = 0;
  Clock::time_point full_until{};
  bool file_deleted = false;
  std::function<void(const BlockKey&)> drop_listener;
  SsdStats counters;  // the event counters; the gauges are computed in stats()
  std::thread writer;

  uint32_t device_of(uint32_t region) const { return region % static_cast<uint32_t>(devices.size()); }
  uint64_t device_offset(uint32_t region) const {
    return kFileHeaderBytes + (region / devices.size()) * options.region_bytes;
  }

  // --- opening ---
  Status open_files(const DeviceFactory& factory, std::unordered_set<uint32_t>& replaced_files);
  Status recover(const std::unordered_set<uint32_t>& replaced_files);

  // --- under mu ---
  Status place_locked(std::unique_lock<std::mutex>& lock, const StoredBlock& proto, const uint8_t* bytes, bool may_wait,
                      uint64_t* locator);
  void queue_filling_locked();
  void drop_entry_locked(const BlockKey& key, std::vector<BlockKey>& dropped);
  void notify(const std::vector<BlockKey>& dropped);

  // --- writer thread ---
  void writer_loop();
  void stream_writes(std::unique_lock<std::mutex>& lock, uint32_t device);
  bool next_write(uint32_t device, IoOp& op, uint64_t& tag);
  void write_done(uint32_t device, const IoOp& op, uint64_t tag);
  void settle_region(std::unique_lock<std::mutex>& lock, uint32_t region, Status written, int err);
  bool reclaim_one(std::unique_lock<std::mutex>& lock);
};

Status SsdStore::Impl::open_files(const DeviceFactory& factory, std::unordered_set<uint32_t>& replaced_files) {
  const auto nfiles = static_cast<uint64_t>(options.files.size());
  regions_per_file = options.bytes / nfiles / options.region_bytes;
  for (uint32_t i = 0; i < nfiles; ++i) {
    FileDeviceOptions fo;
    fo.path = options.files[i];
    fo.size = kFileHeaderBytes + regions_per_file * options.region_bytes;
    fo.queue_depth = options.queue_depth;
    fo.direct_io = options.direct_io;
    auto dev = factory ? factory(fo) : open_file_device(fo);
    if (!dev.ok()) return dev.status();
    // The file's identity block: a file recreated or replaced since the catalogue was written
    // holds none of the catalogue's blocks.
    AlignedBuffer header = aligned_alloc_bytes(kIoAlign);
    IoOp op{IoOp::Kind::kRead, 0, header.get(), kIoAlign, 0};
    KVTIER_RETURN_IF_ERROR((*dev)->run({&op, 1}));
    const std::string id_key = fmt::format("F{}", i);
    auto recorded = metadata->get(id_key);
    const bool header_ok = op.result > 0 && std::memcmp(header.get(), kFileMagic, sizeof(kFileMagic)) == 0;
    const bool same = header_ok && recorded.ok() && recorded->size() == 16 &&
                      std::memcmp(header.get() + 8, recorded->data(), 16) == 0;
    if (!same) {
      replaced_files.insert(i);
      std::memset(header.get(), 0, kIoAlign);
      std::memcpy(header.get(), kFileMagic, sizeof(kFileMagic));
      std::random_device rd;
      for (int b = 0; b < 16; ++b) header.get()[8 + b] = static_cast<uint8_t>(rd());
      IoOp w{IoOp::Kind::kWrite, 0, header.get(), kIoAlign, 0};
      KVTIER_RETURN_IF_ERROR((*dev)->run({&w, 1}));
      if (w.result < 0) {
        return Status::io_error(
            fmt::format("writing the header of SSD file {}: {}", fo.path, errno_message(-w.result)));
      }
      KVTIER_RETURN_IF_ERROR((*dev)->sync());
      KVTIER_RETURN_IF_ERROR(metadata->put(id_key, std::string_view(reinterpret_cast<char*>(header.get() + 8), 16)));
      if (recorded.ok()) spdlog::warn("ssd: file {} was replaced or rewritten; its cached blocks are dropped", fo.path);
    }
    devices.push_back(std::move(dev).value());
  }
  return {};
}

Status SsdStore::Impl::recover(const std::unordered_set<uint32_t>& replaced_files) {
  const std::string layout = fmt::format("v{} region_bytes={} files={} regions_per_file={}", kFormatVersion,
                                         options.region_bytes, devices.size(), regions_per_file);
  auto recorded = metadata->get("L");
  if (!recorded.ok() || *recorded != layout) {
    if (recorded.ok()) spdlog::warn("ssd: layout changed ({} -> {}); the SSD tier starts empty", *recorded, layout);
    KVTIER_RETURN_IF_ERROR(metadata->clear_catalogue());
    KVTIER_RETURN_IF_ERROR(metadata->put("L", layout));
  }
  regions.assign(regions_per_file * devices.size(), Region{});
  std::vector<BlockKey> stale;
  std::unordered_set<uint32_t> stale_regions;
  KVTIER_RETURN_IF_ERROR(metadata->scan(
      [&](const SealedRegion& r) {
        if (r.region >= regions.size() || replaced_files.contains(device_of(r.region))) {
          stale_regions.insert(r.region);
          return;
        }
        Region& reg = regions[r.region];
        reg.state = RegionState::kSealed;
        reg.gen = r.gen;
        reg.seal_seq = r.seal_seq;
        reg.last_access = r.seal_seq;
        seal_seq = std::max(seal_seq, r.seal_seq);
      },
      [&](const StoredBlock& b) {
        const bool valid = b.region < regions.size() && regions[b.region].state == RegionState::kSealed &&
                           regions[b.region].gen == b.region_gen && b.stored_bytes > 0 &&
                           b.offset + round_up(b.stored_bytes, kIoAlign) <= options.region_bytes;
        if (!valid) {
          stale.push_back(b.key);
          return;
        }
        regions[b.region].keys.push_back(b.key);
        regions[b.region].used = std::max<uint32_t>(
            regions[b.region].used, b.offset + static_cast<uint32_t>(round_up(b.stored_bytes, kIoAlign)));
        entries[b.key] = Entry{b, 0};
      }));
  for (uint32_t r : stale_regions) {
    if (r < regions.size()) regions[r].gen += 1;
    KVTIER_RETURN_IF_ERROR(metadata->release_region(r, {}));
  }
  for (const BlockKey& k : stale) KVTIER_RETURN_IF_ERROR(metadata->drop_block(k));
  access_clock = seal_seq;
  for (auto r = static_cast<uint32_t>(regions.size()); r-- > 0;) {
    Region& reg = regions[r];
    if (reg.state == RegionState::kSealed && reg.keys.empty()) {
      // Sealed but holding nothing live: free it (and its record) now.
      KVTIER_RETURN_IF_ERROR(metadata->release_region(r, {}));
      reg.state = RegionState::kFree;
      reg.gen += 1;
    }
    if (reg.state == RegionState::kFree) free_regions.push_back(r);
  }
  counters.recovered_blocks = entries.size();
  counters.recovery_dropped_records = stale.size();
  counters.metadata_recreated = metadata->recreated();
  return {};
}

Result<std::unique_ptr<SsdStore>> SsdStore::open(const SsdStoreOptions& options, const DeviceFactory& factory) {
  KVTIER_RETURN_IF_ERROR(options.validate());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  auto meta = SsdMetadata::open(options.metadata_dir, options.start_empty_if_unreadable, options.sync_writes);
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

void SsdStore::Impl::drop_entry_locked(const BlockKey& key, std::vector<BlockKey>& dropped) {
  if (entries.erase(key) > 0) dropped.push_back(key);
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
  entries[b.key] = Entry{b, 0};
  last_insert = Clock::now();
  *locator = locator_of(b);
  return {};
}

Result<uint64_t> SsdStore::insert(const SsdBlockMeta& meta, std::span<const uint8_t> payload, Codec codec) {
  if (payload.empty() || payload.size() > UINT32_MAX) return Status::invalid_argument("SSD block size out of range");
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
  if (round_up(b.stored_bytes, kIoAlign) > impl_->options.region_bytes) {
    return Status::invalid_argument(
        fmt::format("a {}-byte block does not fit a {}-byte SSD region", b.stored_bytes, impl_->options.region_bytes));
  }
  b.checksum = checksum_of(stored, b.stored_bytes);

  std::unique_lock lock(impl_->mu);
  SsdStats& c = impl_->counters;
  if (auto it = impl_->entries.find(meta.key); it != impl_->entries.end()) return locator_of(it->second.block);
  if (impl_->file_deleted) {
    ++c.inserts_refused;
    return Status::unavailable("an SSD file was deleted underneath; the tier admits nothing until restarted");
  }
  if (Clock::now() < impl_->full_until) {
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
  impl_->entries.erase(it);
  // A block of a region not yet committed has no record; one committed has, and must go.
  if (state == Impl::RegionState::kSealed || state == Impl::RegionState::kReclaiming)
    return impl_->metadata->drop_block(key);
  return {};
}

void SsdStore::read(std::span<SsdRead> reads) {
  Impl& im = *impl_;
  struct Planned {
    size_t read;
    StoredBlock block;
    uint8_t* target;
    AlignedBuffer scratch;
  };
  std::vector<Planned> planned;
  std::vector<std::vector<IoOp>> ops(im.devices.size());
  std::vector<std::vector<size_t>> op_plan(im.devices.size());
  {
    std::lock_guard lock(im.mu);
    for (size_t i = 0; i < reads.size(); ++i) {
      SsdRead& rd = reads[i];
      ++im.counters.reads;
      auto it = im.entries.find(rd.key);
      if (it == im.entries.end() || im.regions[it->second.block.region].state == Impl::RegionState::kReclaiming) {
        rd.status = Status::not_found("not on SSD");
        ++im.counters.read_misses;
        continue;
      }
      const StoredBlock& b = it->second.block;
      if (rd.out.size() < b.payload_bytes) {
        rd.status = Status::invalid_argument(
            fmt::format("read buffer of {} bytes for a {}-byte block", rd.out.size(), b.payload_bytes));
        continue;
      }
      Impl::Region& reg = im.regions[b.region];
      if (reg.buffer != nullptr) {  // not yet on the device: served from memory
        const std::span<const uint8_t> src(reg.buffer + b.offset, b.stored_bytes);
        rd.status = b.codec == Codec::kZstd ? zstd_decompress(src, rd.out.first(b.payload_bytes))
                                            : (std::memcpy(rd.out.data(), src.data(), b.stored_bytes), Status());
        rd.bytes = rd.status.ok() ? b.payload_bytes : 0;
        ++it->second.hits;
        ++im.counters.read_hits;
        continue;
      }
      ++reg.readers;
      const auto len = static_cast<uint32_t>(round_up(b.stored_bytes, kIoAlign));
      Planned p{i, b, nullptr, nullptr};
      const bool direct =
          b.codec == Codec::kNone && rd.out.size() >= len && reinterpret_cast<uintptr_t>(rd.out.data()) % kIoAlign == 0;
      if (direct) {
        p.target = rd.out.data();
      } else {
        p.scratch = aligned_alloc_bytes(len);
        p.target = p.scratch.get();
      }
      const uint32_t dev = im.device_of(b.region);
      ops[dev].push_back(IoOp{IoOp::Kind::kRead, im.device_offset(b.region) + b.offset, p.target, len, 0});
      op_plan[dev].push_back(planned.size());
      planned.push_back(std::move(p));
    }
  }
  if (planned.empty()) return;
  // Each block is verified (and decompressed) as soon as its read completes, outside the lock,
  // while the device works on the others.
  std::vector<Status> outcome(planned.size());
  const auto verify = [&](size_t j, int32_t result) {
    Planned& p = planned[j];
    SsdRead& rd = reads[p.read];
    if (result < 0) {
      outcome[j] = Status::io_error(fmt::format("reading block {}: {}", rd.key.to_hex(), errno_message(-result)));
    } else if (checksum_of(p.target, p.block.stored_bytes) != p.block.checksum) {
      outcome[j] = Status::corruption(fmt::format("block {} failed its checksum on SSD", rd.key.to_hex()));
    } else if (p.block.codec == Codec::kZstd) {
      outcome[j] = zstd_decompress({p.target, p.block.stored_bytes}, rd.out.first(p.block.payload_bytes));
    } else if (p.target != rd.out.data()) {
      std::memcpy(rd.out.data(), p.target, p.block.payload_bytes);
    }
  };
  for (size_t d = 0; d < ops.size(); ++d) {
    if (ops[d].empty()) continue;
    std::vector<IoOp>& dev_ops = ops[d];
    const std::vector<size_t>& plan = op_plan[d];
    const Status s = im.devices[d]->run(dev_ops, [&](size_t k) { verify(plan[k], dev_ops[k].result); });
    if (!s.ok()) {
      for (size_t k = 0; k < dev_ops.size(); ++k) verify(plan[k], -EINVAL);
    }
  }
  std::vector<BlockKey> dropped;
  {
    std::lock_guard lock(im.mu);
    for (size_t j = 0; j < planned.size(); ++j) {
      Planned& p = planned[j];
      SsdRead& rd = reads[p.read];
      Impl::Region& reg = im.regions[p.block.region];
      --reg.readers;
      reg.last_access = ++im.access_clock;
      auto it = im.entries.find(rd.key);
      const bool same = it != im.entries.end() && it->second.block.region == p.block.region &&
                        it->second.block.region_gen == p.block.region_gen;
      rd.status = outcome[j];
      if (outcome[j].ok()) {
        rd.bytes = p.block.payload_bytes;
        ++im.counters.read_hits;
        im.counters.bytes_read += round_up(p.block.stored_bytes, kIoAlign);
        if (same) ++it->second.hits;
        continue;
      }
      // Unreadable or corrupt: never served, dropped so it is not tried again.
      if (outcome[j].code() == StatusCode::kCorruption) {
        ++im.counters.corrupt_blocks;
      } else {
        ++im.counters.read_errors;
      }
      if (same) {
        im.entries.erase(it);
        (void)im.metadata->drop_block(rd.key);
        dropped.push_back(rd.key);
      }
    }
    if (!dropped.empty()) im.changed.notify_all();
  }
  im.notify(dropped);
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

SsdStats SsdStore::stats() const {
  const Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  SsdStats s = im.counters;
  s.region_bytes = im.options.region_bytes;
  s.regions = im.regions.size();
  s.capacity_bytes = s.regions * s.region_bytes;
  s.regions_free = im.free_regions.size();
  for (const auto& r : im.regions) s.regions_sealed += r.state == Impl::RegionState::kSealed ? 1 : 0;
  s.blocks = im.entries.size();
  for (const auto& [key, e] : im.entries) {
    s.stored_bytes += e.block.stored_bytes;
    s.payload_bytes += e.block.payload_bytes;
  }
  for (const auto& d : im.devices) {
    const DeviceStats ds = d->stats();
    s.short_reads += ds.short_transfers;
  }
  s.full = Clock::now() < im.full_until;
  s.file_deleted = im.file_deleted;
  return s;
}

// --- the writer ---

void SsdStore::Impl::writer_loop() {
  std::unique_lock lock(mu);
  while (true) {
    const bool idle_flush = filling != kNoRegion && regions[filling].used > 0 &&
                            Clock::now() - last_insert >= std::chrono::milliseconds(options.flush_after_ms);
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
        entries.erase(it);
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
      full_until = Clock::now() + std::chrono::milliseconds(options.full_backoff_ms);
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
  for (const StoredBlock& b : live) entries.erase(b.key);
  reg.gen += 1;
  reg.state = RegionState::kFree;
  reg.keys.clear();
  reg.used = 0;
  free_regions.push_back(victim);
  ++counters.regions_reclaimed;

  std::unordered_set<BlockKey, BlockKeyHash> reinserted;
  for (size_t i = 0; i < hot.size() && read_ok; ++i) {
    if (ops[i].result < 0 || checksum_of(hot_bytes[i].get(), hot[i].stored_bytes) != hot[i].checksum) continue;
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
