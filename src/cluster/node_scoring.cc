#include "cluster/node_scoring.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace kvtier::cluster {
namespace {

// The fastest tier in a tier set.
constexpr Tier fastest(uint8_t tiers) {
  if ((tiers & tier_bit(Tier::kHbm)) != 0) return Tier::kHbm;
  if ((tiers & tier_bit(Tier::kHost)) != 0) return Tier::kHost;
  return Tier::kSsd;
}

// tier_index(fastest(s)) for every tier set: the walk's inner loop looks it up, no branches.
constexpr std::array<uint8_t, 1U << kNumTiers> kFastestIndex = [] {
  std::array<uint8_t, 1U << kNumTiers> t{};
  for (uint32_t s = 0; s < t.size(); ++s) t[s] = static_cast<uint8_t>(tier_index(fastest(static_cast<uint8_t>(s))));
  return t;
}();

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
  // slot → position in out.nodes, for the candidates the index knows; known[i]: the index knows
  // candidate i (one it does not know holds nothing itself).
  std::vector<int32_t> position;
  std::vector<uint8_t> known;
  const auto add = [&](std::optional<NodeSlot> slot, std::string name) {
    if (slot && position.size() > *slot && position[*slot] >= 0) return;  // named twice
    NodeScore s;
    s.name = std::move(name);
    if (slot) {
      s.node = *slot;
      if (position.size() <= *slot) position.resize(size_t{*slot} + 1, -1);
      position[*slot] = static_cast<int32_t>(out.nodes.size());
    }
    known.push_back(slot ? 1 : 0);
    out.nodes.push_back(std::move(s));
  };
  if (candidates.empty()) {
    for (auto& [slot, name] : index.nodes()) add(slot, std::move(name));
  } else {
    for (const std::string& name : candidates) add(index.find_node(name), name);
  }
  // The walk touches every holder of every key (tens of thousands for a long prompt on a big
  // cluster), so its state is small and flat: active[slot] is the candidate's position while its
  // own prefix runs (-1 once it ended, or for a node that is no candidate), counts[i] its blocks
  // per fastest tier, held_at[i] the last key it was seen holding (no clearing per key), and live
  // the running candidates, compacted as their prefixes end.
  std::vector<int32_t> active(position.size(), -1);
  std::vector<uint32_t> live;
  for (size_t i = 0; i < known.size(); ++i) {
    if (known[i] == 0) continue;
    live.push_back(static_cast<uint32_t>(i));
    active[out.nodes[i].node] = static_cast<int32_t>(i);
  }
  std::vector<std::array<uint32_t, kNumTiers>> counts(out.nodes.size());
  std::vector<uint32_t> held_at(out.nodes.size(), UINT32_MAX);
  index.walk(keys, [&](const Holders& holders) {
    if (holders.empty()) return false;  // no node holds it: every prefix ends here
    const uint32_t key_no = out.cluster_prefix++;
    if (live.empty()) return true;  // only the remote tail is still being counted
    size_t held = 0;                // live candidates holding this key
    for (const Holder& h : holders) {
      if (h.node >= active.size()) continue;
      const int32_t i = active[h.node];
      if (i < 0) continue;
      held_at[i] = key_no;
      ++counts[i][kFastestIndex[h.tiers & ((1U << kNumTiers) - 1)]];
      ++held;
    }
    if (held == live.size()) return true;  // every running prefix goes on: nothing to drop
    for (size_t j = 0; j < live.size();) {
      if (held_at[live[j]] == key_no) {
        ++j;
        continue;
      }
      active[out.nodes[live[j]].node] = -1;
      live[j] = live.back();
      live.pop_back();
    }
    return true;
  });
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    NodeScore& s = out.nodes[i];
    s.blocks = counts[i];
    for (uint32_t b : s.blocks) s.prefix_blocks += b;
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
