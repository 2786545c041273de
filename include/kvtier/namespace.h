// Namespace: which model, adapter, tenant and KV layout a block belongs to.
//
// Everything that changes the meaning of a block's bytes is part of the namespace, and the
// namespace is the root of every key chain: the same tokens under another model, adapter, layout
// or cache_salt give disjoint keys. The cache_salt is how tenants are kept apart.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kvtier/block_key.h"
#include "kvtier/result.h"
#include "kvtier/status.h"

namespace kvtier {

// Element type of the KV tensors. The numeric values are part of the key format: never renumber.
enum class KvDType : uint8_t {
  kFloat16 = 1,
  kBFloat16 = 2,
  kFloat32 = 3,
  kFloat8E4M3 = 4,
  kFloat8E5M2 = 5,
  kInt8 = 6,
};

// "fp16", "bf16", "fp32", "fp8_e4m3", "fp8_e5m2", "int8".
std::string_view dtype_name(KvDType dtype);
Result<KvDType> parse_dtype(std::string_view name);
uint32_t dtype_bytes(KvDType dtype);

// Shape of one block's KV data. A block holds `block_tokens` tokens for every layer.
struct KvLayout {
  KvDType dtype = KvDType::kBFloat16;
  uint32_t block_tokens = 16;  // vLLM's default block size
  uint32_t num_layers = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t kv_planes = 2;  // 2: separate K and V tensors; 1: one latent per token (MLA models)

  // kv_planes × layers × kv_heads × head_dim × block_tokens × dtype size.
  uint64_t bytes_per_block() const;

  // Every field in range and the block no larger than kMaxBlockBytes.
  Status validate() const;

  static constexpr uint32_t kMaxBlockTokens = 65536;
  static constexpr uint32_t kMaxLayers = 4096;
  static constexpr uint32_t kMaxKvHeads = 4096;
  static constexpr uint32_t kMaxHeadDim = 65536;
  static constexpr uint64_t kMaxBlockBytes = uint64_t{1} << 30;

  friend bool operator==(const KvLayout&, const KvLayout&) = default;
};

struct NamespaceSpec {
  std::string model_id;    // required, e.g. "meta-llama/Llama-3.1-8B-Instruct"; include a revision if weights change
  std::string adapter_id;  // LoRA adapter; empty for the base model
  std::string cache_salt;  // tenant isolation; empty means shared with every other empty-salt user
  KvLayout layout;

  static constexpr size_t kMaxIdBytes = 1024;

  friend bool operator==(const NamespaceSpec&, const NamespaceSpec&) = default;
};

// A validated NamespaceSpec together with its chain root. Cheap to copy; immutable.
class Namespace {
 public:
  // Validates the spec (non-empty model_id, ids ≤ kMaxIdBytes, a valid layout) and computes the root.
  static Result<Namespace> create(NamespaceSpec spec);

  const NamespaceSpec& spec() const { return spec_; }
  const KvLayout& layout() const { return spec_.layout; }
  uint32_t block_tokens() const { return spec_.layout.block_tokens; }
  uint64_t bytes_per_block() const { return spec_.layout.bytes_per_block(); }

  // The chain root: XXH3-128 of the namespace's canonical encoding (docs/keys.md).
  const BlockKey& root() const { return root_; }
  // The 16-bit label the node's index records with each block (statistics, per-namespace
  // settings such as SSD compression). Derived from the root; keys never depend on it.
  uint16_t index_id() const { return static_cast<uint16_t>((root_.lo & 0xFFFF) | 1); }

 private:
  Namespace(NamespaceSpec spec, BlockKey root) : spec_(std::move(spec)), root_(root) {}

  NamespaceSpec spec_;
  BlockKey root_;
};

}  // namespace kvtier
