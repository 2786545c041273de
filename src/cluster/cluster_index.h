// ClusterIndex: which nodes of a cluster hold which blocks, in which tiers; the scheduler-side
// index that kvtier-indexer fills from the nodes' event streams (docs/scheduler.md).
//
// Keys are 128-bit BlockKeys: kvtier nodes' own keys, or a peer engine's 64-bit hashes placed in
// a namespace's key space (engine_index_key). Each key maps to its holders, (node, tier set)
// pairs; most blocks have one to three holders, kept inline. The map is sharded, each shard under
// its own reader-writer lock, so event ingestion from many nodes and scoring run side by side.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/inlined_vector.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/result.h"
#include "kvtier/tier.h"

namespace kvtier::cluster {

// A node's number in the index; names map to slots (ClusterIndex::add_node).
using NodeSlot = uint16_t;

struct Holder {
  NodeSlot node = 0;
  uint8_t tiers = 0;  // tier_bit() set
};
using Holders = absl::InlinedVector<Holder, 3>;

struct ClusterIndexStats {
  uint64_t keys = 0;       // distinct keys held anywhere
  uint64_t residency = 0;  // (key, node, tier) triples
  uint64_t nodes = 0;
};

class ClusterIndex {
 public:
  static constexpr size_t kMaxNodes = 4096;

  explicit ClusterIndex(size_t shards = 64);
  ClusterIndex(const ClusterIndex&) = delete;
  ClusterIndex& operator=(const ClusterIndex&) = delete;

  // The slot of a node, added on first use; RESOURCE_EXHAUSTED past kMaxNodes.
  Result<NodeSlot> add_node(std::string_view name);
  std::optional<NodeSlot> find_node(std::string_view name) const;
  std::string node_name(NodeSlot slot) const;
  // Names of the nodes that have a slot, by slot.
  std::vector<std::pair<NodeSlot, std::string>> nodes() const;
  // Drops every entry of the node and frees its slot (the node is gone for good).
  void remove_node(NodeSlot slot);

  // Residency changes reported by a node. Idempotent: storing what is held, or removing what is
  // not, changes nothing.
  void stored(NodeSlot node, Tier tier, std::span<const BlockKey> keys);
  void removed(NodeSlot node, Tier tier, std::span<const BlockKey> keys);
  // A batch of residency changes from one node, in order: `gained` tiers stored, `lost` tiers
  // removed (tier_bit sets). Applied shard by shard, each shard locked once, keeping the order of
  // changes to the same key: what a node's event batch turns into.
  struct Change {
    BlockKey key;
    uint8_t gained = 0;
    uint8_t lost = 0;
  };
  void apply(NodeSlot node, std::span<const Change> changes);
  // Drops the node's entries in the tiers of `tiers` (all: a restarted node's stale blocks; one
  // tier: an engine's "all blocks cleared"). Returns how many (key, tier) entries went.
  uint64_t clear_node(NodeSlot node, uint8_t tiers = 0x7);

  // The holders of a key (empty when none). For scoring, which walks chains key by key.
  Holders holders(const BlockKey& key) const;
  // Calls f(holders) for each key in order while f returns true (f must not call back into the
  // index: shard locks are held).
  template <typename F>
  void walk(std::span<const BlockKey> keys, F&& f) const;

  ClusterIndexStats stats() const;

 private:
  struct KeyHash {
    size_t operator()(const BlockKey& k) const { return k.lo ^ (k.hi * 0x9E3779B97F4A7C15ULL); }
  };
  struct Shard {
    mutable std::shared_mutex mu;
    absl::flat_hash_map<BlockKey, Holders, KeyHash> map;
    uint64_t residency = 0;
  };
  // High bits pick the shard: the map inside uses the low ones (its control byte takes the lowest
  // 7, the probe start the next ones), which must stay varied within a shard.
  size_t shard_index(const BlockKey& k) const { return (KeyHash{}(k) >> 40) % shards_.size(); }
  Shard& shard_of(const BlockKey& k) const { return shards_[shard_index(k)]; }
  // One change to a key's holders in a locked shard.
  static void change_locked(Shard& s, const BlockKey& key, NodeSlot node, uint8_t gained, uint8_t lost);

  mutable std::vector<Shard> shards_;
  mutable std::shared_mutex nodes_mu_;
  std::vector<std::string> slot_names_;  // "" marks a free slot
  absl::flat_hash_map<std::string, NodeSlot> slots_;
};

template <typename F>
void ClusterIndex::walk(std::span<const BlockKey> keys, F&& f) const {
  // Keys of a chain are scattered over the whole table: each lookup is a cache miss. Keys are
  // taken a batch at a time: their shards locked (shared, each once), their slots prefetched,
  // then looked up while the misses overlap. Readers never wait for one another, and a writer
  // holds one shard at a time, so holding several shared locks cannot deadlock.
  constexpr size_t kBatch = 16;
  static const Holders none;
  for (size_t base = 0; base < keys.size(); base += kBatch) {
    const size_t n = std::min(kBatch, keys.size() - base);
    std::array<const Shard*, kBatch> locked{};
    size_t nlocked = 0;
    for (size_t i = 0; i < n; ++i) {
      const Shard& s = shard_of(keys[base + i]);
      if (std::find(locked.begin(), locked.begin() + nlocked, &s) == locked.begin() + nlocked) {
        s.mu.lock_shared();
        locked[nlocked++] = &s;
      }
      s.map.prefetch(keys[base + i]);
    }
    // Holder lists longer than the inline three live on the heap: a second miss, overlapped the
    // same way once the slots are in cache.
    std::array<const Holders*, kBatch> found{};
    for (size_t i = 0; i < n; ++i) {
      const Shard& s = shard_of(keys[base + i]);
      const auto it = s.map.find(keys[base + i]);
      found[i] = it == s.map.end() ? &none : &it->second;
      __builtin_prefetch(found[i]->data());
    }
    bool go = true;
    for (size_t i = 0; i < n && go; ++i) go = f(*found[i]);
    for (size_t j = 0; j < nlocked; ++j) locked[j]->mu.unlock_shared();
    if (!go) return;
  }
}

}  // namespace kvtier::cluster
