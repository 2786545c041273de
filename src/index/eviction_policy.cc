#include "kvtier/eviction_policy.h"

#include <string>

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

}  // namespace

std::shared_ptr<const EvictionPolicy> make_lru_policy() { return std::make_shared<LruPolicy>(); }
std::shared_ptr<const EvictionPolicy> make_prefix_aware_policy() { return std::make_shared<PrefixAwarePolicy>(); }

Result<std::shared_ptr<const EvictionPolicy>> make_eviction_policy(std::string_view name) {
  if (name == "lru") return make_lru_policy();
  if (name == "prefix-aware") return make_prefix_aware_policy();
  return Status::invalid_argument("unknown eviction policy '" + std::string(name) + "' (expected lru or prefix-aware)");
}

}  // namespace kvtier
