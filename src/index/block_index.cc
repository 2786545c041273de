#include "kvtier/block_index.h"

#include <fmt/format.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/process_id.h"
#include "index/entry_image.h"
#include "index/index_mechanics.h"
#include "index/index_writer.h"
#include "index/process_membership.h"
#include "index/recorded_policy.h"
#include "index/reuse_learning.h"
#include "index/table_reader.h"

namespace kvtier {

using index::IndexMechanics;
using index::IndexSegment;
using index::IndexWriter;
using index::Probe;
using index::ProbeOutcome;

// This process's pins on one index: the membership that owns a pin bit, and how many leases
// this process holds per block (the bit is set while the count is positive). Leases share it,
// so it lives until the last lease is gone.
struct BlockLease::Owner {
  std::shared_ptr<const void>
      tied;  // kept alive with the leases (BlockIndex::IndexMechanics::tie_to_leases); goes last
  std::shared_ptr<IndexSegment> seg;
  std::unique_ptr<index::ProcessMembership> membership;
  std::mutex mu;
  std::unordered_map<BlockKey, uint32_t> counts;

  ~Owner() {
    if (membership) membership->leave(/*pins_outstanding=*/!counts.empty());
  }
  void unpin(const BlockKey& key);
};

struct BlockIndex::Impl {
  std::shared_ptr<IndexSegment> seg;
  EvictionListener* listener = nullptr;
  std::mutex owner_mu;
  std::shared_ptr<BlockLease::Owner> owner;
  std::shared_ptr<const void> tied;
  mutable std::atomic<uint64_t> probes{0};

  Result<std::shared_ptr<BlockLease::Owner>> pin_owner();
};

namespace {

// Reads the full image of the entry a probe found, under the seqlock.
bool read_found(const IndexSegment& seg, const Probe& p, index::EntryImage& img, uint64_t& ctl) {
  return index::read_entry(seg.entry(p.slot), img, ctl) && img.tiers != 0;
}

}  // namespace

void BlockLease::Owner::unpin(const BlockKey& key) {
  if (!membership || current_pid() != membership->pid()) return;  // inherited through fork: the parent's pins
  std::lock_guard<std::mutex> g(mu);
  auto it = counts.find(key);
  if (it == counts.end()) return;
  if (--it->second > 0) return;
  counts.erase(it);
  const uint64_t bit = membership->bit();
  // A pinned block cannot be removed, but a backward shift may move it: find it again by key.
  // Bounded: a writer that died mid-write is recovered here, and after ~1 s we stop (the pin then
  // stays until this process leaves or dies, when it is reclaimed).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < deadline) {
    const Probe p = index::probe_key(*seg, key);
    if (p.outcome == ProbeOutcome::kAbsent) return;  // reclaimed already
    if (p.outcome == ProbeOutcome::kFound) {
      auto& ctl = seg->entry(p.slot).ctl;
      uint64_t c = p.ctl;
      while (index::version_of(c) == index::version_of(p.ctl) && !index::version_odd(c)) {
        if ((c & bit) == 0) return;
        if (ctl.compare_exchange_weak(c, c & ~bit, std::memory_order_acq_rel, std::memory_order_acquire)) return;
      }
      continue;  // the entry changed under us: look again
    }
    IndexWriter(*seg).try_recover_dead_writer();
    std::this_thread::yield();
  }
}

BlockLease::BlockLease(BlockLease&& other) noexcept : owner_(std::move(other.owner_)), info_(other.info_) {}

BlockLease& BlockLease::operator=(BlockLease&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::move(other.owner_);
    info_ = other.info_;
  }
  return *this;
}

void BlockLease::release() {
  if (!owner_) return;
  std::shared_ptr<Owner> owner = std::move(owner_);
  owner->unpin(info_.key);
}

Result<std::shared_ptr<BlockLease::Owner>> BlockIndex::Impl::pin_owner() {
  std::lock_guard<std::mutex> g(owner_mu);
  if (owner && owner->membership && owner->membership->pid() == current_pid()) return owner;
  auto joined = index::ProcessMembership::join(seg);
  if (!joined.ok()) return joined.status();
  auto fresh = std::make_shared<BlockLease::Owner>();
  fresh->tied = tied;
  fresh->seg = seg;
  fresh->membership = std::move(joined).value();
  owner = fresh;  // in a forked child the inherited owner is dropped here without touching its slot
  return owner;
}

