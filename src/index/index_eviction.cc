// Eviction: a clock hand sweeps the table gathering a sample of allowed candidates; the policy's
// highest rank among them goes (sampled LRU, as Redis and CacheLib do it, with no shared list to
// update on the read path). Pinned blocks are never candidates. Runs under the writer lock.
#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "index/entry_access.h"
#include "index/entry_image.h"
#include "index/evicted_uses.h"
#include "index/index_writer.h"
#include "index/reuse_learning.h"

namespace kvtier::index {
namespace {

constexpr uint64_t kSample = 16;  // candidates compared per victim

// A host copy of an SSD-resident block that was brought up or used this recently is passed over
// (≈ 2 s in 1/1024 s ticks): the daemon promotes blocks because an engine is about to acquire them,
// and such a copy, which costs nothing to drop (the SSD keeps the block), would otherwise be the
// first victim of the next upkeep whenever it is a chain's leaf. A preference, not a rule: when a
// whole sweep finds nothing else (every host block is such a copy, and in use: a working set
// larger than the host tier), they are taken too, or the tier could never make room
// (kvtier-bench soak found the host tier full, promotions failing and puts refused for good).
constexpr uint32_t kRecentHostCopyGraceTicks = 2048;

}  // namespace

struct IndexWriter::Victim {
  uint64_t slot = kNoSlot;
  EntryImage img;
  uint64_t ctl = 0;
  EvictionAction action = EvictionAction::kDrop;
  uint64_t rank = 0;
};

// A batch's chosen victims (eviction_candidates). A leaf's parent becomes a leaf once the leaf
// is chosen: without that, a batch could take only today's leaves, and a batch as large as the
// host tier's chain count (the daemon demotes 5 % of host memory at a time) trimmed every chain
// by a block instead of dropping the coldest chains whole (the policy study measured prefix-
// frequency at 0.059 of blocks instead of 0.080 on Mooncake's conversation trace, 1M tokens).
class IndexWriter::ChosenVictims {
 public:
  explicit ChosenVictims(const IndexWriter& writer) : writer_(writer) {}
  bool taken(uint64_t slot) const { return taken_.contains(slot); }
  uint32_t children_taken(uint64_t slot) const {
    const auto it = children_taken_.find(slot);
    return it == children_taken_.end() ? 0 : it->second;
  }
  void take(uint64_t slot, const EntryImage& img) {
    taken_.insert(slot);
    if (const uint64_t parent = writer_.find_slot_by_lo(img.parent_lo); parent != kNoSlot) ++children_taken_[parent];
  }

