// Eviction policies: which resident block a full tier gives up first.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "kvtier/result.h"

namespace kvtier {

// What a policy sees of a candidate. `age` is ticks (1/1024 s) since the block was last
// inserted or acquired.
struct EvictionCandidate {
  uint32_t age = 0;
  uint16_t child_count = 0;  // cached blocks that extend this one
  uint8_t frequency = 0;
  uint32_t payload_bytes = 0;
  // What the index has learnt of blocks like this one (its use count) at this age: the hits it
  // can expect per tick it stays (docs/index.md#eviction). Negative while the index has learnt
  // nothing yet (a new segment, or one a build before the learning made).
  float hit_density = -1;
};

enum class EvictionAction : uint8_t {
  kDrop,    // the block leaves the cache
  kDemote,  // the block moves to a slower tier and stays reachable
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual std::string_view name() const = 0;
  // False vetoes the candidate for this action.
  virtual bool may_evict(const EvictionCandidate& c, EvictionAction action) const = 0;
  // Among allowed candidates, the highest rank goes first.
  virtual uint64_t rank(const EvictionCandidate& c) const = 0;
  // Put admission (docs/index.md#admission): whether a block entering a full tier (`newcomer`:
  // age 0, the uses the index remembers of it) is worth the block eviction would take for it next
  // (`victim`). A policy that does not judge admission admits every block.
  virtual bool admits(const EvictionCandidate& /*newcomer*/, const EvictionCandidate& /*victim*/) const { return true; }
};

// Least recently used; the baseline.
std::shared_ptr<const EvictionPolicy> make_lru_policy();
// Prefix-aware: a block that cached blocks extend is never dropped before them, so chains shrink
// from their tails and a cached tail never loses its head. Leaves go first, oldest first; a
// non-leaf may be demoted (it stays reachable) once no leaf is left to take.
std::shared_ptr<const EvictionPolicy> make_prefix_aware_policy();
// "prefix-frequency": prefix-aware, and among leaves a block used once goes well before one used
// again (its age counts twice; a block used f times, 1/f of its age).
std::shared_ptr<const EvictionPolicy> make_prefix_frequency_policy();
// "hit-density", the default: prefix-aware, and among leaves the lowest learnt hit density goes
// first (the index learns it from its own history, docs/index.md#eviction; prefix-frequency's
// order until it has learnt anything).
std::shared_ptr<const EvictionPolicy> make_hit_density_policy();
std::shared_ptr<const EvictionPolicy> make_default_eviction_policy();
inline constexpr std::string_view kDefaultEvictionPolicy = "hit-density";
// "prefix-frequency", "prefix-aware", "lru", "s3fifo" (S3-FIFO's quick demotion: blocks used
// once first, oldest first) or "hit-density". For every policy a block inserted again after eviction starts with the
// uses it had (the index's memory of evicted blocks, docs/index.md#eviction), which plays the role
// of S3-FIFO's ghost queue.
Result<std::shared_ptr<const EvictionPolicy>> make_eviction_policy(std::string_view name);

}  // namespace kvtier
