// Operator actions on the node's tiers (the Admin service): clearing a namespace, evicting on
// demand. Both go through the index's evict_keys/evict, so the storage a block held is freed
// under the same writer lock that removes it, with the locator the index really had.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "server/node/node_tiers_impl.h"

namespace kvtier::node {
namespace {

// Frees the SSD copies of blocks the index drops from its SSD tier.
class SsdReleaser final : public EvictionListener {
 public:
  explicit SsdReleaser(ssd::SsdStore* ssd) : ssd_(ssd) {}
  Result<uint64_t> demote_to_ssd(const BlockInfo&) override { return Status::unavailable("SSD is the last tier"); }
  void released(const BlockInfo& block, Tier tier) override {
    if (tier == Tier::kSsd && ssd_ != nullptr) (void)ssd_->remove(block.key);
  }
  bool demotes() const override { return false; }

 private:
  ssd::SsdStore* ssd_;
};

}  // namespace

ClearReport NodeTiers::clear_namespace(uint16_t namespace_id) {
  Impl& im = *impl_;
  std::vector<BlockKey> keys;
  im.index.for_each_block([&](const BlockInfo& b) {
    if (b.namespace_id == namespace_id && (b.in(Tier::kHost) || b.in(Tier::kSsd))) keys.push_back(b.key);
  });
  // Every block goes, chain heads included: LRU vetoes nothing.
  const auto everything = make_lru_policy();
  const auto still_held = [&](const BlockKey& k) {
    const auto info = im.index.lookup(k);
    return info && (info->in(Tier::kHost) || info->in(Tier::kSsd));
  };
  ClearReport report;
  // Pins are often brief (a copy, a stream gRPC is finishing): a pinned block gets a few more
  // tries before it is reported busy.
  for (int attempt = 0; attempt < 4 && !keys.empty(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    {
      std::lock_guard guard(im.demote_mu);  // no demotion copies a block of it meanwhile
      (void)im.index.evict_keys(Tier::kHost, keys, *everything, im.releaser.get());
      if (im.ssd) {
        SsdReleaser ssd_releaser(im.ssd.get());
        (void)im.index.evict_keys(Tier::kSsd, keys, *everything, &ssd_releaser);
      }
    }
    const auto busy_from = std::partition(keys.begin(), keys.end(), [&](const BlockKey& k) { return !still_held(k); });
    report.removed += static_cast<uint64_t>(busy_from - keys.begin());
    keys.erase(keys.begin(), busy_from);
  }
  report.busy = keys.size();
  return report;
}

Result<EvictionReport> NodeTiers::evict(Tier tier, uint64_t bytes) {
  Impl& im = *impl_;
  if (bytes == 0) return Status::invalid_argument("evict needs a number of bytes > 0");
  if (tier == Tier::kHost) {
    EvictionReport report;
    KVTIER_ASSIGN_OR_RETURN(const size_t written, im.demote(bytes, &report));
    report.blocks_demoted = written;
    return report;
  }
  if (tier == Tier::kSsd) {
    if (!im.ssd) return Status::failed_precondition("this node has no SSD tier");
    SsdReleaser ssd_releaser(im.ssd.get());
    return im.index.evict(Tier::kSsd, bytes, *im.policy, &ssd_releaser);
  }
  return Status::invalid_argument(
      fmt::format("evict works on the host and SSD tiers; {} is the engines' own", tier_name(tier)));
}

}  // namespace kvtier::node
