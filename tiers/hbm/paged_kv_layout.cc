// PagedKvLayout: validation and the common layouts (include/kvtier/paged_kv.h).
#include <fmt/format.h>

#include <limits>

#include "kvtier/paged_kv.h"
#include "tiers/hbm/chunk_copy.h"

namespace kvtier {
namespace {

Status check_shape(const KvShape& s) {
  if (s.num_blocks == 0 || s.block_tokens == 0 || s.kv_heads == 0 || s.head_dim == 0 || s.element_bytes == 0) {
    return Status::invalid_argument(
        fmt::format("KV shape has a zero dimension: {} blocks x {} tokens x {} heads x {} dims x {} bytes",
                    s.num_blocks, s.block_tokens, s.kv_heads, s.head_dim, s.element_bytes));
  }
  return Status{};
}

// One tensor per layer holding both K and V: V's chunk of a block is `v_offset` bytes after K's.
Result<PagedKvLayout> kv_per_layer(std::span<const uint64_t> layer_bases, const KvShape& shape, uint64_t v_offset,
                                   uint64_t block_stride) {
  PagedKvLayout layout;
  layout.num_blocks = shape.num_blocks;
  const uint64_t chunk = shape.chunk_bytes();
  for (const uint64_t base : layer_bases) {
    layout.tensors.push_back({base, block_stride, chunk});
    layout.tensors.push_back({base + v_offset, block_stride, chunk});
  }
  KVTIER_RETURN_IF_ERROR(layout.validate());
  return layout;
}

}  // namespace

uint64_t PagedKvLayout::block_bytes() const {
  uint64_t total = 0;
  for (const KvTensor& t : tensors) total += t.chunk_bytes;
  return total;
}

uint64_t PagedKvLayout::chunk_offset(size_t t) const {
  uint64_t offset = 0;
  for (size_t i = 0; i < t && i < tensors.size(); ++i) offset += tensors[i].chunk_bytes;
  return offset;
}

Status PagedKvLayout::validate() const {
  if (tensors.empty()) return Status::invalid_argument("KV layout has no tensors");
  if (num_blocks == 0) return Status::invalid_argument("KV layout has no blocks");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const KvTensor& t = tensors[i];
    if (t.base == 0) return Status::invalid_argument(fmt::format("KV tensor {} has a null base address", i));
    if (t.chunk_bytes == 0) return Status::invalid_argument(fmt::format("KV tensor {} has empty chunks", i));
    if (num_blocks > 1 && t.block_stride < t.chunk_bytes) {
      return Status::invalid_argument(
          fmt::format("KV tensor {}: block stride {} is less than its chunk of {} bytes (blocks overlap)", i,
                      t.block_stride, t.chunk_bytes));
    }
    const uint64_t span_max = std::numeric_limits<uint64_t>::max() - t.base;
    if (t.block_stride != 0 && uint64_t{num_blocks - 1} > (span_max - t.chunk_bytes) / t.block_stride) {
      return Status::invalid_argument(fmt::format("KV tensor {}: {} blocks overflow the address space", i, num_blocks));
    }
  }
  return Status{};
}

Result<PagedKvLayout> PagedKvLayout::separate_kv(std::span<const uint64_t> k_bases, std::span<const uint64_t> v_bases,
                                                 const KvShape& shape) {
  KVTIER_RETURN_IF_ERROR(check_shape(shape));
  if (k_bases.size() != v_bases.size()) {
    return Status::invalid_argument(fmt::format("{} K tensors but {} V tensors", k_bases.size(), v_bases.size()));
  }
  PagedKvLayout layout;
  layout.num_blocks = shape.num_blocks;
  const uint64_t chunk = shape.chunk_bytes();
  for (size_t l = 0; l < k_bases.size(); ++l) {
    layout.tensors.push_back({k_bases[l], chunk, chunk});
    layout.tensors.push_back({v_bases[l], chunk, chunk});
  }
  KVTIER_RETURN_IF_ERROR(layout.validate());
  return layout;
}

Result<PagedKvLayout> PagedKvLayout::kv_outer(std::span<const uint64_t> layer_bases, const KvShape& shape) {
  KVTIER_RETURN_IF_ERROR(check_shape(shape));
  return kv_per_layer(layer_bases, shape, /*v_offset=*/shape.chunk_bytes() * shape.num_blocks,
                      /*block_stride=*/shape.chunk_bytes());
}

Result<PagedKvLayout> PagedKvLayout::blocks_outer(std::span<const uint64_t> layer_bases, const KvShape& shape) {
  KVTIER_RETURN_IF_ERROR(check_shape(shape));
  return kv_per_layer(layer_bases, shape, /*v_offset=*/shape.chunk_bytes(), /*block_stride=*/2 * shape.chunk_bytes());
}

Result<KvTensorRange> KvCopier::check(std::span<const KvBlockCopy> blocks, KvTensorRange range) const {
  const auto tensors = static_cast<uint32_t>(layout_.tensors.size());
  if (range.first >= tensors || range.count > tensors - range.first) {
    return Status::invalid_argument(
        fmt::format("tensor range [{}, +{}) is outside the layout's {} tensors", range.first, range.count, tensors));
  }
  if (range.count == 0) range.count = tensors - range.first;
  for (const KvBlockCopy& b : blocks) {
    if (b.block_id >= layout_.num_blocks) {
      return Status::invalid_argument(
          fmt::format("block id {} is outside the cache's {} blocks", b.block_id, layout_.num_blocks));
    }
    if (b.host == nullptr) return Status::invalid_argument(fmt::format("block id {} has no host block", b.block_id));
  }
  return range;
}

namespace hbm {

std::vector<ChunkSpec> chunk_specs(const PagedKvLayout& layout) {
  std::vector<ChunkSpec> specs;
  specs.reserve(layout.tensors.size());
  uint64_t offset = 0;
  for (const KvTensor& t : layout.tensors) {
    specs.push_back({t.base, t.block_stride, t.chunk_bytes, offset});
    offset += t.chunk_bytes;
  }
  return specs;
}

}  // namespace hbm
}  // namespace kvtier
