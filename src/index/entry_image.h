// Conversions between an entry's image and what the API and the counters speak.
#pragma once

#include <cstdint>

#include "index/segment_layout.h"
#include "kvtier/block_index.h"

namespace kvtier::index {

inline void set_locator(EntryImage& img, Tier tier, uint64_t locator) {
  switch (tier) {
    case Tier::kHbm: img.hbm = static_cast<uint32_t>(locator); break;
    case Tier::kHost: img.host_loc = static_cast<uint32_t>(locator); break;
    case Tier::kSsd: img.ssd_loc = locator; break;
  }
}

inline uint64_t locator_of(const EntryImage& img, Tier tier) {
  switch (tier) {
    case Tier::kHbm: return img.hbm;
    case Tier::kHost: return img.host_loc;
    case Tier::kSsd: return img.ssd_loc;
  }
  return 0;
}

// Adds (sign +1) or removes (sign -1) one block of `payload` bytes from each tier in `tiers`.
inline void add_tiers(Counters& c, uint8_t tiers, uint32_t payload, int64_t sign) {
  for (Tier t : kAllTiers) {
    if ((tiers & tier_bit(t)) == 0) continue;
    c.tier_entries[tier_index(t)] += static_cast<uint64_t>(sign);
    c.tier_bytes[tier_index(t)] += static_cast<uint64_t>(sign * static_cast<int64_t>(payload));
  }
}

inline BlockInfo to_block_info(const EntryImage& img, uint64_t ctl) {
  BlockInfo b;
  b.key = {img.key_hi, img.key_lo};
  b.parent_lo = img.parent_lo;
  b.namespace_id = img.ns_id;
  b.payload_bytes = img.payload_bytes;
  b.tiers = img.tiers;
  b.host_loc = img.host_loc;
  b.ssd_loc = img.ssd_loc;
  b.hbm_process = static_cast<uint8_t>(img.hbm >> 24);
  b.hbm_block = img.hbm & 0xFFFFFF;
  b.child_count = img.child_count;
  b.last_access = img.last_access;
  b.frequency = img.freq;
  b.pins = pins_of(ctl);
  return b;
}

}  // namespace kvtier::index
