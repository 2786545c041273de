// Tier-aware node scoring: for a prompt's chain of keys, how much prefill each node would save
// (docs/scheduler.md has the cost model and how to choose the weights).
//
// A node's matched prefix is the run of leading blocks it holds itself, each counted in the
// fastest tier it holds it in. Past that, blocks that other nodes hold can be fetched from them
// (GetBlocks), so they count at the remote weight, up to the first block no node holds. The score
// is prefill tokens saved, each weighted by how fast its tier delivers it:
//
//   score(node) = block_tokens × (hbm·w_hbm + host·w_host + ssd·w_ssd + remote·w_remote)
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cluster/cluster_index.h"
#include "kvtier/block_key.h"
#include "kvtier/status.h"

namespace kvtier::cluster {

// Weight of a token according to where its KV comes from; 1.0 = as good as computed and kept in
// HBM, 0 = worthless. Defaults: see docs/scheduler.md (a reference deployment's transfer cost
// per block against its prefill cost).
struct TierWeights {
  double hbm = 1.0;
  double host = 0.9;
  double ssd = 0.5;
  double remote = 0.3;

  // Each in [0, 1] and not NaN.
  Status validate() const;
  double of(Tier t) const { return t == Tier::kHbm ? hbm : t == Tier::kHost ? host : ssd; }
};

struct NodeScore {
  NodeSlot node = 0;
  std::string name;
  std::array<uint32_t, kNumTiers> blocks{};  // the node's own prefix, per fastest tier
  uint32_t prefix_blocks = 0;                // Σ blocks: the node's own matched prefix
  uint32_t remote_blocks = 0;                // after it, blocks other nodes hold
  double score = 0;                          // prefill tokens saved, weighted
};

struct ScoreResult {
  std::vector<NodeScore> nodes;  // best first (ties: the longer own prefix, then the lower slot)
  uint32_t keys = 0;             // blocks in the request
  uint32_t cluster_prefix = 0;   // leading blocks some node holds
};

// Scores `candidates` (every node of the index when empty; unknown names are scored 0) for the
// chain `keys`. The walk stops at the first key no node holds.
ScoreResult score_nodes(const ClusterIndex& index, std::span<const BlockKey> keys,
                        std::span<const std::string> candidates, const TierWeights& weights, uint32_t block_tokens);

}  // namespace kvtier::cluster
