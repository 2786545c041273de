// Helpers shared by the index tests: unique segment names, random keys and chains.
#pragma once

#include <unistd.h>

#include <atomic>
#include <random>
#include <string>
#include <vector>

#include "kvtier/block_index.h"

namespace kvtier::testing_support {

// A segment name no other test (or concurrent test binary) uses; removed by ScopedSegment.
inline std::string unique_segment_name(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "kvtier-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

struct ScopedSegment {
  std::string name;
  explicit ScopedSegment(const std::string& tag) : name(unique_segment_name(tag)) {}
  ~ScopedSegment() { (void)BlockIndex::destroy(name); }
  IndexOptions options(uint64_t capacity, uint64_t ring = 1024) const {
    IndexOptions o;
    o.segment_name = name;
    o.capacity = capacity;
    o.node_name = "test-node";
    o.change_ring_records = ring;
    return o;
  }
};

inline BlockKey random_key(std::mt19937_64& rng) { return {rng(), rng()}; }

// A chain of n keys (random, distinct) with each block's parent the previous key.
inline std::vector<BlockKey> random_chain(std::mt19937_64& rng, size_t n) {
  std::vector<BlockKey> keys(n);
  for (auto& k : keys) k = random_key(rng);
  return keys;
}

inline BlockRecord record(const BlockKey& key, const BlockKey& parent, Tier tier = Tier::kHost, uint64_t locator = 1,
                          uint32_t bytes = 4096) {
  BlockRecord r;
  r.key = key;
  r.parent = parent;
  r.namespace_id = 1;
  r.payload_bytes = bytes;
  r.tier = tier;
  r.locator = locator;
  return r;
}

// Inserts a chain (host tier, locator = position + 1) under `root`.
inline void insert_chain(BlockIndex& index, const std::vector<BlockKey>& chain, BlockKey root = {0, 0},
                         Tier tier = Tier::kHost) {
  BlockKey parent = root;
  for (size_t i = 0; i < chain.size(); ++i) {
    (void)index.insert(record(chain[i], parent, tier, i + 1));
    parent = chain[i];
  }
}

}  // namespace kvtier::testing_support
