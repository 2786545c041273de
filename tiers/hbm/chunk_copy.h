// The address arithmetic of a paged-KV copy, shared by the host copier and the CUDA kernel so the
// logic the tests check on machines without a GPU is the logic the GPU runs.
#pragma once

#include <cstdint>
#include <vector>

#ifdef __CUDACC__
#define KVTIER_HOST_DEVICE __host__ __device__
#else
#define KVTIER_HOST_DEVICE
#endif

namespace kvtier {
struct PagedKvLayout;
}

namespace kvtier::hbm {

// What a copy needs of one tensor: where block b's chunk is in the engine's cache, and where it
// goes in a host block.
struct ChunkSpec {
  uint64_t base = 0;
  uint64_t block_stride = 0;
  uint64_t bytes = 0;
  uint64_t host_offset = 0;
};

KVTIER_HOST_DEVICE inline uint64_t engine_chunk(const ChunkSpec& c, uint32_t block_id) {
  return c.base + uint64_t{block_id} * c.block_stride;
}

KVTIER_HOST_DEVICE inline uint64_t host_chunk(const ChunkSpec& c, uint64_t host_block) {
  return host_block + c.host_offset;
}

// One ChunkSpec per tensor of the layout, host offsets filled in.
std::vector<ChunkSpec> chunk_specs(const PagedKvLayout& layout);

}  // namespace kvtier::hbm
