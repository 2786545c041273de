// BlockIndex: the node's shared-memory block index (docs/index.md).
//
// One index per node lives in named shared memory. The daemon creates it; every engine process
// attaches. Lookups are plain memory reads in the caller's process: no RPC, no syscall, no lock,
// no write to shared memory. Writers (the daemon, engines committing puts) serialise on a robust
// lock; a writer killed at any instruction is rolled forward by the next one. Pins belong to a
// process and are reclaimed when it dies.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/eviction_policy.h"
#include "kvtier/result.h"
#include "kvtier/status.h"
#include "kvtier/tier.h"

namespace kvtier {

// A tier's default watermarks (fractions of its capacity): past the high one, the node's upkeep
// evicts (or demotes) down to the low one. A narrow band keeps nearly all of host memory in use:
// at 0.95 / 0.90 the policy study lost 7-11 % of its hits on Mooncake's conversation trace at 1M
// host tokens (docs/benchmarks.md). Nodes can widen it (host.high_watermark, host.low_watermark).
inline constexpr double kDefaultHighWatermark = 0.99;
inline constexpr double kDefaultLowWatermark = 0.98;

struct IndexOptions {
  // Name of the shared-memory object (in /dev/shm), e.g. "kvtier-node1-index". [A-Za-z0-9._-]+.
  std::string segment_name;
  uint64_t capacity = 1 << 20;             // live blocks at most; fixed at creation
  std::string node_name;                   // recorded in the header; at most 63 bytes
  uint64_t change_ring_records = 1 << 16;  // residency changes kept for the event log
  // Time moves only when the index's owner sets it (replaying a trace faster than it happened, as
  // the policy study does, or a test); otherwise it is the monotonic clock. Fixed at creation.
  bool manual_clock = false;
};

// Where an existing block lives. A block may be resident in several tiers at once.
struct BlockInfo {
  BlockKey key;
  uint64_t parent_lo = 0;  // low 64 bits of the parent key
  uint16_t namespace_id = 0;
  uint32_t payload_bytes = 0;
  uint8_t tiers = 0;        // tier_bit() set
  uint32_t host_loc = 0;    // host tier locator
  uint64_t ssd_loc = 0;     // SSD tier locator
  uint8_t hbm_process = 0;  // HBM: process slot of the engine holding it
  uint32_t hbm_block = 0;   // HBM: the engine's block id
  uint16_t child_count = 0;
  uint32_t last_access = 0;  // ticks (1/1024 s) since the index was created
  uint8_t frequency = 0;
  uint32_t pins = 0;  // process slots pinning it