BlockIndex::BlockIndex(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
BlockIndex::BlockIndex(BlockIndex&&) noexcept = default;
BlockIndex& BlockIndex::operator=(BlockIndex&&) noexcept = default;
BlockIndex::~BlockIndex() = default;

Result<BlockIndex> BlockIndex::create(const IndexOptions& options) {
  auto seg = IndexSegment::create(options);
  if (!seg.ok()) return seg.status();
  auto impl = std::make_shared<Impl>();
  impl->seg = std::shared_ptr<IndexSegment>(std::move(seg).value());
  return BlockIndex(std::move(impl));
}

Result<BlockIndex> BlockIndex::attach(std::string_view segment_name) {
  auto seg = IndexSegment::attach(segment_name);
  if (!seg.ok()) return seg.status();
  auto impl = std::make_shared<Impl>();
  impl->seg = std::shared_ptr<IndexSegment>(std::move(seg).value());
  return BlockIndex(std::move(impl));
}

Result<BlockIndex> BlockIndex::open_or_create(const IndexOptions& options) {
  auto attached = attach(options.segment_name);
  if (attached.ok() || attached.status().code() != StatusCode::kNotFound) return attached;
  auto created = create(options);
  if (created.ok() || created.status().code() != StatusCode::kAlreadyExists) return created;
  return attach(options.segment_name);  // lost a race with another creator
}

Status BlockIndex::destroy(std::string_view segment_name) { return IndexSegment::destroy(segment_name); }

PrefixMatch BlockIndex::match_prefix(std::span<const BlockKey> keys) const {
  uint64_t probes = 0;
  const PrefixMatch m = index::match_prefix(*impl_->seg, keys, probes);
  impl_->probes.fetch_add(probes, std::memory_order_relaxed);
  return m;
}

bool BlockIndex::contains(const BlockKey& key) const { return match_prefix({&key, 1}).overall == 1; }

std::optional<BlockInfo> BlockIndex::lookup(const BlockKey& key) const {
  const IndexSegment& seg = *impl_->seg;
  uint64_t shift_seen = seg.header().shift_seq.value.load(std::memory_order_acquire);
  uint64_t probes = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const Probe p = index::probe_confirmed(seg, key, shift_seen, probes, index::probe_key);
    if (p.outcome != ProbeOutcome::kFound) break;
    index::EntryImage img;
    uint64_t ctl = 0;
    if (read_found(seg, p, img, ctl) && img.key_hi == key.hi && img.key_lo == key.lo) {
      impl_->probes.fetch_add(probes, std::memory_order_relaxed);
      return index::to_block_info(img, ctl);
    }
  }
  impl_->probes.fetch_add(probes, std::memory_order_relaxed);
  return std::nullopt;
}

