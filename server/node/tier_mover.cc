#include "server/node/tier_mover.h"
#include "index/index_mechanics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace kvtier::node {

TierMover::TierMover(BlockIndex& index, tiers::TierStore& host, tiers::TierStore* ssd,
                     const ssd::AdmissionOptions& admission, const Clock* clock)
    : index_(index), host_(host), ssd_(ssd), clock_(clock_or_steady(clock)), admission_(admission) {
  releaser_.serve(Tier::kHost, &host_);
  releaser_.serve(Tier::kSsd, ssd_);
  index::IndexMechanics::set_eviction_listener(index_, &releaser_);
}

TierMover::~TierMover() { index::IndexMechanics::set_eviction_listener(index_, nullptr); }

// Copies one pinned host victim into the SSD tier and records it there. An error: the SSD tier
// refused it; false: the index did not take the record (the copy is given up).
Result<bool> TierMover::copy_to_ssd(const BlockInfo& victim) {
  const tiers::TierBlock block{victim.key, victim.parent_lo, victim.namespace_id, victim.payload_bytes};
  // Host bytes are addressable (the arena is mapped here): the SSD tier copies them in place.
  const std::span<const uint8_t> payload = host_.view(victim.host_loc, victim.payload_bytes);
  KVTIER_ASSIGN_OR_RETURN(const uint64_t locator, ssd_->insert(block, payload));
  const Status recorded = index_.insert(BlockRecord{victim.key, BlockKey{0, victim.parent_lo}, victim.namespace_id,
                                                    victim.payload_bytes, Tier::kSsd, locator});
  if (!recorded.ok()) {
    ssd_->abandon(victim.key, locator);
    return false;
  }
  (void)ssd_->commit(locator);
  return true;
}

// Two phases, so that no SSD work happens under the index's writer lock:
//   1. the policy's first victims are chosen, each judged as a demotion or a drop by the bar
//      (demotion_bar: the block's or a near ancestor's uses, and on a full SSD tier what a copy
//      would push out there; prefix-aware keeps inner blocks that would be dropped); each one to
//      write is pinned quietly (a pin that is not a use), copied into the SSD tier and recorded;
//   2. exactly those victims are evicted from host memory: the copied ones stay cached on SSD, the
//      others are dropped where the policy allows.
// Blocks put between the phases are never touched: a fresh leaf is not dropped for lack of a copy.
Result<size_t> TierMover::demote(uint64_t bytes, EvictionReport* out) {
  std::lock_guard guard(move_mu_);
  const uint64_t want = std::max(bytes, host_bytes_over_watermark());
  if (want == 0) return size_t{0};
  const auto policy = index_.eviction_policy();
  const std::vector<index::EvictionVictim> victims =
      index::IndexMechanics::eviction_candidates(index_, Tier::kHost, want, *policy, demotion_bar());
  std::vector<BlockKey> keys;
  keys.reserve(victims.size());
  for (const index::EvictionVictim& v : victims) keys.push_back(v.block.key);
  size_t written = 0;
  if (ssd_ != nullptr) {
    for (const index::EvictionVictim& v : victims) {
      const BlockInfo& c = v.block;
      switch (v.verdict) {
        case index::DemotionVerdict::kHeldBelow: continue;
        case index::DemotionVerdict::kCold: admission_.reject_cold(); continue;
        case index::DemotionVerdict::kWorthLess:
          declined_.fetch_add(1, std::memory_order_relaxed);  // worth less than what it would push out
          continue;
        case index::DemotionVerdict::kWrite:
        case index::DemotionVerdict::kWriteForItsPrefix: break;
      }
      if (!admission_.admit(c.payload_bytes, clock_.now())) continue;  // over the write budget
      auto leases = index_.acquire({&c.key, 1}, BlockIndex::AccessMode::kQuiet);
      if (!leases.ok()) return leases.status();
      if (leases->empty() || !leases->front().info().in(Tier::kHost)) continue;  // gone meanwhile
      const auto copied = copy_to_ssd(leases->front().info());
      if (copied.ok()) {
        written += *copied ? 1 : 0;
        if (*copied && v.verdict == index::DemotionVerdict::kWriteForItsPrefix) {
          for_prefix_.fetch_add(1, std::memory_order_relaxed);
        }
        continue;
      }
      demote_refused_.fetch_add(1, std::memory_order_relaxed);
      // Full or failing: stop writing this pass; eviction below drops what it must.
      if (copied.status().code() == StatusCode::kResourceExhausted ||
          copied.status().code() == StatusCode::kUnavailable) {
        break;
      }
    }
  }
  demoted_.fetch_add(written, std::memory_order_relaxed);
  KVTIER_ASSIGN_OR_RETURN(const EvictionReport report,
                          index::IndexMechanics::evict_keys(index_, Tier::kHost, keys, *policy, &releaser_));
  if (out != nullptr) *out = report;
  return written;
}

