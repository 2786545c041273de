// Moving KV blocks between an engine's paged KV cache (in GPU memory, or host memory for tests and
// CPU engines) and the node's host arena.
//
// An engine's KV cache is a set of tensors (per layer K and V, or one tensor per layer holding
// both) that all hold `num_blocks` blocks. Block b's part of a tensor (its chunk) is contiguous in
// every common layout, so a layout is, per tensor, where block 0's chunk is, how far apart the
// blocks are and how long a chunk is. A host block holds its chunks back to back in tensor order,
// which makes it independent of the engine's layout and parallelism as long as the tensors agree.
// docs/engines.md#copies has the layouts of vLLM's attention backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvtier/result.h"

namespace kvtier {

// One tensor of a paged KV cache: block b's chunk is the `chunk_bytes` bytes at
// base + b * block_stride. Addresses are device addresses for a CUDA copier.
struct KvTensor {
  uint64_t base = 0;
  uint64_t block_stride = 0;
  uint64_t chunk_bytes = 0;
};

// The shape of one K or V tensor of [num_blocks, block_tokens, kv_heads, head_dim] elements.
struct KvShape {
  uint32_t num_blocks = 0;
  uint32_t block_tokens = 0;
  uint32_t kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t element_bytes = 0;  // 2 for fp16/bf16, 1 for fp8
  uint64_t chunk_bytes() const { return uint64_t{block_tokens} * kv_heads * head_dim * element_bytes; }
};

struct PagedKvLayout {
  std::vector<KvTensor> tensors;  // in the order of their chunks in a host block
  uint32_t num_blocks = 0;

  // Bytes of one host block: every tensor's chunk.
  uint64_t block_bytes() const;
  // Where tensor `t`'s chunk starts in a host block.
  uint64_t chunk_offset(size_t t) const;
  // invalid_argument when empty, a chunk is empty, or blocks overlap within a tensor.
  Status validate() const;

  // Per layer, separate K and V tensors of `shape` (host block: layer 0 K, layer 0 V, layer 1 K …).
  static Result<PagedKvLayout> separate_kv(std::span<const uint64_t> k_bases, std::span<const uint64_t> v_bases,
                                           const KvShape& shape);
  // Per layer, one tensor of [2, num_blocks, block_tokens, kv_heads, head_dim]: K of all blocks,
  // then V (vLLM's FlashAttention and Triton backends).
  static Result<PagedKvLayout> kv_outer(std::span<const uint64_t> layer_bases, const KvShape& shape);
  // Per layer, one tensor of [num_blocks, 2, block_tokens, kv_heads, head_dim]: each block's K then
  // its V (vLLM's FlashInfer backend).
  static Result<PagedKvLayout> blocks_outer(std::span<const uint64_t> layer_bases, const KvShape& shape);
};

// One block to move: the engine's block id and the host block (layout.block_bytes() bytes, e.g.
// a PutReservation's data() for an offload or a HostBlock's data() for an onboard).
struct KvBlockCopy {
  uint32_t block_id = 0;
  uint8_t* host = nullptr;
};

enum class KvCopyDirection : uint8_t {
  kOffload,  // engine's cache → host blocks
  kOnboard,  // host blocks → engine's cache
};

// Which tensors of each block to copy: [first, first + count). count 0: from first to the end.
// A layer-by-layer engine copies one layer's tensors at a time.
struct KvTensorRange {
  uint32_t first = 0;
  uint32_t count = 0;
};

// A copy in flight, named by the copier that started it.
struct KvCopyTicket {
  uint64_t id = 0;
};

// Starts and completes batched copies for one layout. Thread-safe. A copy's host blocks must stay
// held (leases, reservations) until the copy is waited for.
class KvCopier {
 public:
  virtual ~KvCopier() = default;
  KvCopier(const KvCopier&) = delete;
  KvCopier& operator=(const KvCopier&) = delete;

  const PagedKvLayout& layout() const { return layout_; }
  // The copy path's name: "host", "cuda-kernel" or "cuda-memcpy".
  virtual const char* method() const = 0;

  // Starts copying `range` of each block. `after_stream` (CUDA: a cudaStream_t, 0 for none) is a
  // stream whose work queued so far the copy follows: the engine's compute stream, for an offload
  // of KV it just wrote. invalid_argument for a block id out of range or a host block the copier
  // cannot reach; nothing is copied then.
  virtual Result<KvCopyTicket> start(KvCopyDirection direction, std::span<const KvBlockCopy> blocks,
                                     KvTensorRange range = {}, uintptr_t after_stream = 0) = 0;
  // Blocks until the copy is complete; forgets the ticket.
  virtual Status wait(KvCopyTicket ticket) = 0;
  // Whether the copy is complete, without blocking (a complete ticket stays valid until waited).
  virtual Result<bool> done(KvCopyTicket ticket) = 0;
  // Makes `stream` (CUDA) wait for the copy without blocking the caller: the engine's compute stream
  // before it reads onboarded KV. A host copier's copies are complete when started.
  virtual Status order_before(KvCopyTicket ticket, uintptr_t stream) = 0;

 protected:
  explicit KvCopier(PagedKvLayout layout) : layout_(std::move(layout)) {}
  // Checks blocks and range against the layout; the range with count filled in.
  Result<KvTensorRange> check(std::span<const KvBlockCopy> blocks, KvTensorRange range) const;

 private:
  PagedKvLayout layout_;
};

// Copies with memcpy on the calling thread: an engine whose cache is in host memory, and the tests
// of the copy logic on machines without a GPU.
Result<std::unique_ptr<KvCopier>> make_host_kv_copier(PagedKvLayout layout);

struct CudaKvCopierOptions {
  int device = 0;
  // The host memory the copies use, registered with cudaHostRegister for the copier's life so the
  // GPU copies straight into it (Client::host_memory()). A range another copier of the process
  // already registered is used as it is.
  std::span<uint8_t> host_memory;
  // kKernel: one gather/scatter kernel launch per batch of blocks reads and writes the registered
  // host memory directly. kMemcpy: one cudaMemcpyAsync per chunk (for comparison).
  enum class Method : uint8_t { kKernel, kMemcpy } method = Method::kKernel;
};

// Whether this build of kvtier has the CUDA copy path (it is compiled when nvcc is found).
bool cuda_kv_copy_built();
// A copier on its own CUDA stream of options.device. unavailable when the build has no CUDA path
// or the machine no usable device; invalid_argument for a bad layout or host range.
Result<std::unique_ptr<KvCopier>> make_cuda_kv_copier(PagedKvLayout layout, const CudaKvCopierOptions& options);

}  // namespace kvtier
