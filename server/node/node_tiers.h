// NodeTiers: the node daemon's side of the cache (docs/ssd.md, docs/architecture.md).
//
// Owns the node's shared-memory index and host arena (creating them, or attaching to those a
// previous run left: a warm restart), the SSD tier, the load queue and the tier mover
// (tier_mover.h, the only code that moves blocks between tiers), and runs them:
//   - the upkeep thread: demotion when host memory passes its high watermark or an engine asks
//     for room; dead writers, dead processes' pins and reservations, a deleted SSD file;
//   - the promotion thread: keys engines queue for loading, read from SSD in batches;
//   - reconciliation at start: the index forgets SSD blocks the SSD tier did not keep, and learns
//     those it did (so a node whose shared memory was wiped still starts warm from SSD).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kvtier/block_index.h"
#include "kvtier/result.h"
#include "server/node/tier_mover.h"
#include "tiers/ssd/admission_filter.h"
#include "tiers/ssd/ssd_store.h"

namespace kvtier::node {

struct NodeTiersOptions {
  std::string node_name;
  std::string shm_prefix = "kvtier";
  uint64_t index_capacity = 1 << 20;
  uint64_t host_bytes = 1ULL << 30;
  uint64_t slab_bytes = 32ULL << 20;
  double host_high_watermark = kDefaultHighWatermark, host_low_watermark = kDefaultLowWatermark;
  std::string eviction_policy{kDefaultEvictionPolicy};
  PutAdmission put_admission = kDefaultPutAdmission;  // recorded in the index: engines' puts judge by it

  bool ssd_enabled = true;
  ssd::SsdStoreOptions ssd;
  ssd::DeviceFactory ssd_device_factory;  // tests inject faults here
  ssd::AdmissionOptions admission;
  std::unordered_map<uint16_t, ssd::Codec> codecs;  // per namespace id; absent: stored as is
  // The time the node's decisions read (the SSD tier's backoff and idle flush, the admission
  // filter's write budget, the upkeep's reclaim cadence); null: the steady clock. Not owned.
  const Clock* clock = nullptr;

  bool background = true;              // run the upkeep and promotion threads (tests drive the passes by hand)
  uint32_t upkeep_interval_ms = 10;    // demotion checks (and whenever an engine asks for room)
  uint32_t reclaim_interval_ms = 250;  // dead processes' pins and reservations (scans the arena)
  uint32_t promote_batch = 32;
  uint32_t load_queue_capacity = 4096;
  // Told each step of open() as it starts (the daemon prints progress while a long recovery runs).
  std::function<void(std::string_view phase)> on_phase;
};

struct NodeTiersStats {
  IndexStats index;
  uint64_t host_bytes = 0, host_used_bytes = 0;
  ssd::SsdStats ssd;
  ssd::AdmissionStats admission;
  uint64_t demoted = 0, demote_refused = 0;
  uint64_t load_requests = 0, promoted = 0, promote_misses = 0, promote_failed = 0;
  uint64_t reconcile_forgotten = 0, reconcile_restored = 0;
  uint64_t ssd_drops = 0;
};

class NodeTiers {
 public:
  static Result<std::unique_ptr<NodeTiers>> open(const NodeTiersOptions& options);
  // Stops the threads and writes the SSD region being filled.
  ~NodeTiers();
  NodeTiers(const NodeTiers&) = delete;
  NodeTiers& operator=(const NodeTiers&) = delete;

  static std::string index_segment(const NodeTiersOptions& o);
  static std::string host_segment(const NodeTiersOptions& o);
  static std::string load_queue_segment(const NodeTiersOptions& o);
  // Removes the node's shared-memory segments (operators and tests).
  static Status destroy_segments(const NodeTiersOptions& o);

  // One demotion pass: frees host memory down to its low watermark (or at least `bytes`),
  // copying admitted blocks to SSD first. Returns the blocks written to SSD.
  Result<size_t> demote(uint64_t bytes = 0);
  // Removes the namespace's blocks from host memory and SSD (HBM records are the engines' to
  // report). Pinned blocks are left and counted as busy.
  ClearReport clear_namespace(uint16_t namespace_id);
  // Frees at least `bytes` of the host tier (a demotion pass: admitted blocks stay on SSD) or of
  // the SSD tier (blocks dropped by the node's policy). invalid_argument for other tiers.
  Result<EvictionReport> evict(Tier tier, uint64_t bytes);
  // Reads these SSD blocks into host memory (those not there already). Returns blocks promoted.
  size_t promote(std::span<const BlockKey> keys);
  // Writes the SSD region being filled; returns once every SSD block so far is durable.
  Status flush();
  NodeTiersStats stats() const;
  // The index's, the tiers' and the mover's counters, named as /metrics names them (docs/operations.md).
  void visit_counters(tiers::CounterVisitor& visitor) const;
  BlockIndex& index();
  ssd::SsdStore* ssd();  // null when the SSD tier is disabled

 private:
  struct Impl;
  explicit NodeTiers(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvtier::node
