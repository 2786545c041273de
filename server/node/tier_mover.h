// TierMover: the only code that moves blocks between the node's tiers (docs/architecture.md).
//
// It owns every decision and copy between host memory and SSD:
//   - victim selection by the node's policy (recorded in the index segment, so engines evict by
//     the same one), and the SSD tier's admission filter;
//   - demotion, copy then evict: the victims are pinned quietly, the admitted ones copied into the
//     SSD tier outside the index's writer lock and recorded there, then exactly those victims leave
//     host memory (the copied ones stay cached on SSD, the others are dropped);
//   - promotion: SSD blocks read in one batch straight into reserved host space, then published;
//   - room requests from engines whose put found the arena full;
//   - drops: blocks an operator evicts or clears, and blocks the SSD tier lost;
//   - reconciliation at start of the index with what the SSD tier kept.
// It works through TierStore alone, so the policy study drives this same code over simulated
// tiers. Thread-safe: passes that move blocks take one lock; promotion runs beside them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "common/clock.h"
#include "index/index_mechanics.h"
#include "kvtier/block_index.h"
#include "tiers/ssd/admission_filter.h"
#include "tiers/tier_releaser.h"
#include "tiers/tier_store.h"

namespace kvtier::node {

struct TierMoverStats {
  ssd::AdmissionStats admission;
  uint64_t demoted = 0;             // blocks copied to SSD on their way out of host memory
  uint64_t demote_refused = 0;      // copies the SSD tier refused (full, failing)
  uint64_t demoted_for_prefix = 0;  // of demoted: used too few times itself, written for a near ancestor's uses
  uint64_t demote_declined = 0;     // victims the policy judged worth less than the SSD block a copy would push out
  uint64_t promoted = 0, promote_misses = 0, promote_failed = 0;
  uint64_t ssd_drops = 0;                                    // blocks the SSD tier lost, dropped from the index
  uint64_t reconcile_forgotten = 0, reconcile_restored = 0;  // at start (reconcile)
};

// What clear_namespace() did.
struct ClearReport {
  uint64_t removed = 0;  // blocks no longer in host memory or on SSD
  uint64_t busy = 0;     // left in place: pinned by an engine (or being loaded) at the time
};

class TierMover {
 public:
  // `ssd` null: no SSD tier; host victims are dropped. Registers itself with the index as the
  // process's releaser of host and SSD copies. The index, stores and mover live together.
  // `clock` (null: the steady clock) is what the admission filter's write budget is judged by.
  TierMover(BlockIndex& index, tiers::TierStore& host, tiers::TierStore* ssd, const ssd::AdmissionOptions& admission,
            const Clock* clock = nullptr);
  ~TierMover();
  TierMover(const TierMover&) = delete;
  TierMover& operator=(const TierMover&) = delete;

  // Frees host memory down to its low watermark, or at least `bytes`, copying admitted victims to
  // SSD first. Returns the blocks written to SSD; `report` (optional) gets what evicting did.
  Result<size_t> demote(uint64_t bytes, EvictionReport* report = nullptr);
  // An engine asked for room (a size class can fill below the watermark): a slice of the arena.
  Result<size_t> make_room();
  // Payload bytes demote(0) frees: host memory past its high watermark, judged by what the host
  // tier's blocks take (whole arena units) as well as by their payload.
  uint64_t host_bytes_over_watermark() const;
  // Reads these SSD blocks into host memory (those not there already). Returns blocks promoted.
  size_t promote(std::span<const BlockKey> keys);
  // Frees at least `bytes` of the host tier (a demotion pass) or of the SSD tier (dropped by the
  // policy). invalid_argument for HBM, failed_precondition for SSD on a node without it.
  Result<EvictionReport> evict(Tier tier, uint64_t bytes);
  // Removes the namespace's blocks from host memory and SSD; pinned ones are retried briefly,
  // then left and counted as busy.
  ClearReport clear_namespace(uint16_t namespace_id);
  // At start: the index (shared memory) and the SSD tier (its catalogue) each survive a restart
  // and either may know blocks the other lost. SSD is the truth for SSD residency: the index
  // forgets SSD blocks the tier did not keep and learns those it did, parents first (so a node
  // whose shared memory was wiped still starts warm from SSD).
  void reconcile();
  // The SSD tier lost the block: the index stops offering it from SSD (retried later while pinned).
  void forget_ssd_block(const BlockKey& key);
  // Retries the drops that found their block pinned.
  void retry_ssd_drops();

  TierMoverStats stats() const;
  void visit_counters(tiers::CounterVisitor& visitor) const;

 private:
  Result<bool> copy_to_ssd(const BlockInfo& victim);
  index::DemotionBar demotion_bar();

  BlockIndex& index_;
  tiers::TierStore& host_;
  tiers::TierStore* ssd_;
  tiers::TierReleaser releaser_;
  const Clock& clock_;

  mutable std::mutex move_mu_;  // one demotion or clearing pass at a time
  ssd::AdmissionFilter admission_;

  std::mutex pending_mu_;
  std::vector<BlockKey> pending_ssd_drops_;  // the SSD tier lost them, but the index had them pinned

  std::atomic<uint64_t> demoted_{0}, for_prefix_{0}, demote_refused_{0}, declined_{0}, promoted_{0}, promote_misses_{0},
      promote_failed_{0}, ssd_drops_{0}, reconcile_forgotten_{0}, reconcile_restored_{0};
};

}  // namespace kvtier::node
