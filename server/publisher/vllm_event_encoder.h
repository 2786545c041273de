// vLLM's KV event batches (vllm/distributed/kv_events.py) encoded as msgpack, for consumers that
// read an unmodified vLLM engine's stream: llm-d's precise prefix-cache scorer, Dynamo's and
// kvtier's own indexers. The batch is [ts, [events…], data_parallel_rank]; each event is either a
// map keyed by field name with a "type" entry (what vLLM 0.32 sends) or a tagged positional array
// (["BlockStored", field, …], what older vLLM sent and what llm-d-kv-cache decodes).
//
// Both forms carry every field a consumer keys or filters by: `lora_name`, `extra_keys` (per
// block: the LoRA name, then the cache salt on a chain's first block, as vLLM publishes them) and
// the KV-cache group (kvtier holds full-attention prefix blocks, group 0).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvtier/prefix_chain.h"
#include "kvtier/tier.h"

namespace kvtier::publisher {

enum class VllmEncoding : uint8_t { kArray, kMap };

// The KV-cache group every published block belongs to: a node holds full-attention prefix blocks
// (the connector refuses models with several groups), vLLM's group 0.
inline constexpr uint32_t kVllmGroupIdx = 0;
inline constexpr std::string_view kVllmSpecKind = "full_attention";

// "array" or "map"; nullopt otherwise.
std::optional<VllmEncoding> parse_vllm_encoding(std::string_view name);

// The `medium` each tier is published as. Consumers spell host memory and SSD differently (vLLM's
// CPU offloading says "CPU" and "STORAGE", which Dynamo reads as host and disk; llm-d weights
// media by their lower-cased names), so it is configurable.
struct VllmMedia {
  std::string hbm = "GPU";
  std::string host = "CPU";
  std::string ssd = "STORAGE";
  const std::string& of(Tier tier) const;
};

struct VllmStored {
  std::vector<uint64_t> hashes;    // a chain: hashes[i + 1]'s parent is hashes[i]
  std::optional<uint64_t> parent;  // hashes[0]'s parent; none for a first block
  std::vector<TokenId> tokens;     // every block's tokens back to back, or none when unknown
  uint32_t block_size = 0;
  Tier tier = Tier::kHost;
  std::string lora_name;   // empty: none
  std::string cache_salt;  // empty: none; an extra key of a first block (no parent) only
};

struct VllmRemoved {
  std::vector<uint64_t> hashes;
  Tier tier = Tier::kHost;
};

// Appends events, then finish() gives the payload of one published message.
class VllmBatchWriter {
 public:
  explicit VllmBatchWriter(VllmEncoding encoding, VllmMedia media = {})
      : encoding_(encoding), media_(std::move(media)) {}
  void stored(const VllmStored& e);
  void removed(const VllmRemoved& e);
  size_t events() const { return count_; }
  // The msgpack payload; the writer is empty again afterwards.
  std::string finish(double ts);

 private:
  VllmEncoding encoding_;
  VllmMedia media_;
  std::string events_;  // the packed events, back to back
  size_t count_ = 0;
};

}  // namespace kvtier::publisher