Result<std::vector<BlockLease>> BlockIndex::acquire(std::span<const BlockKey> keys, AccessMode mode) {
  auto owner_r = impl_->pin_owner();
  if (!owner_r.ok()) return owner_r.status();
  const std::shared_ptr<BlockLease::Owner>& owner = *owner_r;
  IndexSegment& seg = *impl_->seg;
  const uint64_t bit = owner->membership->bit();
  const uint32_t now = seg.now_ticks();
  uint64_t shift_seen = seg.header().shift_seq.value.load(std::memory_order_acquire);
  uint64_t probes = 0;
  std::vector<BlockLease> leases;
  leases.reserve(keys.size());
  // Returns are counted (a shared write every engine makes) only for the policy that reads them.
  static const uint32_t hit_density_id = index::recorded_policy_id("hit-density");
  static const uint32_t default_id = index::recorded_policy_id(kDefaultEvictionPolicy);
  uint32_t policy_id = seg.header().eviction_policy.load(std::memory_order_relaxed);
  if (policy_id == 0) policy_id = default_id;  // none recorded: the default
  index::ReuseLearning* const learning = policy_id == hit_density_id ? seg.learning() : nullptr;

  std::lock_guard<std::mutex> g(owner->mu);
  for (const BlockKey& key : keys) {
    bool pinned = false;
    index::EntryImage img;
    uint64_t pinned_ctl = 0;
    uint64_t slot = index::kNoSlot;
    for (int attempt = 0; attempt < 8 && !pinned; ++attempt) {
      const Probe p = index::probe_confirmed(seg, key, shift_seen, probes, index::probe_key);
      if (p.outcome != ProbeOutcome::kFound) break;
      uint64_t c = 0;
      if (!read_found(seg, p, img, c) || img.key_hi != key.hi || img.key_lo != key.lo) continue;
      auto& ctl = seg.entry(p.slot).ctl;
      // The CAS succeeds only if the version is the one under which the key was read: then the
      // entry still holds this key, and no writer can be evicting it.
      while (index::version_of(c) == index::version_of(p.ctl) && !index::version_odd(c)) {
        if ((c & bit) != 0 ||
            ctl.compare_exchange_weak(c, c | bit, std::memory_order_acq_rel, std::memory_order_acquire)) {
          pinned = true;
          pinned_ctl = c | bit;
          slot = p.slot;
          break;
        }
      }
    }
    if (!pinned) break;
    ++owner->counts[key];
    // Recency and frequency for eviction: relaxed stores, deliberately outside the seqlock (they
    // are hints; a lost update costs nothing).
    if (mode == AccessMode::kRecord) {
      index::IndexEntry& e = seg.entry(slot);
      const uint32_t last = index::load_relaxed(e.last_access);
      index::store_relaxed(e.last_access, now);
      const uint8_t f = index::load_relaxed(e.freq);
      if (f < UINT8_MAX) index::store_relaxed(e.freq, static_cast<uint8_t>(f + 1));
      if (index::in_acquire_sample(key.hi)) index::observe_return(learning, f, now - last, index::kAcquireSample);
    }
    leases.push_back(BlockLease(owner, index::to_block_info(img, pinned_ctl)));
  }
  impl_->probes.fetch_add(probes, std::memory_order_relaxed);
  return leases;
}

Result<uint32_t> BlockIndex::owner_tag() {
  auto owner = impl_->pin_owner();
  if (!owner.ok()) return owner.status();
  const uint32_t slot = (*owner)->membership->slot();
  const uint64_t generation = impl_->seg->process(slot).generation.load(std::memory_order_acquire);
  return slot | static_cast<uint32_t>((generation & 0xFFFFFF) << 6);
}

bool BlockIndex::owner_alive(uint32_t owner_tag) const {
  const uint32_t slot = owner_slot(owner_tag);
  if (slot >= index::kMaxProcesses) return false;
  const index::ProcessSlot& ps = impl_->seg->process(slot);
  return ps.state.load(std::memory_order_acquire) == static_cast<uint32_t>(index::ProcessState::kLive) &&
         (ps.generation.load(std::memory_order_acquire) & 0xFFFFFF) == (owner_tag >> 6);
}

void BlockIndex::for_each_block(const std::function<void(const BlockInfo&)>& fn) const {
  const IndexSegment& seg = *impl_->seg;
  for (uint64_t s = 0; s < seg.slots(); ++s) {
    if (index::load_acquire(seg.tag(s)) == 0) continue;
    index::EntryImage img;
    uint64_t ctl = 0;
    // A writer preempted mid-write (a busy machine) holds the entry longer than read_entry spins;
    // a block resident all along must not go missing from a snapshot, so wait for it, yielding.
    // Only a writer killed mid-write holds it for good (until maintain() replays its journal):
    // that one entry is skipped after the deadline.
    bool read = index::read_entry(seg.entry(s), img, ctl);
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
         !read && std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::yield();
      read = index::read_entry(seg.entry(s), img, ctl);
    }
    if (read && img.tiers != 0) fn(index::to_block_info(img, ctl));
  }
}

