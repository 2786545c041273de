#include "cluster/cluster_index.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <mutex>

namespace kvtier::cluster {

ClusterIndex::ClusterIndex(size_t shards) : shards_(std::max<size_t>(1, shards)) {}

Result<NodeSlot> ClusterIndex::add_node(std::string_view name) {
  if (name.empty()) return Status::invalid_argument("a node needs a name");
  std::unique_lock lock(nodes_mu_);
  if (auto it = slots_.find(std::string(name)); it != slots_.end()) return it->second;
  auto free = std::find(slot_names_.begin(), slot_names_.end(), std::string());
  if (free == slot_names_.end()) {
    if (slot_names_.size() >= kMaxNodes) {
      return Status::resource_exhausted(fmt::format("the cluster index tracks at most {} nodes", kMaxNodes));
    }
    free = slot_names_.emplace(slot_names_.end());
  }
  *free = std::string(name);
  const auto slot = static_cast<NodeSlot>(free - slot_names_.begin());
  slots_.emplace(std::string(name), slot);
  return slot;
}

std::optional<NodeSlot> ClusterIndex::find_node(std::string_view name) const {
  std::shared_lock lock(nodes_mu_);
  if (auto it = slots_.find(std::string(name)); it != slots_.end()) return it->second;
  return std::nullopt;
}

std::string ClusterIndex::node_name(NodeSlot slot) const {
  std::shared_lock lock(nodes_mu_);
  return slot < slot_names_.size() ? slot_names_[slot] : std::string();
}

std::vector<std::pair<NodeSlot, std::string>> ClusterIndex::nodes() const {
  std::shared_lock lock(nodes_mu_);
  std::vector<std::pair<NodeSlot, std::string>> out;
  for (size_t i = 0; i < slot_names_.size(); ++i) {
    if (!slot_names_[i].empty()) out.emplace_back(static_cast<NodeSlot>(i), slot_names_[i]);
  }
  return out;
}

void ClusterIndex::remove_node(NodeSlot slot) {
  (void)clear_node(slot, 0x7);
  std::unique_lock lock(nodes_mu_);
  if (slot >= slot_names_.size() || slot_names_[slot].empty()) return;
  slots_.erase(slot_names_[slot]);
  slot_names_[slot].clear();
}

void ClusterIndex::change_locked(Shard& s, const BlockKey& key, NodeSlot node, uint8_t gained, uint8_t lost) {
  if (gained != 0) {
    Holders& h = s.map[key];
    auto it = std::find_if(h.begin(), h.end(), [&](const Holder& x) { return x.node == node; });
    if (it == h.end()) {
      h.push_back({node, 0});
      it = h.end() - 1;
    }
    s.residency += static_cast<uint64_t>(std::popcount(static_cast<unsigned>(gained & ~it->tiers)));
    it->tiers |= gained;
    if (lost == 0) return;
  }
  auto entry = s.map.find(key);
  if (entry == s.map.end()) return;
  Holders& h = entry->second;
  auto it = std::find_if(h.begin(), h.end(), [&](const Holder& x) { return x.node == node; });
  if (it == h.end()) return;
  s.residency -= static_cast<uint64_t>(std::popcount(static_cast<unsigned>(lost & it->tiers)));
  it->tiers &= static_cast<uint8_t>(~lost);
  if (it->tiers == 0) h.erase(it);
  if (h.empty()) s.map.erase(entry);
}

void ClusterIndex::stored(NodeSlot node, Tier tier, std::span<const BlockKey> keys) {
  for (const BlockKey& k : keys) {
    Shard& s = shard_of(k);
    std::unique_lock lock(s.mu);
    change_locked(s, k, node, tier_bit(tier), 0);
  }
}

void ClusterIndex::removed(NodeSlot node, Tier tier, std::span<const BlockKey> keys) {
  for (const BlockKey& k : keys) {
    Shard& s = shard_of(k);
    std::unique_lock lock(s.mu);
    change_locked(s, k, node, 0, tier_bit(tier));
  }
}

void ClusterIndex::apply(NodeSlot node, std::span<const Change> changes) {
  // Changes bucketed by shard (a counting sort keeps each key's changes in order).
  std::vector<uint32_t> count(shards_.size() + 1, 0);
  for (const Change& c : changes) ++count[shard_index(c.key) + 1];
  for (size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
  std::vector<uint32_t> order(changes.size());
  std::vector<uint32_t> next(count.begin(), count.end() - 1);
  for (uint32_t i = 0; i < changes.size(); ++i) order[next[shard_index(changes[i].key)]++] = i;
  for (size_t sh = 0; sh < shards_.size(); ++sh) {
    if (count[sh] == count[sh + 1]) continue;
    Shard& s = shards_[sh];
    std::unique_lock lock(s.mu);
    for (uint32_t j = count[sh]; j < count[sh + 1]; ++j) {
      const Change& c = changes[order[j]];
      change_locked(s, c.key, node, c.gained, c.lost);
    }
  }
}

uint64_t ClusterIndex::clear_node(NodeSlot node, uint8_t tiers) {
  uint64_t dropped = 0;
  for (Shard& s : shards_) {
    std::unique_lock lock(s.mu);
    for (auto entry = s.map.begin(); entry != s.map.end();) {
      Holders& h = entry->second;
      auto it = std::find_if(h.begin(), h.end(), [&](const Holder& x) { return x.node == node; });
      if (it != h.end() && (it->tiers & tiers) != 0) {
        const int n = std::popcount(static_cast<unsigned>(it->tiers & tiers));
        dropped += static_cast<uint64_t>(n);
        s.residency -= static_cast<uint64_t>(n);
        it->tiers &= static_cast<uint8_t>(~tiers);
        if (it->tiers == 0) h.erase(it);
      }
      if (h.empty()) {
        s.map.erase(entry++);  // absl: erase(iterator) returns void; advance first
      } else {
        ++entry;
      }
    }
  }
  return dropped;
}

Holders ClusterIndex::holders(const BlockKey& key) const {
  const Shard& s = shard_of(key);
  std::shared_lock lock(s.mu);
  const auto it = s.map.find(key);
  return it == s.map.end() ? Holders() : it->second;
}

ClusterIndexStats ClusterIndex::stats() const {
  ClusterIndexStats out;
  for (const Shard& s : shards_) {
    std::shared_lock lock(s.mu);
    out.keys += s.map.size();
    out.residency += s.residency;
  }
  std::shared_lock lock(nodes_mu_);
  out.nodes = slots_.size();
  return out;
}

}  // namespace kvtier::cluster
