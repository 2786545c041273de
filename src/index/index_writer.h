// IndexWriter: every mutation of the index, made under the segment's robust writer lock and
// journalled so that a writer killed at any instruction is rolled forward by the next one
// (docs/index.md, "Crash story").
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "index/index_mechanics.h"
#include "index/index_segment.h"
#include "kvtier/block_index.h"
#include "kvtier/eviction_policy.h"

namespace kvtier::index {

class IndexWriter {
 public:
  explicit IndexWriter(IndexSegment& seg) : seg_(seg) {}

  // Holds the writer lock for its scope. Taking it from a dead owner replays that owner's journal.
  class Lock {
   public:
    explicit Lock(IndexWriter& w);
    ~Lock();
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

   private:
    IndexWriter& w_;
  };
  // Takes the lock only if it is free or its owner died (then recovers); false if a live writer holds it.
  bool try_recover_dead_writer();

  // --- Under the lock. ---
  Status insert(const BlockRecord& rec, const EvictionPolicy& policy, EvictionListener* listener);
  // `only_locator`: drop only while the tier is recorded with that locator (an HBM holder).
  Status drop_tier(const BlockKey& key, Tier tier, std::optional<uint64_t> only_locator = std::nullopt);
  Status remove(const BlockKey& key);
  // Drops the HBM residency recorded for a process slot (the engine left or died: its GPU memory
  // is gone). Returns how many blocks lost it.
  uint64_t drop_hbm_of_process(uint32_t process_slot);
  Result<EvictionReport> evict(Tier tier, uint64_t bytes, const EvictionPolicy& policy, EvictionListener* listener);
  Result<EvictionReport> evict_keys(Tier tier, std::span<const BlockKey> keys, const EvictionPolicy& policy,
                                    EvictionListener* listener);
  std::vector<EvictionVictim> eviction_candidates(Tier tier, uint64_t bytes, const EvictionPolicy& policy,
                                                  const DemotionBar& bar);
  // evict()'s next victim in `tier` as the policy sees it; the clock hand is left where it was.
  std::optional<EvictionCandidate> next_victim(Tier tier, const EvictionPolicy& policy);
  // Put admission: whether a block not in the index, extending the cached block `parent`, may
  // enter `tier`, by the policy's admits() against the block eviction would take next (a block
  // whose parent is not cached is admitted); refuse() records a refusal (the block is remembered
  // as if admitted and evicted at once, so its return is evidence like any other).
  PutVerdict admit(const BlockKey& key, const BlockKey& parent, Tier tier, const EvictionPolicy& policy);
  void refuse(const BlockKey& key);
  // Pins of a dead process become inert at once and are then cleared from every entry; its HBM
  // residency goes too.
  void reclaim_process(uint32_t process_slot);
  // Replays an active journal record and finishes an interrupted backward shift.
  void recover();
  Status check_invariants() const;

 private:
  // A mutation as staged before commit: up to two slot writes with absolute images, the counters
  // as they will be afterwards, an optional change record, and where a deletion's shift resumes.
  struct Mutation {
    JournalWrite writes[2];
    uint32_t num_writes = 0;
    Counters after;
    bool has_change = false;
    ChangeRecordBody change;
    uint64_t continue_shift_from = kNoSlot;

    void add(JournalOp op, uint64_t slot, const EntryImage& image, uint64_t src = kNoSlot) {
      writes[num_writes++] = JournalWrite{op, 0, slot, src, image};
    }
    void record_change(IndexChange::Kind kind, const EntryImage& img, uint8_t before, uint8_t after_tiers) {
      has_change = true;
      change = ChangeRecordBody{
          img.key_hi, img.key_lo, img.parent_lo, img.payload_bytes, img.ns_id, static_cast<uint8_t>(kind),
          before,     after_tiers};
    }
  };
  enum class Applied { kDone, kVoidedByPin };
  struct Victim;
  // Victims a batch has chosen but not yet evicted: passed over, and counted off their parents'
  // children (a parent whose children are all chosen is a leaf to the batch).
  struct NoneChosen {
    bool taken(uint64_t) const { return false; }
    uint32_t children_taken(uint64_t) const { return 0; }
  };
  class ChosenVictims;
  template <typename ActionOf, typename Chosen = NoneChosen>
  Victim sample_victim(uint8_t tiers, const EvictionPolicy& policy, ActionOf action_of, uint64_t& scanned,
                       uint64_t& skipped_pinned, const Chosen& chosen = {}, bool spare_recent_copies = true);

  // A block as the policy sees it at `now`, with `children` cached children.
  EvictionCandidate candidate(const EntryImage& img, uint32_t now, uint16_t children) const;
  static EvictionAction action_of(const EntryImage& img, Tier tier);
  bool evict_victim(const Victim& best, Tier tier, EvictionListener* listener, EvictionReport& report);
  uint64_t find_slot(uint64_t key_hi, uint64_t key_lo) const;
  uint64_t find_slot_by_lo(uint64_t key_lo) const;
  enum class Reuse : uint8_t { kNone, kItself, kAncestor };
  Reuse reused(const EntryImage& img, uint32_t min_uses, uint32_t hops) const;
  uint64_t find_empty(uint64_t key_lo) const;
  EntryImage image(uint64_t slot) const;
  void store_tag(uint64_t slot, uint8_t tag);
  Counters counters() const;
  uint32_t effective_pins(uint64_t ctl) const;
  uint64_t distance(uint64_t from, uint64_t to) const;

  Applied commit(const Mutation& m);
  Applied apply(const JournalRecord& r);
  void finish_journal();
  void apply_move(const JournalWrite& w);
  void publish_change(uint64_t seq, const ChangeRecordBody& body);
  void shift_from(uint64_t hole);
  Status remove_slot(uint64_t slot, const EntryImage& img, bool count_eviction);
  Status evict_one_for_room(const EvictionPolicy& policy, EvictionListener* listener);

  IndexSegment& seg_;
};

}  // namespace kvtier::index