 private:
  const IndexWriter& writer_;
  std::unordered_set<uint64_t> taken_;
  std::unordered_map<uint64_t, uint32_t> children_taken_;
};

// One sweep of the clock hand: among up to kSample unpinned blocks resident in any of `tiers`
// that the policy allows for `action_of(block)`, the highest ranked. Stops after the table's
// worth of slots counted in `scanned`; an empty Victim when none qualified. Host eviction passes
// over recent host copies of SSD-resident blocks (kRecentHostCopyGraceTicks).
template <typename ActionOf, typename Chosen>
IndexWriter::Victim IndexWriter::sample_victim(uint8_t tiers, const EvictionPolicy& policy, ActionOf action_of,
                                               uint64_t& scanned, uint64_t& skipped_pinned, const Chosen& chosen,
                                               bool spare_recent_copies) {
  SegmentHeader& h = seg_.header();
  const uint32_t now = seg_.now_ticks();
  Victim best;
  uint64_t hand = h.clock_hand.load(std::memory_order_relaxed) % seg_.slots();
  for (uint64_t sampled = 0; sampled < kSample && scanned < seg_.slots(); hand = seg_.next(hand), ++scanned) {
    const EntryImage img = image(hand);
    if ((img.tiers & tiers) == 0 || chosen.taken(hand)) continue;
    if (spare_recent_copies && tiers == tier_bit(Tier::kHost) && (img.tiers & tier_bit(Tier::kSsd)) != 0 &&
        now - img.last_access < kRecentHostCopyGraceTicks) {
      continue;
    }
    const uint64_t ctl = seg_.entry(hand).ctl.load(std::memory_order_acquire);
    if (effective_pins(ctl) != 0) {
      ++skipped_pinned;
      continue;
    }
    const EvictionAction action = action_of(img);
    const auto children =
        static_cast<uint16_t>(img.child_count - std::min<uint32_t>(img.child_count, chosen.children_taken(hand)));
    const EvictionCandidate c = candidate(img, now, children);
    if (!policy.may_evict(c, action)) continue;
    ++sampled;
    const uint64_t rank = policy.rank(c);
    if (best.slot == kNoSlot || rank > best.rank) best = Victim{hand, img, ctl, action, rank};
  }
  h.clock_hand.store(hand, std::memory_order_relaxed);
  return best;
}

// What evicting a block from `tier` means: it stays cached (another tier holds it) or it leaves
// the cache. Copies to a lower tier are the node's mover's to make before it evicts
// (server/node/tier_mover.h): the index never writes to a tier.
EvictionAction IndexWriter::action_of(const EntryImage& img, Tier tier) {
  return (img.tiers & ~tier_bit(tier)) != 0 ? EvictionAction::kDemote : EvictionAction::kDrop;
}

// Evicts one chosen victim from `tier`; false if it could not go (pinned meanwhile).
bool IndexWriter::evict_victim(const Victim& best, Tier tier, EvictionListener* listener, EvictionReport& report) {
  const uint8_t bit = tier_bit(tier);
  const uint8_t ssd = tier_bit(Tier::kSsd);
  const BlockInfo info = to_block_info(best.img, best.ctl);
  if ((best.img.tiers & ~bit) != 0) {
    EntryImage kept = best.img;
    kept.tiers &= static_cast<uint8_t>(~bit);
    set_locator(kept, tier, 0);
    Mutation m;
    m.after = counters();
    add_tiers(m.after, bit, kept.payload_bytes, -1);
    ++m.after.evictions;
    // Leaving host memory for a copy on SSD is a move (a demotion); any other loss of one tier, a removal.
    const bool to_ssd = tier == Tier::kHost && (kept.tiers & ssd) != 0;
    if (to_ssd) ++m.after.demotions;
    m.add(JournalOp::kWriteIfUnpinned, best.slot, kept);
    m.record_change(to_ssd ? IndexChange::Kind::kMoved : IndexChange::Kind::kRemoved, kept, best.img.tiers, kept.tiers);
    if (commit(m) == Applied::kVoidedByPin) {
      ++report.candidates_skipped_pinned;
      return false;
    }
    ++report.blocks_demoted;  // still cached in another tier
  } else {
    if (!remove_slot(best.slot, best.img, /*count_eviction=*/true).ok()) {
      ++report.candidates_skipped_pinned;
      return false;
    }
    ++report.blocks_dropped;
  }
  if (listener != nullptr) listener->released(info, tier);
  report.bytes_freed += info.payload_bytes;
  return true;
}

Result<EvictionReport> IndexWriter::evict(Tier tier, uint64_t bytes, const EvictionPolicy& policy,
                                          EvictionListener* listener) {
  const auto action = [&](const EntryImage& img) { return action_of(img, tier); };
  EvictionReport report;
  uint64_t scanned_since_victim = 0;
  bool spare_recent = true;
  while (report.bytes_freed < bytes) {
    if (scanned_since_victim >= seg_.slots()) {
      if (!spare_recent) break;  // the whole table, twice: nothing can go
      spare_recent = false;      // a sweep found nothing but recent copies: take them too
      scanned_since_victim = 0;
    }
    const Victim best = sample_victim(tier_bit(tier), policy, action, scanned_since_victim,
                                      report.candidates_skipped_pinned, NoneChosen{}, spare_recent);
    if (best.slot == kNoSlot) continue;  // nothing qualified in this sweep
    if (evict_victim(best, tier, listener, report)) scanned_since_victim = 0;
  }
  return report;
}

Result<EvictionReport> IndexWriter::evict_keys(Tier tier, std::span<const BlockKey> keys, const EvictionPolicy& policy,
                                               EvictionListener* listener) {
  EvictionReport report;
  const uint32_t now = seg_.now_ticks();
  std::vector<bool> done(keys.size(), false);
  // Rounds until nothing more goes: dropping a leaf can make its parent, also listed, a leaf.
  for (bool progress = true; progress;) {
    progress = false;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (done[i]) continue;
      const uint64_t slot = find_slot(keys[i].hi, keys[i].lo);
      Victim v;
      v.slot = slot;
      if (slot != kNoSlot) v.img = image(slot);
      if (slot == kNoSlot || (v.img.tiers & tier_bit(tier)) == 0) {
        done[i] = true;
        continue;
      }
      v.ctl = seg_.entry(slot).ctl.load(std::memory_order_acquire);
      if (effective_pins(v.ctl) != 0) {
        ++report.candidates_skipped_pinned;
        done[i] = true;
        continue;
      }
      v.action = action_of(v.img, tier);
      if (!policy.may_evict(candidate(v.img, now, v.img.child_count), v.action))
        continue;  // perhaps after its children go
      done[i] = true;
      progress = evict_victim(v, tier, listener, report) || progress;
    }
  }
  return report;
}

