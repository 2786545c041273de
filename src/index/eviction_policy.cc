#include "kvtier/eviction_policy.h"

#include <array>
#include <iterator>
#include <string>

#include "index/recorded_policy.h"

namespace kvtier {
namespace {

class LruPolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "lru"; }
  bool may_evict(const EvictionCandidate&, EvictionAction) const override { return true; }
  uint64_t rank(const EvictionCandidate& c) const override { return c.age; }
};

class PrefixAwarePolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "prefix-aware"; }
  // Dropping a block that cached blocks extend would strand them: their prefix could never
  // match again. Demoting it keeps the chain reachable, so that is allowed.
  bool may_evict(const EvictionCandidate& c, EvictionAction action) const override {
    return action == EvictionAction::kDemote || c.child_count == 0;
  }
  // Leaves outrank every inner block; among equals, the oldest goes first.
  uint64_t rank(const EvictionCandidate& c) const override {
    return (c.child_count == 0 ? uint64_t{1} << 32 : 0) + c.age;
  }
};

// S3-FIFO's quick demotion (Yang et al., SOSP'23) in the index's terms: most blocks are used
// once, so those go first, oldest first, and blocks used again keep their place by recency. The
// index's memory of evicted blocks' uses (evicted_uses.h) stands in for S3-FIFO's ghost queue.
class S3FifoPolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "s3fifo"; }
  bool may_evict(const EvictionCandidate&, EvictionAction) const override { return true; }
  uint64_t rank(const EvictionCandidate& c) const override {
    return (c.frequency <= 1 ? uint64_t{1} << 32 : 0) + c.age;
  }
};

// Prefix-aware, and frequency-aware among leaves: a block used once ages twice as fast,
// one used f times 1/f as fast, so shared prefixes and conversations that came back outlive
// one-off prompts, which are most of what arrives. With the index's memory of evicted blocks a
// conversation that comes back after its blocks were evicted counts as used again. The policy
// study picked the weights (docs/benchmarks.md): on Mooncake's conversation trace this is 1.47×
// LRU's hit ratio at 1M tokens and above LRU at every host size measured.
class PrefixFrequencyPolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "prefix-frequency"; }
  bool may_evict(const EvictionCandidate& c, EvictionAction action) const override {
    return action == EvictionAction::kDemote || c.child_count == 0;
  }
  uint64_t rank(const EvictionCandidate& c) const override {
    const uint64_t age = c.age;
    const uint64_t weighted = c.frequency <= 1 ? 2 * age : age / c.frequency;
    return (c.child_count == 0 ? uint64_t{1} << 40 : 0) + weighted;
  }
};

}  // namespace

std::shared_ptr<const EvictionPolicy> make_lru_policy() { return std::make_shared<LruPolicy>(); }
std::shared_ptr<const EvictionPolicy> make_prefix_aware_policy() { return std::make_shared<PrefixAwarePolicy>(); }
std::shared_ptr<const EvictionPolicy> make_default_eviction_policy() {
  return std::make_shared<PrefixFrequencyPolicy>();
}

namespace index {
namespace {

// Recorded ids, in this order forever (segments outlive daemons): 0 is "none recorded".
constexpr std::string_view kRecordedNames[] = {"", "prefix-frequency", "prefix-aware", "lru", "s3fifo"};

}  // namespace

uint32_t recorded_policy_id(std::string_view name) {
  for (uint32_t id = 1; id < std::size(kRecordedNames); ++id) {
    if (kRecordedNames[id] == name) return id;
  }
  return 0;
}

const std::shared_ptr<const EvictionPolicy>& recorded_policy(uint32_t id) {
  // Policies are stateless: one instance of each serves every index handle in the process.
  static const std::array<std::shared_ptr<const EvictionPolicy>, std::size(kRecordedNames)> policies = [] {
    std::array<std::shared_ptr<const EvictionPolicy>, std::size(kRecordedNames)> p;
    p[0] = make_default_eviction_policy();
    for (size_t i = 1; i < p.size(); ++i) p[i] = *make_eviction_policy(kRecordedNames[i]);
    return p;
  }();
  return policies[id < policies.size() ? id : 0];
}

}  // namespace index

Result<std::shared_ptr<const EvictionPolicy>> make_eviction_policy(std::string_view name) {
  if (name == "lru") return make_lru_policy();
  if (name == "prefix-aware") return make_prefix_aware_policy();
  if (name == "prefix-frequency") return make_default_eviction_policy();
  if (name == "s3fifo") return std::shared_ptr<const EvictionPolicy>(std::make_shared<S3FifoPolicy>());
  return Status::invalid_argument("unknown eviction policy '" + std::string(name) +
                                  "' (expected prefix-frequency, prefix-aware, lru or s3fifo)");
}

}  // namespace kvtier
