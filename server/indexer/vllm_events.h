// vLLM's KV events (vllm/distributed/kv_events.py) decoded from their msgpack payload, in both
// encodings vLLM has used: events as tagged arrays (["BlockStored", field, …], trailing default
// fields omitted) and, in newer versions, as maps keyed by field name with a "type" entry. The
// batch is [ts, [events…], data_parallel_rank] (or a map of those fields).
//
// Nothing here throws: a payload that is not a batch is an error Status; inside a good batch, an
// event of a type this decoder does not know is counted and skipped, and so is a malformed one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvtier/result.h"
#include "kvtier/tier.h"

namespace kvtier::indexer {

struct VllmEvent {
  enum class Kind : uint8_t { kStored, kRemoved, kAllCleared };
  Kind kind = Kind::kStored;
  // Block hashes in their 64-bit wire form (ints as they are; bytes: the last 8, big-endian).
  std::vector<uint64_t> hashes;
  std::optional<uint64_t> parent;  // BlockStored only
  uint32_t block_size = 0;         // BlockStored only
  uint32_t token_count = 0;        // BlockStored only: len(token_ids)
  Tier tier = Tier::kHbm;          // medium: GPU (or none) → HBM, CPU → host, STORAGE / DISK → SSD
  std::string lora_name;
  // The KV-cache group (hybrid models: vLLM's hybrid KV-cache manager), and on BlockStored its
  // kind ("full_attention", "sliding_window", "mamba", …); absent from older vLLM.
  std::optional<uint32_t> group_idx;
  std::string spec_kind;
};

// Whether a group of this kind holds a whole prefix's KV, so its blocks say how long a prefix the
// engine holds (full, MLA and sink attention), unlike a sliding window's or a state space model's.
// An empty kind (older vLLM, one group) counts as holding it.
bool holds_prefix(std::string_view spec_kind);

struct VllmEventBatch {
  double ts = 0;
  std::optional<int64_t> data_parallel_rank;
  std::vector<VllmEvent> events;
  uint64_t unknown_events = 0;    // types this decoder does not know (skipped)
  uint64_t malformed_events = 0;  // events whose fields could not be read (skipped)
};

Result<VllmEventBatch> decode_vllm_batch(std::span<const uint8_t> payload);

}  // namespace kvtier::indexer
