// Opening the SSD tier: each file's identity checked against the catalogue, then every block
// record trusted only if its region's record agrees (docs/ssd.md, "Durability rule").
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "common/shared_segment.h"  // round_up
#include "tiers/ssd/ssd_store_impl.h"

namespace kvtier::ssd {
namespace {

// Whether a catalogue entry read back from disk describes a block this store could have written:
// a known codec, stored bytes that are the payload (raw) or some bytes (zstd), a payload no larger
// than a region (insert's rule), an aligned offset and the whole block inside its region. Reads and
// the node trust these fields (buffer sizes, copies, the index's block sizes), so an entry damaged on
// disk is dropped here rather than read. Whether the bytes are the key's is the checksum's question.
bool entry_is_sound(const StoredBlock& b, uint64_t region_bytes) {
  const bool sizes = (b.codec == Codec::kNone && b.stored_bytes == b.payload_bytes) ||
                     (b.codec == Codec::kZstd && b.payload_bytes > 0 && b.payload_bytes <= region_bytes);
  return sizes && b.stored_bytes > 0 && b.offset % kIoAlign == 0 &&
         uint64_t{b.offset} + round_up(b.stored_bytes, kIoAlign) <= region_bytes;
}

}  // namespace

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
                           regions[b.region].gen == b.region_gen && entry_is_sound(b, options.region_bytes);
        if (!valid) {
          stale.push_back(b.key);
          return;
        }
        regions[b.region].keys.push_back(b.key);
        regions[b.region].used = std::max<uint32_t>(
            regions[b.region].used, b.offset + static_cast<uint32_t>(round_up(b.stored_bytes, kIoAlign)));
        set_entry(b);
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

}  // namespace kvtier::ssd
