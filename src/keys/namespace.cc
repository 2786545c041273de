#include "kvtier/namespace.h"

#include <xxhash.h>

#include <array>
#include <string>

#include "kvtier/prefix_chain.h"

namespace kvtier {
namespace {

struct DTypeInfo {
  KvDType dtype;
  std::string_view name;
  uint32_t bytes;
};

constexpr std::array<DTypeInfo, 6> kDTypes{{
    {KvDType::kFloat16, "fp16", 2},
    {KvDType::kBFloat16, "bf16", 2},
    {KvDType::kFloat32, "fp32", 4},
    {KvDType::kFloat8E4M3, "fp8_e4m3", 1},
    {KvDType::kFloat8E5M2, "fp8_e5m2", 1},
    {KvDType::kInt8, "int8", 1},
}};

const DTypeInfo* find_dtype(KvDType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return &info;
  }
  return nullptr;
}

// Canonical encoding of a namespace: docs/keys.md, "Namespace root". Little-endian throughout.
class RootEncoder {
 public:
  void bytes(std::string_view s) { buf_.append(s); }
  void u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    bytes(s);
  }
  const std::string& data() const { return buf_; }

 private:
  std::string buf_;
};

Status check_range(std::string_view field, uint64_t value, uint64_t max) {
  if (value == 0 || value > max) {
    return Status::invalid_argument("kv layout " + std::string(field) + " must be in [1, " + std::to_string(max) +
                                    "], got " + std::to_string(value));
  }
  return {};
}

}  // namespace

std::string_view dtype_name(KvDType dtype) {
  const DTypeInfo* info = find_dtype(dtype);
  return info ? info->name : "unknown";
}

Result<KvDType> parse_dtype(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  // Accept the spellings engines print, so configs can be copied from them.
  if (name == "float16" || name == "half") return KvDType::kFloat16;
  if (name == "bfloat16") return KvDType::kBFloat16;
  if (name == "float32" || name == "float") return KvDType::kFloat32;
  if (name == "fp8" || name == "float8_e4m3fn") return KvDType::kFloat8E4M3;
  if (name == "float8_e5m2") return KvDType::kFloat8E5M2;
  return Status::invalid_argument("unknown kv dtype '" + std::string(name) +
                                  "' (expected fp16, bf16, fp32, fp8_e4m3, fp8_e5m2 or int8)");
}

uint32_t dtype_bytes(KvDType dtype) {
  const DTypeInfo* info = find_dtype(dtype);
  return info ? info->bytes : 0;
}

uint64_t KvLayout::bytes_per_block() const {
  return uint64_t{kv_planes} * num_layers * num_kv_heads * head_dim * block_tokens * dtype_bytes(dtype);
}

Status KvLayout::validate() const {
  if (find_dtype(dtype) == nullptr) {
    return Status::invalid_argument("kv layout dtype code " + std::to_string(static_cast<int>(dtype)) + " is unknown");
  }
  KVTIER_RETURN_IF_ERROR(check_range("block_tokens", block_tokens, kMaxBlockTokens));
  KVTIER_RETURN_IF_ERROR(check_range("num_layers", num_layers, kMaxLayers));
  KVTIER_RETURN_IF_ERROR(check_range("num_kv_heads", num_kv_heads, kMaxKvHeads));
  KVTIER_RETURN_IF_ERROR(check_range("head_dim", head_dim, kMaxHeadDim));
  if (kv_planes != 1 && kv_planes != 2) {
    return Status::invalid_argument("kv layout kv_planes must be 1 (MLA latent) or 2 (K and V), got " +
                                    std::to_string(kv_planes));
  }
  // Each factor is bounded above, so the product fits in 64 bits before this comparison.
  if (bytes_per_block() > kMaxBlockBytes) {
    return Status::invalid_argument("kv layout gives " + std::to_string(bytes_per_block()) +
                                    " bytes per block, over the limit of " + std::to_string(kMaxBlockBytes));
  }
  return {};
}

Result<Namespace> Namespace::create(NamespaceSpec spec) {
  if (spec.model_id.empty()) return Status::invalid_argument("namespace model_id must not be empty");
  for (const auto& [field, value] : {std::pair<std::string_view, const std::string&>{"model_id", spec.model_id},
                                     {"adapter_id", spec.adapter_id},
                                     {"cache_salt", spec.cache_salt}}) {
    if (value.size() > NamespaceSpec::kMaxIdBytes) {
      return Status::invalid_argument("namespace " + std::string(field) + " is " + std::to_string(value.size()) +
                                      " bytes, over the limit of " + std::to_string(NamespaceSpec::kMaxIdBytes));
    }
  }
  KVTIER_RETURN_IF_ERROR(spec.layout.validate().with_context("namespace '" + spec.model_id + "'"));

  RootEncoder enc;
  enc.bytes("kvtier.key");
  enc.u32(kKeyFormatVersion);
  enc.str(spec.model_id);
  enc.str(spec.adapter_id);
  enc.str(spec.cache_salt);
  enc.u8(static_cast<uint8_t>(spec.layout.dtype));
  enc.u32(spec.layout.block_tokens);
  enc.u32(spec.layout.num_layers);
  enc.u32(spec.layout.num_kv_heads);
  enc.u32(spec.layout.head_dim);
  enc.u32(spec.layout.kv_planes);
  const XXH128_hash_t h = XXH3_128bits(enc.data().data(), enc.data().size());
  return Namespace(std::move(spec), BlockKey{h.high64, h.low64});
}

}  // namespace kvtier
