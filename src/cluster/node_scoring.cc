#include "cluster/node_scoring.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace kvtier::cluster {
namespace {

// The fastest tier in a tier set.
Tier fastest(uint8_t tiers) {
  if ((tiers & tier_bit(Tier::kHbm)) != 0) return Tier::kHbm;
  if ((tiers & tier_bit(Tier::kHost)) != 0) return Tier::kHost;
  return Tier::kSsd;
}

}  // namespace

Status TierWeights::validate() const {
  const std::pair<const char*, double> all[] = {{"hbm", hbm}, {"host", host}, {"ssd", ssd}, {"remote", remote}};
  for (const auto& [name, w] : all) {
    if (!(w >= 0.0 && w <= 1.0)) {
      return Status::invalid_argument(fmt::format("weight {} is {}; weights are in [0, 1]", name, w));
    }
  }
  return {};
}

ScoreResult score_nodes(const ClusterIndex& index, std::span<const BlockKey> keys,
                        std::span<const std::string> candidates, const TierWeights& weights, uint32_t block_tokens) {
  ScoreResult out;
  out.keys = static_cast<uint32_t>(keys.size());
  // slot → position in out.nodes, for the candidates the index knows; running: their own prefix
  // has not ended yet. A candidate the index does not know holds nothing itself.
  std::vector<int32_t> position;
  std::vector<uint8_t> running;
  const auto add = [&](std::optional<NodeSlot> slot, std::string name) {
    if (slot && position.size() > *slot && position[*slot] >= 0) return;  // named twice
    NodeScore s;
    s.name = std::move(name);
    if (slot) {
      s.node = *slot;
      if (position.size() <= *slot) position.resize(size_t{*slot} + 1, -1);
      position[*slot] = static_cast<int32_t>(out.nodes.size());
    }
    running.push_back(slot ? 1 : 0);
    out.nodes.push_back(std::move(s));
  };
  if (candidates.empty()) {
    for (auto& [slot, name] : index.nodes()) add(slot, std::move(name));
  } else {
    for (const std::string& name : candidates) add(index.find_node(name), name);
  }
  // The running candidates, compacted as their prefixes end; held_at[i]: the last key candidate i
  // was seen holding (no clearing per key).
  std::vector<uint32_t> live;
  for (size_t i = 0; i < running.size(); ++i) {
    if (running[i] != 0) live.push_back(static_cast<uint32_t>(i));
  }
  std::vector<uint32_t> held_at(out.nodes.size(), UINT32_MAX);
  index.walk(keys, [&](const Holders& holders) {
    if (holders.empty()) return false;  // no node holds it: every prefix ends here
    const uint32_t key_no = out.cluster_prefix++;
    if (live.empty()) return true;  // only the remote tail is still being counted
    for (const Holder& h : holders) {
      if (h.node >= position.size() || position[h.node] < 0) continue;
      const auto i = static_cast<size_t>(position[h.node]);
      if (running[i] == 0) continue;
      held_at[i] = key_no;
      NodeScore& s = out.nodes[i];
      ++s.blocks[tier_index(fastest(h.tiers))];
      ++s.prefix_blocks;
    }
    for (size_t j = 0; j < live.size();) {
      if (held_at[live[j]] == key_no) {
        ++j;
        continue;
      }
      running[live[j]] = 0;
      live[j] = live.back();
      live.pop_back();
    }
    return true;
  });
  for (NodeScore& s : out.nodes) {
    s.remote_blocks = out.cluster_prefix - s.prefix_blocks;
    double w = s.remote_blocks * weights.remote;
    for (const Tier t : kAllTiers) w += s.blocks[tier_index(t)] * weights.of(t);
    s.score = w * block_tokens;
  }
  std::stable_sort(out.nodes.begin(), out.nodes.end(), [](const NodeScore& a, const NodeScore& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.prefix_blocks != b.prefix_blocks) return a.prefix_blocks > b.prefix_blocks;
    return a.node < b.node;
  });
  return out;
}

}  // namespace kvtier::cluster
