// The index's own mechanics: eviction with a listener that frees tier space, the two-phase
// demotion's victims and evictions, the change ring the event log reads, the manual clock. The
// node daemon (its tier mover), the client library, the event log, the policy study and tests use
// them; they are not part of the public face (include/kvtier/block_index.h), so an engine cannot
// evict or move blocks behind the node's back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "kvtier/block_index.h"

namespace kvtier {

// One residency change, as the index records it for the event log.
struct IndexChange {
  enum class Kind : uint8_t { kStored = 1, kRemoved = 2, kMoved = 3 };
  uint64_t seq = 0;  // gap-free within one index segment
  Kind kind = Kind::kStored;
  BlockKey key;
  uint64_t parent_lo = 0;
  uint16_t namespace_id = 0;
  uint32_t payload_bytes = 0;
  uint8_t tiers_before = 0;
  uint8_t tiers_after = 0;
};

// Told by the index, under its writer lock, of each block copy it stops naming (evicted, or
// dropped to make room in a full table): free its space there. Keep it quick.
class EvictionListener {
 public:
  virtual ~EvictionListener() = default;
  virtual void released(const BlockInfo& block, Tier tier) = 0;
};

namespace index {

// What put admission made of a block: kUnjudged when nothing was weighed (admission off, the tier
// below its low watermark, the block cached already): the put goes ahead.
enum class PutVerdict : uint8_t { kUnjudged, kAdmitted, kRefused };

// Which of a demotion pass's victims may be written to the tier below (docs/index.md#placement).
// A victim must have been used at least `min_uses` times (the SSD admission filter's wear guard),
// or extend a prefix that was: one of its nearest `ancestor_hops` ancestors in the index used that
// often (a returning conversation's newest turn is used once when it leaves, and is the likeliest
// to be asked for next). And the policy must admit it against `displaced`, the block the tier below
// would give up to take one (none: the tier below has room). Any other victim that no other tier
// holds is judged as a drop.
struct DemotionBar {
  uint32_t min_uses = 0;
  uint32_t ancestor_hops = 0;
  std::optional<EvictionCandidate> displaced;
};

// What the bar made of a victim, so that its caller counts what the index decided.
enum class DemotionVerdict : uint8_t {
  kHeldBelow,          // the tier below holds it already: only this copy goes
  kWrite,              // cleared the bar: copy it below
  kWriteForItsPrefix,  // the same, by a near ancestor's uses: too few of its own
  kCold,               // too little used, itself and its near ancestors
  kWorthLess,          // the policy rates it below what a copy would push out below
};

// One of eviction_candidates' victims, what evicting it would be, and why.
struct EvictionVictim {
  BlockInfo block;
  EvictionAction action = EvictionAction::kDrop;
  DemotionVerdict verdict = DemotionVerdict::kWrite;
};

struct IndexMechanics {
  // Frees at least `bytes` of `tier` (or all it can): a block cached in another tier only loses
  // this one, any other is dropped where the policy allows; `listener` frees what each held.
  static Result<EvictionReport> evict(BlockIndex& index, Tier tier, uint64_t bytes, const EvictionPolicy& policy,
                                      EvictionListener* listener);
  // evict() for exactly these blocks (each if resident in `tier`, unpinned and allowed by the
  // policy), in rounds so a listed parent goes once its listed children have: how the tier mover
  // evicts the victims it has just copied to SSD, and no others.
  static Result<EvictionReport> evict_keys(BlockIndex& index, Tier tier, std::span<const BlockKey> keys,
                                           const EvictionPolicy& policy, EvictionListener* listener);
  // The blocks evict() would take first from `tier` (up to `bytes` of them, unpinned), changing
  // nothing but the eviction clock. Each is judged against `bar` for a copy in the SSD tier (unless
  // held there already); one that does not clear it and that no other tier holds is judged as a
  // drop, any other as a demotion. The mover copies those to write into the SSD tier outside the
  // writer lock, then evicts them all.
  static std::vector<EvictionVictim> eviction_candidates(BlockIndex& index, Tier tier, uint64_t bytes,
                                                         const EvictionPolicy& policy, const DemotionBar& bar = {});
  // The block evict() would take next from `tier`, as the policy sees it (nothing changes, the
  // clock hand included); nullopt when no block can go. What a host victim must be worth for the
  // mover to write it to a full SSD tier.
  static std::optional<EvictionCandidate> next_victim(BlockIndex& index, Tier tier);
  // Put admission (index/chain_admission.h): under PutAdmission::kByPolicy, and while `tier` is
  // past its low watermark (judged by `occupied`, what its blocks take, too), judges a block not
  // in the index that extends a cached one (`parent`) against the tier's next victim by the
  // recorded policy (a block whose parent is not cached is admitted on probation); kUnjudged
  // otherwise. refuse() records a refusal the chain decided (the block's parent was refused).
  // Whether puts into `tier` can be judged at all on this node: admission by-policy, and for host
  // memory no SSD tier below it. What never changes between puts, checked before anything else.
  static bool judges_puts(const BlockIndex& index, Tier tier);
  // Whether `tier` is at or past its low watermark, by its payload or by `occupied` (what its
  // blocks take), whichever is fuller: from there on a block entering it pushes one out.
  static bool past_low_watermark(const BlockIndex& index, Tier tier, uint64_t occupied);
  static PutVerdict admit(BlockIndex& index, const BlockKey& key, const BlockKey& parent, Tier tier, uint64_t occupied);
  static void refuse(BlockIndex& index, const BlockKey& key);
  // evict() down to the low watermark, if the tier is above its high watermark.
  static Result<EvictionReport> evict_to_watermark(BlockIndex& index, Tier tier, const EvictionPolicy& policy,
                                                   EvictionListener* listener);
  // Who insert() tells about the blocks it drops to make room in a full table (their tier space
  // must be freed). A process-local setting of this handle.
  static void set_eviction_listener(BlockIndex& index, EvictionListener* listener);
  // Keeps `keep_alive` alive as long as any lease of this handle lives, even past the handle: the
  // Client ties its arena mapping to the leases behind the block views it hands out.
  static void tie_to_leases(BlockIndex& index, std::shared_ptr<const void> keep_alive);
  // Copies changes with seq >= from_seq into out; returns how many. *next_seq is where to read
  // next; *lost is set when changes before the first returned one were overwritten (resync).
  static size_t read_changes(const BlockIndex& index, uint64_t from_seq, std::span<IndexChange> out, uint64_t* next_seq,
                             bool* lost);
  // Sets the time of an index created with manual_clock, in ticks (what ages are measured in); it
  // should only grow. failed_precondition on an index that follows the monotonic clock.
  static Status set_clock(BlockIndex& index, uint32_t ticks);
};

}  // namespace index
}  // namespace kvtier