  bool in(Tier t) const { return (tiers & tier_bit(t)) != 0; }
};

// What insert() records: the block, its parent, and one tier it is now resident in.
struct BlockRecord {
  BlockKey key;
  BlockKey parent;  // previous block's key, or the namespace root for a chain's first block
  uint16_t namespace_id = 0;
  uint32_t payload_bytes = 0;
  Tier tier = Tier::kHost;
  // host: arena locator (32 bits); ssd: location; hbm: holder process slot << 24 | engine block id
  // (24 bits): the holder's exit drops the record (a holder of 32 or more is no process)
  uint64_t locator = 0;
};

// Longest prefixes of a key chain, in blocks.
struct PrefixMatch {
  size_t overall = 0;                        // every block resident in some tier
  std::array<size_t, kNumTiers> per_tier{};  // every block resident in that tier
  size_t in(Tier t) const { return per_tier[tier_index(t)]; }
};

struct IndexStats {
  uint64_t capacity = 0, slots = 0, segment_bytes = 0;
  uint64_t entries = 0;
  std::array<uint64_t, kNumTiers> tier_entries{}, tier_bytes{}, tier_capacity{};
  uint64_t inserts = 0, removes = 0, evictions = 0, demotions = 0;
  uint64_t puts_not_admitted = 0;  // puts the node's put admission refused (every process's)
  uint64_t recoveries = 0, processes_reclaimed = 0, processes_attached = 0;
  uint64_t probes = 0;  // key probes made through this handle (process-local: lookups write nothing shared)
  uint64_t change_seq = 0;
  double occupancy() const { return capacity ? static_cast<double>(entries) / static_cast<double>(capacity) : 0; }
};

// How the node admits engines' puts into host memory (host.put_admission, docs/index.md#admission).
enum class PutAdmission : uint32_t {
  kAll = 0,       // "all": every put
  kByPolicy = 1,  // "by-policy", the default: while host memory is past its low watermark, the
                  // eviction policy judges the first new block extending a cached chain against the
                  // block eviction would take for it (EvictionPolicy::admits; hit-density refuses a
                  // lower learnt density), and the rest of the chain follows; a refused put returns
                  // not_admitted. A chain the node holds nothing of is admitted.
};
inline constexpr PutAdmission kDefaultPutAdmission = PutAdmission::kByPolicy;
// "all" or "by-policy"; invalid_argument for anything else.
Result<PutAdmission> parse_put_admission(std::string_view name);
std::string_view put_admission_name(PutAdmission admission);

class BlockIndex;
namespace index {
struct IndexMechanics;  // the node's and the client library's own operations (src/index/index_mechanics.h)
}  // namespace index

// A pin on one block, held by this process until the lease is destroyed or released. While any
// lease on a block exists the block is never evicted, removed or moved out of a tier.
class BlockLease {
 public:
  BlockLease() = default;
  BlockLease(BlockLease&& other) noexcept;
  BlockLease& operator=(BlockLease&& other) noexcept;
  BlockLease(const BlockLease&) = delete;
  BlockLease& operator=(const BlockLease&) = delete;
  ~BlockLease() { release(); }

  explicit operator bool() const { return owner_ != nullptr; }
  const BlockInfo& info() const { return info_; }
  const BlockKey& key() const { return info_.key; }
  void release();

 private:
  friend class BlockIndex;
  struct Owner;
  BlockLease(std::shared_ptr<Owner> owner, const BlockInfo& info) : owner_(std::move(owner)), info_(info) {}
  std::shared_ptr<Owner> owner_;
  BlockInfo info_;
};

struct EvictionReport {
  uint64_t bytes_freed = 0;
  uint64_t blocks_dropped = 0;
  uint64_t blocks_demoted = 0;
  uint64_t candidates_skipped_pinned = 0;
};

class BlockIndex {
 public:
  // Creates a new segment; fails with already_exists if one has that name.
  static Result<BlockIndex> create(const IndexOptions& options);
  // Attaches to an existing, compatible segment (a warm restart), or creates it.
  static Result<BlockIndex> open_or_create(const IndexOptions& options);
  // Attaches to an existing segment (engine processes). version_mismatch if its layout differs.
  static Result<BlockIndex> attach(std::string_view segment_name);
  // Removes the segment's name; processes that have it mapped keep using it until they detach.
  static Status destroy(std::string_view segment_name);

  BlockIndex(BlockIndex&&) noexcept;
  BlockIndex& operator=(BlockIndex&&) noexcept;
  ~BlockIndex();

  // --- Lookups: lock-free, wait-free for readers, never pin, never write shared memory. ---
  PrefixMatch match_prefix(std::span<const BlockKey> keys) const;
  bool contains(const BlockKey& key) const;
  std::optional<BlockInfo> lookup(const BlockKey& key) const;

  // --- Pins. ---
  // Whether a pin counts as a use of the block (recency and frequency, which eviction and SSD
  // admission read). The daemon's own pins (copying a block to SSD) must not make it look hot.
  enum class AccessMode : uint8_t { kRecord, kQuiet };
  // Matches the chain and pins its longest resident prefix in one step: every returned lease's
  // block was resident when pinned. Fails only if this process cannot get a process slot.
  Result<std::vector<BlockLease>> acquire(std::span<const BlockKey> keys, AccessMode mode = AccessMode::kRecord);

