// The tier seam. TierRecords: what every tier offers, whether kvtier holds its bytes or not (the
// HBM tier's bytes are the engines'; tiers/hbm/hbm_tier_records.h). TierStore: what a tier whose
// bytes kvtier holds (host memory, SSD) offers the node's mover (server/node/tier_mover.h).
//
// The index records where a block lives (a tier bit and an opaque locator per tier); a TierStore
// keeps the bytes behind that locator. The mover is the only code that moves blocks between
// tiers, and it does so through this interface alone, so the policy study can drive the same
// mover over simulated tiers. CacheLib's Navy engine has the same shape (could-exist, insert,
// lookup, remove, flush, recover, counters).
//
// Writes are two-step: insert() (or reserve() and filling in place) gives a copy the caller still
// owns; commit() hands it to the cache once the index names it. A process killed between the two
// leaves nothing behind for good (host: a reservation reclaimed; SSD: a block recovery re-indexes).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "common/counter_visitor.h"
#include "kvtier/block_key.h"
#include "kvtier/result.h"
#include "kvtier/tier.h"

namespace kvtier::tiers {

// What a tier keeps beside a block's bytes: enough to put it back in the index after a restart.
struct TierBlock {
  BlockKey key;
  uint64_t parent_lo = 0;  // low half of the parent's key, as the index records it
  uint16_t namespace_id = 0;
  uint32_t payload_bytes = 0;
};

// Space reserved for a block and filled in place (a read from another tier lands straight in it).
struct TierSpace {
  uint64_t locator = 0;
  std::span<uint8_t> bytes;  // at least the payload; may be rounded up for direct I/O
};

struct TierRead {
  TierBlock block;
  uint64_t locator = 0;    // as the index records it in this tier
  std::span<uint8_t> out;  // at least payload_bytes
  Status status;           // not_found: not in this tier (a miss); other errors: dropped, a miss
};

// A tier's counters go to the node's CounterVisitor (src/common/counter_visitor.h).
using kvtier::CounterVisitor;

class TierRecords {
 public:
  virtual ~TierRecords() = default;

  virtual Tier tier() const = 0;
  // Bytes of payload the tier can hold (what the index's watermarks are fractions of); 0 where the
  // node does not limit it (HBM: the engines size their own caches).
  virtual uint64_t capacity_bytes() const = 0;
  // Whether the tier still holds the block (an index record may outlive a lost copy).
  virtual bool contains(const BlockKey& key, uint64_t locator) const = 0;
  // The index no longer names the copy at `locator` (evicted, dropped, cleared): free what it held.
  virtual void remove(const BlockKey& key, uint64_t locator) = 0;
  virtual void visit_counters(CounterVisitor& visitor) const = 0;
};

class TierStore : public TierRecords {
 public:
  // Space for the block, to fill in place before commit(); failed_precondition where the tier
  // cannot be written in place (SSD: use insert()). resource_exhausted when full.
  virtual Result<TierSpace> reserve(const TierBlock& block) = 0;
  // Copies the block in; returns its locator. resource_exhausted when full; unavailable when failing.
  virtual Result<uint64_t> insert(const TierBlock& block, std::span<const uint8_t> payload) = 0;
  // The index now names the copy at `locator`: it is the cache's from here on.
  virtual Status commit(uint64_t locator) = 0;
  // Gives up a copy the index never named (reserve() or insert() not followed by commit()).
  virtual void abandon(const BlockKey& key, uint64_t locator) = 0;

  // The payload readable where it lies, or empty where the tier's bytes are not addressable
  // (SSD: use read()). Valid while the caller holds a pin on the block.
  virtual std::span<const uint8_t> view(uint64_t locator, uint32_t payload_bytes) const = 0;
  // Reads a batch of blocks (concurrently where the tier can).
  virtual void read(std::span<TierRead> reads) = 0;
  // Bytes of capacity_bytes() its blocks take now, rounding and reservations included (what fills
  // the tier; the index counts payload alone).
  virtual uint64_t used_bytes() const = 0;
  // Returns once every committed block is durable where the tier can make it so.
  virtual Status flush() = 0;
  // Calls fn for every block the tier kept across a restart, with its locator.
  virtual void recover(const std::function<void(const TierBlock&, uint64_t locator)>& fn) const = 0;
};

}  // namespace kvtier::tiers