// Whether `img` was used `min_uses` times, or one of its nearest `hops` ancestors still in the
// index was: it extends a prefix that came back.
IndexWriter::Reuse IndexWriter::reused(const EntryImage& img, uint32_t min_uses, uint32_t hops) const {
  if (img.freq >= min_uses) return Reuse::kItself;
  uint64_t parent_lo = img.parent_lo;
  for (uint32_t hop = 0; hop < hops; ++hop) {
    const uint64_t slot = find_slot_by_lo(parent_lo);
    if (slot == kNoSlot) return Reuse::kNone;  // a chain head's parent (its namespace root), or evicted
    const EntryImage up = image(slot);
    if (up.freq >= min_uses) return Reuse::kAncestor;
    parent_lo = up.parent_lo;
  }
  return Reuse::kNone;
}

std::vector<EvictionVictim> IndexWriter::eviction_candidates(Tier tier, uint64_t bytes, const EvictionPolicy& policy,
                                                             const DemotionBar& bar) {
  const uint8_t bit = tier_bit(tier);
  const uint8_t below = tier == Tier::kHost ? tier_bit(Tier::kSsd) : 0;
  const uint32_t now = seg_.now_ticks();
  const auto judge = [&](const EntryImage& img) {
    if ((img.tiers & below) != 0) return DemotionVerdict::kHeldBelow;
    const Reuse reuse = reused(img, bar.min_uses, bar.ancestor_hops);
    if (reuse == Reuse::kNone) return DemotionVerdict::kCold;
    if (bar.displaced && !policy.admits(candidate(img, now, img.child_count), *bar.displaced)) {
      return DemotionVerdict::kWorthLess;
    }
    return reuse == Reuse::kItself ? DemotionVerdict::kWrite : DemotionVerdict::kWriteForItsPrefix;
  };
  // A block cached elsewhere, or one to write below, would be demoted; any other would be
  // dropped, so the policy judges it as a drop (prefix-aware: leaves only).
  const auto action = [&](const EntryImage& img) {
    if ((img.tiers & ~bit) != 0) return EvictionAction::kDemote;
    const DemotionVerdict v = judge(img);
    return v == DemotionVerdict::kWrite || v == DemotionVerdict::kWriteForItsPrefix ? EvictionAction::kDemote
                                                                                    : EvictionAction::kDrop;
  };
  std::vector<EvictionVictim> out;
  ChosenVictims chosen(*this);
  uint64_t total = 0, scanned_since_victim = 0, skipped_pinned = 0;
  bool spare_recent = true;
  // As evict() does, but nothing leaves: already chosen slots are passed over instead.
  while (total < bytes) {
    if (scanned_since_victim >= seg_.slots()) {
      if (!spare_recent) break;
      spare_recent = false;
      scanned_since_victim = 0;
    }
    const Victim best =
        sample_victim(tier_bit(tier), policy, action, scanned_since_victim, skipped_pinned, chosen, spare_recent);
    if (best.slot == kNoSlot) continue;
    chosen.take(best.slot, best.img);
    out.push_back(EvictionVictim{to_block_info(best.img, best.ctl), best.action, judge(best.img)});
    total += best.img.payload_bytes;
    scanned_since_victim = 0;
  }
  return out;
}