  // This process's tag in the index's process table (joining it if needed): slot and generation.
  // Host-arena reservations carry it, so they can be reclaimed when the process dies.
  Result<uint32_t> owner_tag();
  // The process slot (0..31) an owner tag names.
  static constexpr uint32_t owner_slot(uint32_t owner_tag) { return owner_tag & 63; }
  // Whether the process with that tag is still registered (a dead one is, until maintain()).
  bool owner_alive(uint32_t owner_tag) const;
  // Calls fn for every resident block (a lock-free scan: a block resident throughout is seen;
  // one added or removed meanwhile may or may not be).
  void for_each_block(const std::function<void(const BlockInfo&)>& fn) const;

  // --- Writes. ---
  // Records that the block is resident in record.tier (adding the block if it is new). A block
  // already resident in that tier with that locator is a cheap no-op; with another locator it
  // is already_exists (first writer wins: the caller frees its copy). When the index is full,
  // first drops one block by the node's recorded policy (eviction_policy()).
  Status insert(const BlockRecord& record);
  // Drops one tier; the block leaves the index when no tier remains. failed_precondition if pinned.
  Status drop_tier(const BlockKey& key, Tier tier);
  // Drops `tier` only while it is recorded with `locator` (an engine giving up its HBM copy never
  // takes another engine's record with it); not_found otherwise. HBM residency drops even while
  // the block is pinned: pins hold host and SSD bytes, not an engine's GPU copy.
  Status drop_tier_at(const BlockKey& key, Tier tier, uint64_t locator);
  // Drops every tier. failed_precondition if pinned; not_found if absent.
  Status remove(const BlockKey& key);

  // --- Capacity and eviction. ---
  // Bytes a tier may hold, and the watermarks (fractions) that start and stop eviction.
  Status set_tier_capacity(Tier tier, uint64_t bytes, double high_watermark = kDefaultHighWatermark,
                           double low_watermark = kDefaultLowWatermark);
  bool above_high_watermark(Tier tier) const;
  // Bytes above the tier's low watermark (0 when it is not above its high watermark).
  uint64_t bytes_over_watermark(Tier tier) const;
  // The same, judged also by `occupied`: bytes of the tier's capacity its blocks take, rounding
  // and reservations included (the host arena gives each block whole 64 KiB units, so it can fill
  // while payload is well below the watermark). Returns the payload bytes to free: the larger of
  // the two judgements, the occupied excess scaled by the payload's share of what is occupied.
  uint64_t bytes_over_watermark(Tier tier, uint64_t occupied) const;
  // The node's eviction policy, recorded in the segment so that every process (the daemon's
  // mover, an engine whose put finds the arena full, insert() in a full table) evicts by the one
  // the daemon was configured with. invalid_argument for a name make_eviction_policy rejects.
  Status record_eviction_policy(std::string_view name);
  // The recorded policy; the default (hit-density) when none was recorded.
  std::shared_ptr<const EvictionPolicy> eviction_policy() const;
  // The node's put admission, recorded in the segment as the policy is (engines' puts judge by
  // it); kDefaultPutAdmission when none was recorded.
  void record_put_admission(PutAdmission admission);
  PutAdmission put_admission() const;

  // --- Upkeep. ---
  // Recovers a dead writer (if any) and reclaims the pins of dead processes. The daemon calls it
  // periodically; any process may.
  Status maintain();
  // Full scan of the structural invariants (probe chains, counters, versions, child counts).
  Status check_invariants() const;
  IndexStats stats() const;
  std::string segment_name() const;
  uint64_t creation_epoch() const;
  std::string node_name() const;

 private:
  friend struct index::IndexMechanics;
  struct Impl;
  explicit BlockIndex(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace kvtier
