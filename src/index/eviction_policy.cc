#include "kvtier/eviction_policy.h"

#include <algorithm>
#include <array>
#include <cmath>
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

// Hit density (docs/index.md#eviction): the index learns, per use count and age, how many hits
// a block still has ahead of it per tick it would stay, from the blocks it saw come back (hits,
// and evicted blocks inserted again while their ghost cells remembered them) and those it forgot.
// The lowest density goes first; it adapts where a fixed weighting fits one workload (prefix-
// frequency is below LRU on chats whose newest turn comes back after a minute). Until the index
// has learnt anything it orders as prefix-frequency does.
class HitDensityPolicy final : public EvictionPolicy {
 public:
  static constexpr uint32_t kWriteGraceTicks = 4;  // ≈ 4 ms
  std::string_view name() const override { return "hit-density"; }
  bool may_evict(const EvictionCandidate& c, EvictionAction action) const override {
    return action == EvictionAction::kDemote || c.child_count == 0;
  }
  uint64_t rank(const EvictionCandidate& c) const override {
    const uint64_t leaf = c.child_count == 0 ? uint64_t{1} << 62 : 0;
    if (c.hit_density < 0) return leaf + prefix_frequency_.rank(c);
    // A block written a moment ago is most likely the end of a chain an engine is still writing:
    // taking it would cut the chain and strand what follows. It goes last.
    if (c.age < kWriteGraceTicks) return leaf;
    // Ticks per expected hit, in steps of a quarter octave: densities within a step are the same
    // to the evidence, and among them the oldest goes (LRU where the learning tells blocks apart
    // too little). A block that will not come back (density 0) goes before any that may.
    const double ticks_per_hit = c.hit_density > 0 ? 1.0 / c.hit_density : 0;
    const uint64_t level =
        c.hit_density > 0 ? static_cast<uint64_t>(std::clamp(4 * std::log2(ticks_per_hit), 0.0, 255.0)) : 256;
    return leaf + (level << 32) + c.age;
  }
  // A block whose learnt density is below the next victim's would be worth less than what it
  // pushes out: it is refused (nothing learnt yet: every block is admitted).
  bool admits(const EvictionCandidate& newcomer, const EvictionCandidate& victim) const override {
    return newcomer.hit_density < 0 || victim.hit_density < 0 || newcomer.hit_density >= victim.hit_density;
  }

 private:
  PrefixFrequencyPolicy prefix_frequency_;
};

}  // namespace

std::shared_ptr<const EvictionPolicy> make_hit_density_policy() { return std::make_shared<HitDensityPolicy>(); }

std::shared_ptr<const EvictionPolicy> make_lru_policy() { return std::make_shared<LruPolicy>(); }
std::shared_ptr<const EvictionPolicy> make_prefix_aware_policy() { return std::make_shared<PrefixAwarePolicy>(); }
std::shared_ptr<const EvictionPolicy> make_prefix_frequency_policy() {
  return std::make_shared<PrefixFrequencyPolicy>();
}
std::shared_ptr<const EvictionPolicy> make_default_eviction_policy() { return make_hit_density_policy(); }

namespace index {
namespace {

// Recorded ids, in this order forever (segments outlive daemons): 0 is "none recorded".
constexpr std::string_view kRecordedNames[] = {"", "prefix-frequency", "prefix-aware", "lru", "s3fifo", "hit-density"};

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
  if (name == "prefix-frequency") return make_prefix_frequency_policy();
  if (name == "s3fifo") return std::shared_ptr<const EvictionPolicy>(std::make_shared<S3FifoPolicy>());
  if (name == "hit-density") return make_hit_density_policy();
  return Status::invalid_argument("unknown eviction policy '" + std::string(name) +
                                  "' (expected prefix-frequency, prefix-aware, lru, s3fifo or hit-density)");
}

}  // namespace kvtier