Status BlockIndex::insert(const BlockRecord& record) {
  IndexWriter writer(*impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.insert(record, *eviction_policy(), impl_->listener);
}

Status IndexMechanics::set_clock(BlockIndex& index, uint32_t ticks) { return index.impl_->seg->set_clock(ticks); }

Status BlockIndex::drop_tier(const BlockKey& key, Tier tier) {
  IndexWriter writer(*impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.drop_tier(key, tier);
}

Status BlockIndex::drop_tier_at(const BlockKey& key, Tier tier, uint64_t locator) {
  IndexWriter writer(*impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.drop_tier(key, tier, locator);
}

Status BlockIndex::remove(const BlockKey& key) {
  IndexWriter writer(*impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.remove(key);
}

Status BlockIndex::set_tier_capacity(Tier tier, uint64_t bytes, double high_watermark, double low_watermark) {
  if (!(low_watermark > 0 && low_watermark < high_watermark && high_watermark <= 1)) {
    return Status::invalid_argument(
        fmt::format("watermarks must satisfy 0 < low < high <= 1, got low {} high {}", low_watermark, high_watermark));
  }
  index::SegmentHeader& h = impl_->seg->header();
  const size_t i = tier_index(tier);
  h.tier_high_permille[i].store(static_cast<uint32_t>(high_watermark * 1000), std::memory_order_relaxed);
  h.tier_low_permille[i].store(static_cast<uint32_t>(low_watermark * 1000), std::memory_order_relaxed);
  h.tier_capacity[i].store(bytes, std::memory_order_release);
  return {};
}

bool BlockIndex::above_high_watermark(Tier tier) const {
  const index::SegmentHeader& h = impl_->seg->header();
  const size_t i = tier_index(tier);
  const uint64_t cap = h.tier_capacity[i].load(std::memory_order_acquire);
  const uint64_t used = index::load_relaxed(h.counters.tier_bytes[i]);
  return cap > 0 && used * 1000 > cap * h.tier_high_permille[i].load(std::memory_order_relaxed);
}

Result<EvictionReport> IndexMechanics::evict(BlockIndex& index, Tier tier, uint64_t bytes, const EvictionPolicy& policy,
                                             EvictionListener* listener) {
  IndexWriter writer(*index.impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.evict(tier, bytes, policy, listener);
}

Result<EvictionReport> IndexMechanics::evict_keys(BlockIndex& index, Tier tier, std::span<const BlockKey> keys,
                                                  const EvictionPolicy& policy, EvictionListener* listener) {
  IndexWriter writer(*index.impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.evict_keys(tier, keys, policy, listener);
}

std::vector<index::EvictionVictim> IndexMechanics::eviction_candidates(BlockIndex& index, Tier tier, uint64_t bytes,
                                                                       const EvictionPolicy& policy,
                                                                       const index::DemotionBar& bar) {
  IndexWriter writer(*index.impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.eviction_candidates(tier, bytes, policy, bar);
}

std::optional<EvictionCandidate> IndexMechanics::next_victim(BlockIndex& index, Tier tier) {
  const auto policy = index.eviction_policy();
  IndexWriter writer(*index.impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.next_victim(tier, *policy);
}

uint64_t BlockIndex::bytes_over_watermark(Tier tier) const {
  if (!above_high_watermark(tier)) return 0;
  const index::SegmentHeader& h = impl_->seg->header();
  const size_t i = tier_index(tier);
  const uint64_t cap = h.tier_capacity[i].load(std::memory_order_acquire);
  const uint64_t used = index::load_relaxed(h.counters.tier_bytes[i]);
  const uint64_t target = cap / 1000 * h.tier_low_permille[i].load(std::memory_order_relaxed);
  return used > target ? used - target : 0;
}

uint64_t BlockIndex::bytes_over_watermark(Tier tier, uint64_t occupied) const {
  const uint64_t by_payload = bytes_over_watermark(tier);
  const index::SegmentHeader& h = impl_->seg->header();
  const size_t i = tier_index(tier);
  const uint64_t cap = h.tier_capacity[i].load(std::memory_order_acquire);
  if (cap == 0 || occupied * 1000 <= cap * h.tier_high_permille[i].load(std::memory_order_relaxed)) return by_payload;
  const uint64_t target = cap / 1000 * h.tier_low_permille[i].load(std::memory_order_relaxed);
  const uint64_t payload = index::load_relaxed(h.counters.tier_bytes[i]);
  // In floating point: the product of two byte counts overflows 64 bits past 4 GiB each.
  const auto share = static_cast<long double>(payload) / static_cast<long double>(occupied);
  const auto scaled = static_cast<uint64_t>(static_cast<long double>(occupied - target) * share);
  return std::max(by_payload, scaled);
}

Result<EvictionReport> IndexMechanics::evict_to_watermark(BlockIndex& index, Tier tier, const EvictionPolicy& policy,
                                                          EvictionListener* listener) {
  const uint64_t over = index.bytes_over_watermark(tier);
  if (over == 0) return EvictionReport{};
  return evict(index, tier, over, policy, listener);
}

bool IndexMechanics::past_low_watermark(const BlockIndex& index, Tier tier, uint64_t occupied) {
  const index::SegmentHeader& h = index.impl_->seg->header();
  const size_t i = tier_index(tier);
  const uint64_t cap = h.tier_capacity[i].load(std::memory_order_acquire);
  const uint64_t used = std::max(occupied, index::load_relaxed(h.counters.tier_bytes[i]));
  return cap > 0 && used * 1000 >= cap * h.tier_low_permille[i].load(std::memory_order_relaxed);
}

bool IndexMechanics::judges_puts(const BlockIndex& index, Tier tier) {
  if (index.put_admission() != PutAdmission::kByPolicy) return false;
  // With an SSD tier a host victim moves down rather than leaving the node, so a put pushes out
  // nothing for good: judging it as if it did cost the policy study 0.023 of its hits (0.195 to
  // 0.172 at 1M host tokens with 4M on SSD, docs/benchmarks.md).
  const index::SegmentHeader& h = index.impl_->seg->header();
  return tier != Tier::kHost || h.tier_capacity[tier_index(Tier::kSsd)].load(std::memory_order_acquire) == 0;
}

index::PutVerdict IndexMechanics::admit(BlockIndex& index, const BlockKey& key, const BlockKey& parent, Tier tier,
                                        uint64_t occupied) {
  if (!judges_puts(index, tier)) return index::PutVerdict::kUnjudged;
  // Below the low watermark a put evicts nothing: there is nothing to weigh it against.
  if (!past_low_watermark(index, tier, occupied)) return index::PutVerdict::kUnjudged;
  const auto policy = index.eviction_policy();
  IndexWriter writer(*index.impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.admit(key, parent, tier, *policy);
}

void IndexMechanics::refuse(BlockIndex& index, const BlockKey& key) {
  IndexWriter writer(*index.impl_->seg);
  IndexWriter::Lock lock(writer);
  writer.refuse(key);
}

void IndexMechanics::tie_to_leases(BlockIndex& index, std::shared_ptr<const void> keep_alive) {
  BlockIndex::Impl& im = *index.impl_;
  std::lock_guard<std::mutex> g(im.owner_mu);
  im.tied = keep_alive;
  if (im.owner) im.owner->tied = std::move(keep_alive);
}

Status BlockIndex::record_eviction_policy(std::string_view name) {
  const uint32_t id = index::recorded_policy_id(name);
  if (id == 0) return make_eviction_policy(name).status();  // says which names there are
  impl_->seg->header().eviction_policy.store(id, std::memory_order_release);
  return {};
}

void BlockIndex::record_put_admission(PutAdmission admission) {
  impl_->seg->header().put_admission.store(static_cast<uint32_t>(admission) + 1, std::memory_order_release);
}

PutAdmission BlockIndex::put_admission() const {
  switch (impl_->seg->header().put_admission.load(std::memory_order_acquire)) {
    case static_cast<uint32_t>(PutAdmission::kAll) + 1: return PutAdmission::kAll;
    case static_cast<uint32_t>(PutAdmission::kByPolicy) + 1: return PutAdmission::kByPolicy;
    default: return kDefaultPutAdmission;  // none recorded (or a newer build's)
  }
}

Result<PutAdmission> parse_put_admission(std::string_view name) {
  if (name == "all") return PutAdmission::kAll;
  if (name == "by-policy") return PutAdmission::kByPolicy;
  return Status::invalid_argument(fmt::format("unknown put admission '{}' (all, by-policy)", name));
}

std::string_view put_admission_name(PutAdmission admission) {
  return admission == PutAdmission::kByPolicy ? "by-policy" : "all";
}

std::shared_ptr<const EvictionPolicy> BlockIndex::eviction_policy() const {
  return index::recorded_policy(impl_->seg->header().eviction_policy.load(std::memory_order_acquire));
}

void IndexMechanics::set_eviction_listener(BlockIndex& index, EvictionListener* listener) {
  index.impl_->listener = listener;
}

size_t IndexMechanics::read_changes(const BlockIndex& index, uint64_t from_seq, std::span<IndexChange> out,
                                    uint64_t* next_seq, bool* lost) {
  const IndexSegment& seg = *index.impl_->seg;
  const uint64_t head = seg.header().ring_head.load(std::memory_order_acquire);
  const uint64_t oldest = head > seg.ring_records() ? head - seg.ring_records() : 0;
  bool gap = from_seq < oldest;
  uint64_t seq = std::max(from_seq, oldest);
  size_t n = 0;
  for (; seq < head && n < out.size(); ++seq) {
    const index::ChangeRecord& rec = seg.ring(seq);
    if (rec.seq.load(std::memory_order_acquire) != seq) {
      gap = true;  // overwritten while we read: the writer lapped us
      continue;
    }
    uint64_t words[index::kChangeWords];
    for (size_t w = 0; w < index::kChangeWords; ++w) words[w] = index::load_acquire(rec.words[w]);
    if (rec.seq.load(std::memory_order_relaxed) != seq) {
      gap = true;
      continue;
    }
    index::ChangeRecordBody body;
    std::memcpy(&body, words, sizeof(body));
    IndexChange& c = out[n++];
    c.seq = seq;
    c.kind = static_cast<IndexChange::Kind>(body.kind);
    c.key = {body.key_hi, body.key_lo};
    c.parent_lo = body.parent_lo;
    c.namespace_id = body.ns_id;
    c.payload_bytes = body.payload_bytes;
    c.tiers_before = body.tiers_before;
    c.tiers_after = static_cast<uint8_t>(body.tiers_after);
  }
  if (next_seq != nullptr) *next_seq = seq;
  if (lost != nullptr) *lost = gap;
  return n;
}

Status BlockIndex::maintain() {
  IndexWriter writer(*impl_->seg);
  writer.try_recover_dead_writer();
  int self = -1;
  {
    std::lock_guard<std::mutex> g(impl_->owner_mu);
    if (impl_->owner && impl_->owner->membership) self = static_cast<int>(impl_->owner->membership->slot());
  }
  index::reclaim_dead_processes(*impl_->seg, self);
  return {};
}

Status BlockIndex::check_invariants() const {
  IndexWriter writer(*impl_->seg);
  IndexWriter::Lock lock(writer);
  return writer.check_invariants();
}

IndexStats BlockIndex::stats() const {
  const IndexSegment& seg = *impl_->seg;
  const index::SegmentHeader& h = seg.header();
  IndexStats s;
  s.capacity = seg.capacity();
  s.slots = seg.slots();
  s.segment_bytes = h.total_bytes;
  s.entries = index::load_relaxed(h.counters.entries);
  for (size_t i = 0; i < kNumTiers; ++i) {
    s.tier_entries[i] = index::load_relaxed(h.counters.tier_entries[i]);
    s.tier_bytes[i] = index::load_relaxed(h.counters.tier_bytes[i]);
    s.tier_capacity[i] = h.tier_capacity[i].load(std::memory_order_relaxed);
  }
  s.inserts = index::load_relaxed(h.counters.inserts);
  s.removes = index::load_relaxed(h.counters.removes);
  s.evictions = index::load_relaxed(h.counters.evictions);
  s.demotions = index::load_relaxed(h.counters.demotions);
  s.puts_not_admitted = h.puts_not_admitted.load(std::memory_order_relaxed);
  s.recoveries = h.recoveries.load(std::memory_order_relaxed);
  s.processes_reclaimed = h.processes_reclaimed.load(std::memory_order_relaxed);
  s.processes_attached = static_cast<uint64_t>(std::popcount(h.live_mask.load(std::memory_order_relaxed)));
  s.probes = impl_->probes.load(std::memory_order_relaxed);
  s.change_seq = h.ring_head.load(std::memory_order_acquire);
  return s;
}

std::string BlockIndex::segment_name() const { return impl_->seg->name(); }
uint64_t BlockIndex::creation_epoch() const { return impl_->seg->header().creation_epoch; }
std::string BlockIndex::node_name() const { return impl_->seg->header().node_name; }

}  // namespace kvtier