// The victim is the one evict() would take next, so the clock hand is put back: judging a put
// must not move eviction on (moving it twice as fast cost the study 0.005 of hits at 1M).
std::optional<EvictionCandidate> IndexWriter::next_victim(Tier tier, const EvictionPolicy& policy) {
  const auto action = [&](const EntryImage& img) { return action_of(img, tier); };
  std::atomic<uint64_t>& clock_hand = seg_.header().clock_hand;
  const uint64_t hand = clock_hand.load(std::memory_order_relaxed);
  uint64_t scanned = 0, skipped_pinned = 0;
  Victim v;
  while (v.slot == kNoSlot && scanned < seg_.slots()) {
    v = sample_victim(tier_bit(tier), policy, action, scanned, skipped_pinned);
  }
  clock_hand.store(hand, std::memory_order_relaxed);
  if (v.slot == kNoSlot) return std::nullopt;
  return candidate(v.img, seg_.now_ticks(), v.img.child_count);
}

EvictionCandidate IndexWriter::candidate(const EntryImage& img, uint32_t now, uint16_t children) const {
  const uint32_t age = now - img.last_access;
  return EvictionCandidate{age, children, img.freq, img.payload_bytes, hit_density(seg_.learning(), img.freq, age)};
}

PutVerdict IndexWriter::admit(const BlockKey& key, const BlockKey& parent, Tier tier, const EvictionPolicy& policy) {
  if (find_slot(key.hi, key.lo) != kNoSlot) return PutVerdict::kUnjudged;  // cached already
  // A chain the node holds no prefix of is admitted, on probation: such chains are often the first
  // of many uses (shared prompts), and judging them cost Mooncake's synthetic trace 0.016 of its
  // hits at 3M host tokens, below exact LRU. Its eviction judges it once it is in.
  if (find_slot(parent.hi, parent.lo) == kNoSlot) return PutVerdict::kAdmitted;
  const auto uses = static_cast<uint8_t>(1 + remembered_uses(seg_, key.hi, key.lo));
  const EvictionCandidate newcomer{0, 0, uses, 0, hit_density(seg_.learning(), uses, 0)};
  const std::optional<EvictionCandidate> victim = next_victim(tier, policy);
  if (!victim) return PutVerdict::kAdmitted;  // nothing could make room: the put finds out
  if (policy.admits(newcomer, *victim)) return PutVerdict::kAdmitted;
  refuse(key);
  return PutVerdict::kRefused;
}

void IndexWriter::refuse(const BlockKey& key) {
  if (find_slot(key.hi, key.lo) != kNoSlot) return;  // cached after all (another process put it)
  const uint32_t now = seg_.now_ticks();
  const auto uses = static_cast<uint8_t>(1 + recalled_uses(seg_, key.hi, key.lo, now));  // back: its return counts
  remember_uses(seg_, key.hi, key.lo, uses, now, now);
  seg_.header().puts_not_admitted.fetch_add(1, std::memory_order_relaxed);
}

// The table is full: drop one block from every tier, chosen by the policy among droppable ones.
Status IndexWriter::evict_one_for_room(const EvictionPolicy& policy, EvictionListener* listener) {
  const auto drop = [](const EntryImage&) { return EvictionAction::kDrop; };
  uint64_t skipped_pinned = 0;
  for (uint64_t scanned = 0; scanned < seg_.slots();) {
    const Victim best = sample_victim(0x7, policy, drop, scanned, skipped_pinned);
    if (best.slot == kNoSlot) continue;
    if (!remove_slot(best.slot, best.img, /*count_eviction=*/true).ok()) continue;  // pinned meanwhile
    if (listener != nullptr) {
      const BlockInfo info = to_block_info(best.img, best.ctl);
      for (Tier t : kAllTiers) {
        if (info.in(t)) listener->released(info, t);
      }
    }
    return {};
  }
  return Status::resource_exhausted(fmt::format(
      "index is full ({} blocks) and every block is pinned or must be kept for a cached descendant", seg_.capacity()));
}

}  // namespace kvtier::index