// Placement (docs/index.md#placement): a host victim is worth an SSD write if it, or a near
// ancestor, was used often enough for the flash's wear (the admission filter's options), and,
// once the SSD tier is past its low watermark and a write there pushes a block out, if the policy
// admits it against the block the SSD tier would give up next: the judgement a put gets.
index::DemotionBar TierMover::demotion_bar() {
  index::DemotionBar bar;
  bar.min_uses = ssd_ != nullptr ? admission_.options().min_accesses : UINT32_MAX;
  bar.ancestor_hops = admission_.options().ancestor_hops;
  if (ssd_ != nullptr && index::IndexMechanics::past_low_watermark(index_, Tier::kSsd, ssd_->used_bytes())) {
    bar.displaced = index::IndexMechanics::next_victim(index_, Tier::kSsd);
  }
  return bar;
}

Result<size_t> TierMover::make_room() { return demote(host_.capacity_bytes() / 32); }

uint64_t TierMover::host_bytes_over_watermark() const {
  return index_.bytes_over_watermark(Tier::kHost, host_.used_bytes());
}

// SSD blocks engines asked for are read in one batch straight into reserved host space (io_uring
// into shared memory, no bounce buffer for uncompressed blocks) and then published in the index,
// which is the moment engines can acquire them.
size_t TierMover::promote(std::span<const BlockKey> keys) {
  if (ssd_ == nullptr) return 0;
  std::vector<tiers::TierRead> reads;
  std::vector<uint64_t> host_locators;
  std::unordered_set<BlockKey, BlockKeyHash> seen;
  for (const BlockKey& key : keys) {
    if (!seen.insert(key).second) continue;
    auto info = index_.lookup(key);
    if (!info || info->in(Tier::kHost)) continue;  // evicted meanwhile, or already up
    if (!info->in(Tier::kSsd)) {
      promote_misses_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const tiers::TierBlock block{info->key, info->parent_lo, info->namespace_id, info->payload_bytes};
    auto space = host_.reserve(block);
    if (!space.ok() && space.status().code() == StatusCode::kResourceExhausted) {
      (void)demote(uint64_t{info->payload_bytes} * (keys.size() - reads.size()));
      space = host_.reserve(block);
    }
    if (!space.ok()) {
      promote_failed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    reads.push_back(tiers::TierRead{block, info->ssd_loc, space->bytes, {}});
    host_locators.push_back(space->locator);
  }
  if (reads.empty()) return 0;
  ssd_->read(reads);
  size_t promoted_now = 0;
  for (size_t i = 0; i < reads.size(); ++i) {
    const tiers::TierBlock& b = reads[i].block;
    bool published = false;
    if (reads[i].status.ok()) {
      // As in Client::commit: publish, then commit the host copy (a crash between is adopted).
      // Once published the block is the index's: should it be evicted before the commit, the
      // commit frees it, and nothing here may give it up again.
      published = index_
                      .insert(BlockRecord{b.key, BlockKey{0, b.parent_lo}, b.namespace_id, b.payload_bytes, Tier::kHost,
                                          host_locators[i]})
                      .ok();
      if (published) (void)host_.commit(host_locators[i]);
    } else if (reads[i].status.code() == StatusCode::kNotFound) {
      promote_misses_.fetch_add(1, std::memory_order_relaxed);
    }
    if (published) {
      ++promoted_now;
      continue;
    }
    host_.abandon(b.key, host_locators[i]);
    if (!reads[i].status.ok() && reads[i].status.code() != StatusCode::kNotFound) {
      promote_failed_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  promoted_.fetch_add(promoted_now, std::memory_order_relaxed);
  return promoted_now;
}

Result<EvictionReport> TierMover::evict(Tier tier, uint64_t bytes) {
  if (bytes == 0) return Status::invalid_argument("evict needs a number of bytes > 0");
  if (tier == Tier::kHost) {
    EvictionReport report;
    KVTIER_ASSIGN_OR_RETURN(const size_t written, demote(bytes, &report));
    report.blocks_demoted = written;
    return report;
  }
  if (tier == Tier::kSsd) {
    if (ssd_ == nullptr) return Status::failed_precondition("this node has no SSD tier");
    std::lock_guard guard(move_mu_);
    return index::IndexMechanics::evict(index_, Tier::kSsd, bytes, *index_.eviction_policy(), &releaser_);
  }
  return Status::invalid_argument(std::string("evict works on the host and SSD tiers; ") +
                                  std::string(tier_name(tier)) + " is the engines' own");
}

ClearReport TierMover::clear_namespace(uint16_t namespace_id) {
  std::vector<BlockKey> keys;
  index_.for_each_block([&](const BlockInfo& b) {
    if (b.namespace_id == namespace_id && (b.in(Tier::kHost) || b.in(Tier::kSsd))) keys.push_back(b.key);
  });
  // Every block goes, chain heads included: LRU vetoes nothing.
  const auto everything = make_lru_policy();
  const auto still_held = [&](const BlockKey& k) {
    const auto info = index_.lookup(k);
    return info && (info->in(Tier::kHost) || info->in(Tier::kSsd));
  };
  ClearReport report;
  // Pins are often brief (a copy, a stream gRPC is finishing): a pinned block gets a few more
  // tries before it is reported busy.
  for (int attempt = 0; attempt < 4 && !keys.empty(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    {
      std::lock_guard guard(move_mu_);  // no demotion copies a block of it meanwhile
      (void)index::IndexMechanics::evict_keys(index_, Tier::kHost, keys, *everything, &releaser_);
      if (ssd_ != nullptr) (void)index::IndexMechanics::evict_keys(index_, Tier::kSsd, keys, *everything, &releaser_);
    }
    const auto busy_from = std::partition(keys.begin(), keys.end(), [&](const BlockKey& k) { return !still_held(k); });
    report.removed += static_cast<uint64_t>(busy_from - keys.begin());
    keys.erase(keys.begin(), busy_from);
  }
  report.busy = keys.size();
  return report;
}

// The index survives a daemon restart in shared memory, the SSD tier in its catalogue; either may
// know blocks the other lost. SSD is the truth for SSD residency.
void TierMover::reconcile() {
  if (ssd_ == nullptr) {
    std::vector<BlockKey> on_ssd;
    index_.for_each_block([&](const BlockInfo& b) {
      if (b.in(Tier::kSsd)) on_ssd.push_back(b.key);
    });
    for (const BlockKey& k : on_ssd) {
      if (index_.drop_tier(k, Tier::kSsd).ok()) reconcile_forgotten_.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  std::unordered_map<uint64_t, BlockKey> by_lo;  // parents are recorded by their low half
  std::vector<BlockKey> forget;
  index_.for_each_block([&](const BlockInfo& b) {
    by_lo.emplace(b.key.lo, b.key);
    if (b.in(Tier::kSsd) && !ssd_->contains(b.key, b.ssd_loc)) forget.push_back(b.key);
  });
  for (const BlockKey& k : forget) {
    if (index_.drop_tier(k, Tier::kSsd).ok()) reconcile_forgotten_.fetch_add(1, std::memory_order_relaxed);
  }
  struct Restore {
    tiers::TierBlock block;
    uint64_t locator;
    uint32_t depth;
  };
  std::vector<Restore> restore;
  std::unordered_map<uint64_t, size_t> restore_by_lo;
  size_t recovered = 0;
  ssd_->recover([&](const tiers::TierBlock& b, uint64_t locator) {
    ++recovered;
    by_lo.emplace(b.key.lo, b.key);
    auto info = index_.lookup(b.key);
    if (info && info->in(Tier::kSsd)) return;
    restore_by_lo.emplace(b.key.lo, restore.size());
    restore.push_back({b, locator, 0});
  });
  // Parents before children, so the index counts each block's cached children.
  for (Restore& r : restore) {
    uint64_t lo = r.block.parent_lo;
    for (uint32_t hops = 0; hops < 1u << 16; ++hops) {
      auto it = restore_by_lo.find(lo);
      if (it == restore_by_lo.end()) break;
      ++r.depth;
      lo = restore[it->second].block.parent_lo;
    }
  }
  std::sort(restore.begin(), restore.end(), [](const Restore& a, const Restore& b) { return a.depth < b.depth; });
  size_t done = 0;
  for (const Restore& r : restore) {
    auto parent = by_lo.find(r.block.parent_lo);
    const BlockKey parent_key = parent != by_lo.end() ? parent->second : BlockKey{0, r.block.parent_lo};
    const Status s = index_.insert(
        BlockRecord{r.block.key, parent_key, r.block.namespace_id, r.block.payload_bytes, Tier::kSsd, r.locator});
    if (s.ok()) reconcile_restored_.fetch_add(1, std::memory_order_relaxed);
    if (++done % 100000 == 0) spdlog::info("recovery: {}/{} SSD blocks back in the index", done, restore.size());
  }
  spdlog::info("recovery: SSD tier holds {} blocks; {} restored to the index, {} forgotten by it", recovered,
               reconcile_restored_.load(), reconcile_forgotten_.load());
}

void TierMover::forget_ssd_block(const BlockKey& key) {
  if (ssd_ != nullptr && ssd_->contains(key, 0)) return;  // rewritten elsewhere meanwhile
  const Status s = index_.drop_tier(key, Tier::kSsd);
  if (s.code() == StatusCode::kFailedPrecondition) {
    std::lock_guard lock(pending_mu_);
    pending_ssd_drops_.push_back(key);
    return;
  }
  if (s.ok()) ssd_drops_.fetch_add(1, std::memory_order_relaxed);
}

void TierMover::retry_ssd_drops() {
  std::vector<BlockKey> retry;
  {
    std::lock_guard lock(pending_mu_);
    retry.swap(pending_ssd_drops_);
  }
  for (const BlockKey& k : retry) forget_ssd_block(k);
}

TierMoverStats TierMover::stats() const {
  TierMoverStats s;
  {
    std::lock_guard guard(move_mu_);
    s.admission = admission_.stats();
  }
  s.demoted = demoted_.load(std::memory_order_relaxed);
  s.demote_refused = demote_refused_.load(std::memory_order_relaxed);
  s.demote_declined = declined_.load(std::memory_order_relaxed);
  s.demoted_for_prefix = for_prefix_.load(std::memory_order_relaxed);
  s.promoted = promoted_.load(std::memory_order_relaxed);
  s.promote_misses = promote_misses_.load(std::memory_order_relaxed);
  s.promote_failed = promote_failed_.load(std::memory_order_relaxed);
  s.ssd_drops = ssd_drops_.load(std::memory_order_relaxed);
  s.reconcile_forgotten = reconcile_forgotten_.load(std::memory_order_relaxed);
  s.reconcile_restored = reconcile_restored_.load(std::memory_order_relaxed);
  return s;
}

void TierMover::visit_counters(tiers::CounterVisitor& v) const {
  const TierMoverStats s = stats();
  v.counter("demotions_total", "Blocks copied from host memory to SSD before leaving host memory.", s.demoted);
  v.counter("demotions_refused_total", "Copies to SSD the SSD tier refused (full or failing).", s.demote_refused);
  v.counter("demotions_declined_total",
            "Host victims not copied to a full SSD tier: the policy judged them worth less than the block a copy "
            "would push out there.",
            s.demote_declined);
  v.counter("demotions_for_prefix_total",
            "Of demotions_total, blocks used fewer than ssd.admission.min_accesses times written because a near "
            "ancestor was used that often (ssd.admission.ancestor_hops).",
            s.demoted_for_prefix);
  v.counter("promotions_total", "Blocks loaded from SSD into host memory.", s.promoted);
  v.counter("promotion_misses_total", "Blocks asked to load that the SSD tier no longer had.", s.promote_misses);
  v.counter("promotion_failures_total", "Blocks asked to load that could not be (no host room, a read error).",
            s.promote_failed);
  v.counter("ssd_admission_refused_total", "Blocks the SSD admission filter kept off SSD.",
            s.admission.rejected_cold + s.admission.rejected_budget);
  v.counter("ssd_drops_total", "Blocks the SSD tier lost (reclaimed, unreadable, corrupt) that the index dropped.",
            s.ssd_drops);
}

}  // namespace kvtier::node
