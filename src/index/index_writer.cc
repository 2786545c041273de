#include "index/index_writer.h"

#include <fmt/format.h>

#include <cstring>

#include "common/robust_mutex.h"
#include "index/crash_points.h"
#include "index/entry_access.h"
#include "index/entry_image.h"
#include "index/evicted_uses.h"
#include "index/reuse_learning.h"

namespace kvtier::index {

namespace {

void clear_fields(IndexEntry& e) {
  store_relaxed(e.tiers, uint8_t{0});  // first: a half-cleared slot already reads as empty
  store_fields(e, EntryImage{});
}

// The fields a conditional write changes: residency and where it lives.
bool already_applied(const EntryImage& cur, const JournalWrite& w) {
  if (w.op == JournalOp::kClearIfUnpinned) return cur.tiers == 0;
  return cur.key_hi == w.image.key_hi && cur.key_lo == w.image.key_lo && cur.tiers == w.image.tiers &&
         cur.host_loc == w.image.host_loc && cur.ssd_loc == w.image.ssd_loc && cur.hbm == w.image.hbm;
}

void store_counters(Counters& dst, const Counters& src) {
  const auto* s = reinterpret_cast<const uint64_t*>(&src);
  auto* d = reinterpret_cast<uint64_t*>(&dst);
  for (size_t i = 0; i < sizeof(Counters) / 8; ++i) store_relaxed(d[i], s[i]);
}

}  // namespace

// --- Lock and recovery -------------------------------------------------------------------------

IndexWriter::Lock::Lock(IndexWriter& w) : w_(w) {
  SegmentHeader& h = w_.seg_.header();
  if (lock_robust(&h.writer_lock) == LockOutcome::kOwnerDied) {
    w_.recover();
    h.recoveries.fetch_add(1, std::memory_order_relaxed);
    mark_consistent(&h.writer_lock);
  }
}

IndexWriter::Lock::~Lock() { unlock_robust(&w_.seg_.header().writer_lock); }

bool IndexWriter::try_recover_dead_writer() {
  SegmentHeader& h = seg_.header();
  switch (try_lock_robust(&h.writer_lock)) {
    case LockOutcome::kBusy: return false;
    case LockOutcome::kOwnerDied:
      recover();
      h.recoveries.fetch_add(1, std::memory_order_relaxed);
      mark_consistent(&h.writer_lock);
      break;
    case LockOutcome::kAcquired: break;
  }
  unlock_robust(&h.writer_lock);
  return true;
}

void IndexWriter::recover() {
  Journal& j = seg_.journal();
  const uint32_t active = j.active.load(std::memory_order_acquire);
  if (active == 1 || active == 2) {
    const JournalRecord& r = j.records[active - 1];
    if (apply(r) == Applied::kDone && r.continue_shift_from != kNoSlot) {
      shift_from(r.continue_shift_from);
    } else {
      finish_journal();
    }
  } else if (active != 0) {
    finish_journal();  // unreachable unless the journal word itself was scribbled on
  }
  auto& shift_seq = seg_.header().shift_seq.value;
  if ((shift_seq.load(std::memory_order_relaxed) & 1) != 0) shift_seq.fetch_add(1, std::memory_order_release);
  // Slots are claimed only under this lock, so a claim in progress was the dead writer's.
  for (uint32_t p = 0; p < kMaxProcesses; ++p) {
    auto& state = seg_.process(p).state;
    if (state.load(std::memory_order_relaxed) == static_cast<uint32_t>(ProcessState::kClaiming)) {
      state.store(static_cast<uint32_t>(ProcessState::kFree), std::memory_order_release);
    }
  }
}

// --- Journal -----------------------------------------------------------------------------------

IndexWriter::Applied IndexWriter::commit(const Mutation& m) {
  Journal& j = seg_.journal();
  const uint32_t next = j.active.load(std::memory_order_relaxed) == 1 ? 2 : 1;
  JournalRecord& r = j.records[next - 1];
  r.num_writes = m.num_writes;
  r.has_change = m.has_change ? 1 : 0;
  for (uint32_t i = 0; i < m.num_writes; ++i) r.writes[i] = m.writes[i];
  r.continue_shift_from = m.continue_shift_from;
  r.counters_after = m.after;
  const uint64_t head = seg_.header().ring_head.load(std::memory_order_relaxed);
  if (m.has_change) publish_change(head, m.change);
  r.ring_head_after = m.has_change ? head + 1 : head;
  j.active.store(next, std::memory_order_release);
  crash_point("journal-committed");

  const Applied applied = apply(r);
  crash_point("record-applied");
  if (applied == Applied::kVoidedByPin || r.continue_shift_from == kNoSlot) finish_journal();
  return applied;
}

void IndexWriter::finish_journal() { seg_.journal().active.store(0, std::memory_order_release); }

IndexWriter::Applied IndexWriter::apply(const JournalRecord& r) {
  for (uint32_t i = 0; i < r.num_writes; ++i) {
    const JournalWrite& w = r.writes[i];
    if (w.op == JournalOp::kMove) {
      apply_move(w);
      continue;
    }
    IndexEntry& e = seg_.entry(w.slot);
    const uint64_t frozen = begin_write(e);
    crash_point("entry-odd");
    const bool conditional = w.op == JournalOp::kClearIfUnpinned || w.op == JournalOp::kWriteIfUnpinned;
    // A replay may find the write already done by the dead writer, and the block pinned since;
    // the pin check guards only writes still to be made.
    if (conditional && !already_applied(image(w.slot), w) && effective_pins(frozen) != 0) {
      end_write(e);  // only a record's first write is conditional, so nothing else has changed
      return Applied::kVoidedByPin;
    }
    if (w.op == JournalOp::kClearIfUnpinned) {
      store_tag(w.slot, 0);  // readers stop seeing the key before it goes
      clear_fields(e);
      set_pins_while_writing(e, 0);  // only inert bits of dead processes can be left here
    } else {
      store_fields(e, w.image);
    }
    crash_point("entry-written");
    end_write(e);
    if (w.op != JournalOp::kClearIfUnpinned) store_tag(w.slot, tag_of(w.image.key_hi));  // after the entry is whole
  }
  store_counters(seg_.header().counters, r.counters_after);
  seg_.header().ring_head.store(r.ring_head_after, std::memory_order_release);
  return Applied::kDone;
}

// Moves are replayable: until the source is cleared it still holds the key and the frozen pins,
// and the destination is written completely before the source clear begins.
void IndexWriter::apply_move(const JournalWrite& w) {
  IndexEntry& src = seg_.entry(w.src_slot);
  IndexEntry& dst = seg_.entry(w.slot);
  const EntryImage cur = image(w.src_slot);
  if (cur.tiers != 0 && cur.key_hi == w.image.key_hi && cur.key_lo == w.image.key_lo) {
    const uint64_t frozen = begin_write(src);
    begin_write(dst);
    store_fields(dst, w.image);
    set_pins_while_writing(dst, pins_of(frozen) & ~seg_.header().draining_mask.load(std::memory_order_relaxed));
    end_write(dst);
    store_tag(w.slot, tag_of(w.image.key_hi));
    crash_point("move-destination-written");
  } else {
    // A replay after the destination was finished: make sure of it, keep its pins.
    begin_write(dst);
    store_fields(dst, w.image);
    end_write(dst);
    store_tag(w.slot, tag_of(w.image.key_hi));
  }
  store_tag(w.src_slot, 0);
  if (!version_odd(src.ctl.load(std::memory_order_relaxed))) begin_write(src);
  store_relaxed(src.tiers, uint8_t{0});
  crash_point("move-source-half-cleared");
  clear_fields(src);
  set_pins_while_writing(src, 0);
  end_write(src);
}

void IndexWriter::publish_change(uint64_t seq, const ChangeRecordBody& body) {
  ChangeRecord& rec = seg_.ring(seq);
  rec.seq.store(kNoSlot, std::memory_order_relaxed);  // readers of the old record see it go
  uint64_t words[kChangeWords];
  std::memcpy(words, &body, sizeof(words));
  // Release stores: none may become visible before the invalidation above.
  for (size_t i = 0; i < kChangeWords; ++i)
    std::atomic_ref<uint64_t>(rec.words[i]).store(words[i], std::memory_order_release);
  rec.seq.store(seq, std::memory_order_release);
}

// --- Lookups under the lock (no other writer can run, so plain snapshots suffice) -----------

void IndexWriter::store_tag(uint64_t slot, uint8_t tag) {
  std::atomic_ref<uint8_t>(seg_.tag(slot)).store(tag, std::memory_order_release);
}

EntryImage IndexWriter::image(uint64_t slot) const {
  EntryImage img;
  load_fields(seg_.entry(slot), img);
  return img;
}

Counters IndexWriter::counters() const {
  Counters c;
  const auto* s = reinterpret_cast<const uint64_t*>(&seg_.header().counters);
  auto* d = reinterpret_cast<uint64_t*>(&c);
  for (size_t i = 0; i < sizeof(Counters) / 8; ++i) d[i] = load_relaxed(s[i]);
  return c;
}

uint32_t IndexWriter::effective_pins(uint64_t ctl) const {
  return pins_of(ctl) & ~seg_.header().draining_mask.load(std::memory_order_relaxed);
}

uint64_t IndexWriter::distance(uint64_t from, uint64_t to) const {
  return to >= from ? to - from : to + seg_.slots() - from;
}

// Between operations the tags are exact (apply() keeps them with their entries, and recovery runs
// before any operation), so the writer's searches scan tags too and read entries only on a match.
uint64_t IndexWriter::find_slot(uint64_t key_hi, uint64_t key_lo) const {
  const uint8_t want = tag_of(key_hi);
  for (uint64_t s = seg_.home(key_lo), n = 0; n < seg_.slots(); ++n, s = seg_.next(s)) {
    const uint8_t tag = load_relaxed(seg_.tag(s));
    if (tag == 0) return kNoSlot;
    if (tag != want) continue;
    const IndexEntry& e = seg_.entry(s);
    if (load_relaxed(e.key_lo) == key_lo && load_relaxed(e.key_hi) == key_hi) return s;
  }
  return kNoSlot;
}

uint64_t IndexWriter::find_slot_by_lo(uint64_t key_lo) const {
  for (uint64_t s = seg_.home(key_lo), n = 0; n < seg_.slots(); ++n, s = seg_.next(s)) {
    if (load_relaxed(seg_.tag(s)) == 0) return kNoSlot;
    if (load_relaxed(seg_.entry(s).key_lo) == key_lo) return s;
  }
  return kNoSlot;
}

uint64_t IndexWriter::find_empty(uint64_t key_lo) const {
  for (uint64_t s = seg_.home(key_lo), n = 0; n < seg_.slots(); ++n, s = seg_.next(s)) {
    if (load_relaxed(seg_.tag(s)) == 0) return s;
  }
  return kNoSlot;  // impossible: slots > capacity >= entries
}

// --- Mutations ---------------------------------------------------------------------------------

Status IndexWriter::insert(const BlockRecord& rec, const EvictionPolicy& policy, EvictionListener* listener) {
  if (rec.payload_bytes == 0) return Status::invalid_argument("block payload_bytes must be positive");
  if (rec.tier == Tier::kHost && rec.locator > UINT32_MAX) {
    return Status::invalid_argument("host locator must fit in 32 bits");
  }
  if (rec.tier == Tier::kHbm && rec.locator > UINT32_MAX) {
    return Status::invalid_argument("hbm locator (process << 24 | block id) must fit in 32 bits");
  }
  const uint8_t bit = tier_bit(rec.tier);
  const uint64_t existing = find_slot(rec.key.hi, rec.key.lo);
  Mutation m;
  m.after = counters();
  if (existing != kNoSlot) {
    EntryImage img = image(existing);
    if (img.payload_bytes != rec.payload_bytes || img.ns_id != rec.namespace_id) {
      return Status::invalid_argument(
          fmt::format("block {} exists with namespace {} and {} bytes; insert says namespace {} and {} bytes",
                      rec.key.to_hex(), img.ns_id, img.payload_bytes, rec.namespace_id, rec.payload_bytes));
    }
    if ((img.tiers & bit) != 0) {
      if (locator_of(img, rec.tier) == rec.locator) return {};  // already recorded
      return Status::already_exists(
          fmt::format("block {} is already resident in {} elsewhere", rec.key.to_hex(), tier_name(rec.tier)));
    }
    const uint8_t before = img.tiers;
    if ((before & bit) == 0) add_tiers(m.after, bit, img.payload_bytes, +1);
    img.tiers |= bit;
    set_locator(img, rec.tier, rec.locator);
    img.last_access = seg_.now_ticks();
    m.add(JournalOp::kWrite, existing, img);
    m.record_change(IndexChange::Kind::kStored, img, before, img.tiers);
    commit(m);
    return {};
  }

  if (m.after.entries >= seg_.capacity()) {
    KVTIER_RETURN_IF_ERROR(evict_one_for_room(policy, listener));
    m.after = counters();
  }
  EntryImage img;
  img.key_hi = rec.key.hi;
  img.key_lo = rec.key.lo;
  img.parent_lo = rec.parent.lo;
  img.payload_bytes = rec.payload_bytes;
  img.ns_id = rec.namespace_id;
  img.tiers = bit;
  set_locator(img, rec.tier, rec.locator);
  img.last_access = seg_.now_ticks();
  img.freq = static_cast<uint8_t>(1 + recalled_uses(seg_, rec.key.hi, rec.key.lo, img.last_access));  // back: its uses
  const uint64_t parent = find_slot(rec.parent.hi, rec.parent.lo);
  EntryImage parent_img;
  if (parent != kNoSlot) {
    parent_img = image(parent);
    if (parent_img.child_count < UINT16_MAX) {
      ++parent_img.child_count;
      img.flags |= kFlagCountedInParent;
    }
  }
  m.add(JournalOp::kWrite, find_empty(rec.key.lo), img);
  if ((img.flags & kFlagCountedInParent) != 0) m.add(JournalOp::kWrite, parent, parent_img);
  ++m.after.entries;
  ++m.after.inserts;
  add_tiers(m.after, bit, img.payload_bytes, +1);
  m.record_change(IndexChange::Kind::kStored, img, 0, img.tiers);
  commit(m);
  age_out_ghosts(seg_, m.after.entries, img.last_access);
  after_insert(seg_.learning(), m.after.entries, img.last_access);
  return {};
}

Status IndexWriter::remove_slot(uint64_t slot, const EntryImage& img, bool count_eviction) {
  // The freshest use count: pinners bump it outside the seqlock, so `img` may predate their uses.
  const uint8_t uses = std::max(img.freq, load_relaxed(seg_.entry(slot).freq));
  const uint32_t last_use = load_relaxed(seg_.entry(slot).last_access);
  Mutation m;
  m.after = counters();
  m.add(JournalOp::kClearIfUnpinned, slot, EntryImage{});
  if ((img.flags & kFlagCountedInParent) != 0) {
    const uint64_t parent = find_slot_by_lo(img.parent_lo);
    if (parent != kNoSlot) {
      EntryImage p = image(parent);
      if (p.child_count > 0) --p.child_count;
      m.add(JournalOp::kWrite, parent, p);
    }
  }
  --m.after.entries;
  add_tiers(m.after, img.tiers, img.payload_bytes, -1);
  ++(count_eviction ? m.after.evictions : m.after.removes);
  m.record_change(IndexChange::Kind::kRemoved, img, img.tiers, 0);
  m.continue_shift_from = slot;
  // Odd before the hole opens: a reader whose probe stops at the hole must know to look again.
  auto& shift_seq = seg_.header().shift_seq.value;
  shift_seq.fetch_add(1, std::memory_order_acq_rel);
  if (commit(m) == Applied::kVoidedByPin) {
    shift_seq.fetch_add(1, std::memory_order_release);
    return Status::failed_precondition(fmt::format("block {} is pinned", BlockKey{img.key_hi, img.key_lo}.to_hex()));
  }
  shift_from(slot);
  remember_uses(seg_, img.key_hi, img.key_lo, uses, last_use, seg_.now_ticks());
  return {};
}

Status IndexWriter::remove(const BlockKey& key) {
  const uint64_t slot = find_slot(key.hi, key.lo);
  if (slot == kNoSlot) return Status::not_found(fmt::format("block {} is not in the index", key.to_hex()));
  return remove_slot(slot, image(slot), /*count_eviction=*/false);
}

Status IndexWriter::drop_tier(const BlockKey& key, Tier tier, std::optional<uint64_t> only_locator) {
  const uint64_t slot = find_slot(key.hi, key.lo);
  const uint8_t bit = tier_bit(tier);
  if (slot == kNoSlot) return Status::not_found(fmt::format("block {} is not in the index", key.to_hex()));
  EntryImage img = image(slot);
  if ((img.tiers & bit) == 0) {
    return Status::not_found(fmt::format("block {} is not resident in {}", key.to_hex(), tier_name(tier)));
  }
  if (only_locator && locator_of(img, tier) != *only_locator) {
    return Status::not_found(
        fmt::format("block {} is resident in {} with another holder", key.to_hex(), tier_name(tier)));
  }
  if (img.tiers == bit) return remove_slot(slot, img, /*count_eviction=*/false);
  Mutation m;
  m.after = counters();
  const uint8_t before = img.tiers;
  img.tiers &= static_cast<uint8_t>(~bit);
  set_locator(img, tier, 0);
  add_tiers(m.after, bit, img.payload_bytes, -1);
  // A pin holds host or SSD bytes in place; an engine's GPU copy is not what it protects.
  m.add(tier == Tier::kHbm ? JournalOp::kWrite : JournalOp::kWriteIfUnpinned, slot, img);
  m.record_change(IndexChange::Kind::kRemoved, img, before, img.tiers);
  if (commit(m) == Applied::kVoidedByPin) {
    return Status::failed_precondition(fmt::format("block {} is pinned", key.to_hex()));
  }
  return {};
}

// Backward-shift deletion: pull each later entry of the probe run into the hole when the hole
// lies on its probe path, so no tombstones accumulate under churn. shift_seq stays odd while
// entries move, which tells a reader whose probe came up empty to look again.
void IndexWriter::shift_from(uint64_t hole) {
  auto& shift_seq = seg_.header().shift_seq.value;
  if ((shift_seq.load(std::memory_order_relaxed) & 1) == 0) shift_seq.fetch_add(1, std::memory_order_acq_rel);
  for (uint64_t j = seg_.next(hole);; j = seg_.next(j)) {
    const EntryImage img = image(j);
    if (img.tiers == 0) break;
    if (distance(seg_.home(img.key_lo), j) >= distance(hole, j)) {
      Mutation m;
      m.after = counters();
      m.add(JournalOp::kMove, hole, img, j);
      m.continue_shift_from = j;
      commit(m);
      crash_point("shift-step");
      hole = j;
    }
  }
  finish_journal();
  shift_seq.fetch_add(1, std::memory_order_release);
}

uint64_t IndexWriter::drop_hbm_of_process(uint32_t p) {
  const uint8_t hbm = tier_bit(Tier::kHbm);
  uint64_t dropped = 0;
  for (uint64_t s = 0; s < seg_.slots();) {
    const EntryImage img = image(s);
    if ((img.tiers & hbm) == 0 || (img.hbm >> 24) != p) {
      ++s;
      continue;
    }
    const BlockKey key{img.key_hi, img.key_lo};
    if (drop_tier(key, Tier::kHbm).ok()) ++dropped;
    // Removing an HBM-only entry shifts later ones back into slot s: look at it again. An entry
    // this pass cannot drop (pinned, HBM only) keeps its residency rather than looping forever.
    if (image(s).key_lo == img.key_lo && image(s).key_hi == img.key_hi) ++s;
  }
  return dropped;
}

void IndexWriter::reclaim_process(uint32_t p) {
  SegmentHeader& h = seg_.header();
  const uint32_t bit = 1u << p;
  ProcessSlot& slot = seg_.process(p);
  // First make the dead process's pins inert, then wipe them; a crash between leaves the slot
  // draining, and the next maintain() sweeps again.
  h.draining_mask.fetch_or(bit, std::memory_order_acq_rel);
  h.live_mask.fetch_and(~bit, std::memory_order_acq_rel);
  slot.state.store(static_cast<uint32_t>(ProcessState::kDraining), std::memory_order_release);
  crash_point("reclaim-started");
  for (uint64_t s = 0; s < seg_.slots(); ++s) {
    auto& ctl = seg_.entry(s).ctl;
    uint64_t c = ctl.load(std::memory_order_relaxed);
    while ((c & bit) != 0 && !ctl.compare_exchange_weak(c, c & ~uint64_t{bit}, std::memory_order_acq_rel)) {
    }
  }
  drop_hbm_of_process(p);  // before the slot is free: a new process there must not inherit it
  h.draining_mask.fetch_and(~bit, std::memory_order_acq_rel);
  slot.state.store(static_cast<uint32_t>(ProcessState::kFree), std::memory_order_release);
  h.processes_reclaimed.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace kvtier::index
