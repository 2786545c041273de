#include "index/chain_admission.h"

#include <algorithm>
#include <optional>

#include "index/index_mechanics.h"

namespace kvtier::index {

bool ChainAdmission::admit(BlockIndex& index, const BlockKey& key, const BlockKey& parent, Tier tier,
                           uint64_t occupied) {
  // Nothing is ever judged here (admission off, or an SSD tier below): no chain to follow either,
  // so the put pays no lock (the default node has an SSD tier).
  if (!IndexMechanics::judges_puts(index, tier)) return true;
  std::optional<bool> inherited;
  {
    std::lock_guard guard(mu_);
    const auto at = std::find(keys_.begin(), keys_.end(), parent);
    if (at != keys_.end() && parent != BlockKey{}) {
      inherited = admitted_[static_cast<size_t>(at - keys_.begin())];
      remember(key, *inherited);
    }
  }
  if (inherited.has_value()) {
    if (!*inherited) IndexMechanics::refuse(index, key);
    return *inherited;
  }
  const PutVerdict verdict = IndexMechanics::admit(index, key, parent, tier, occupied);
  if (verdict == PutVerdict::kUnjudged) return true;  // the chain goes on unjudged too
  std::lock_guard guard(mu_);
  remember(key, verdict == PutVerdict::kAdmitted);
  return verdict == PutVerdict::kAdmitted;
}

void ChainAdmission::remember(const BlockKey& key, bool admitted) {
  keys_[next_] = key;
  admitted_[next_] = admitted;
  next_ = (next_ + 1) % kRecent;
}

}  // namespace kvtier::index
