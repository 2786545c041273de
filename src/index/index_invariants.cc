// A full structural check of the index, for tests and operators (`kvtier` will expose it).
#include <fmt/format.h>

#include <unordered_set>

#include "index/entry_access.h"
#include "index/entry_image.h"
#include "index/index_writer.h"

namespace kvtier::index {

Status IndexWriter::check_invariants() const {
  const SegmentHeader& h = seg_.header();
  const auto broken = [](const std::string& what) { return Status::corruption("index invariant broken: " + what); };
  if (seg_.journal().active.load(std::memory_order_acquire) != 0) return broken("a journal record is still active");
  if ((h.shift_seq.value.load(std::memory_order_acquire) & 1) != 0) return broken("a backward shift is unfinished");
  const uint32_t live = h.live_mask.load(std::memory_order_acquire);
  const uint32_t draining = h.draining_mask.load(std::memory_order_acquire);

  Counters recount;
  std::unordered_set<BlockKey> seen;
  for (uint64_t s = 0; s < seg_.slots(); ++s) {
    const uint64_t ctl = seg_.entry(s).ctl.load(std::memory_order_acquire);
    if (version_odd(ctl)) return broken(fmt::format("slot {} is left mid-write", s));
    const EntryImage img = image(s);
    const uint8_t tag = load_relaxed(seg_.tag(s));
    if (tag != (img.tiers == 0 ? 0 : tag_of(img.key_hi))) {
      return broken(fmt::format("slot {} has tag {:#x} for tiers {:#x}", s, tag, img.tiers));
    }
    if (img.tiers == 0) {
      if (pins_of(ctl) != 0) return broken(fmt::format("empty slot {} holds pins {:#x}", s, pins_of(ctl)));
      continue;
    }
    if ((img.tiers & ~0x7u) != 0) return broken(fmt::format("slot {} has tier bits {:#x}", s, img.tiers));
    const BlockKey key{img.key_hi, img.key_lo};
    if (!seen.insert(key).second) return broken(fmt::format("block {} is in the table twice", key.to_hex()));
    // Linear probing: no empty slot may lie between a key's home and where it sits.
    for (uint64_t p = seg_.home(img.key_lo); p != s; p = seg_.next(p)) {
      if (load_relaxed(seg_.entry(p).tiers) == 0) {
        return broken(fmt::format("block {} at slot {} is cut off from its home {} by empty slot {}", key.to_hex(), s,
                                  seg_.home(img.key_lo), p));
      }
    }
    const uint32_t foreign = pins_of(ctl) & ~live & ~draining;
    if (foreign != 0) return broken(fmt::format("slot {} is pinned by departed processes {:#x}", s, foreign));
    ++recount.entries;
    add_tiers(recount, img.tiers, img.payload_bytes, +1);
  }
  const Counters c = counters();
  if (c.entries != recount.entries)
    return broken(fmt::format("{} entries counted, {} found", c.entries, recount.entries));
  if (c.entries > seg_.capacity())
    return broken(fmt::format("{} entries over capacity {}", c.entries, seg_.capacity()));
  for (Tier t : kAllTiers) {
    const size_t i = tier_index(t);
    if (c.tier_entries[i] != recount.tier_entries[i] || c.tier_bytes[i] != recount.tier_bytes[i]) {
      return broken(fmt::format("{} tier counters say {} blocks / {} bytes, the table holds {} / {}", tier_name(t),
                                c.tier_entries[i], c.tier_bytes[i], recount.tier_entries[i], recount.tier_bytes[i]));
    }
  }
  return {};
}

}  // namespace kvtier::index
