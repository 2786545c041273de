// The CUDA copier against a real GPU: built with the CUDA path, skipped on machines without a
// device. Each copy is checked against the host copier, whose logic paged_kv_copy_test checks.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "client/client_test_support.h"
#include "kvtier/client.h"
#include "kvtier/paged_kv.h"

namespace kvtier {
namespace {

using testing_support::ScopedNode;
using Method = CudaKvCopierOptions::Method;

constexpr KvShape kShape{/*num_blocks=*/64, /*block_tokens=*/16, /*kv_heads=*/4, /*head_dim=*/64, /*element_bytes=*/2};
constexpr uint32_t kLayers = 4;

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// Per layer one device tensor of [2, num_blocks, …] (vLLM FlashAttention's layout) and its mirror
// in host memory, which the host copier reads for the expected bytes.
struct DeviceCache {
  std::vector<void*> device;
  std::vector<std::vector<uint8_t>> mirror;
  PagedKvLayout device_layout, mirror_layout;

  explicit DeviceCache(uint32_t seed) {
    const uint64_t bytes = 2 * kShape.chunk_bytes() * kShape.num_blocks;
    std::vector<uint64_t> d, m;
    for (uint32_t l = 0; l < kLayers; ++l) {
      void* p = nullptr;
      EXPECT_EQ(cudaMalloc(&p, bytes), cudaSuccess);
      device.push_back(p);
      mirror.emplace_back(bytes);
      for (uint64_t i = 0; i < bytes; ++i)
        mirror.back()[i] = static_cast<uint8_t>(seed * 37 + l * 11 + i * 7 + (i >> 10));
      EXPECT_EQ(cudaMemcpy(p, mirror.back().data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
      d.push_back(reinterpret_cast<uint64_t>(p));
      m.push_back(reinterpret_cast<uint64_t>(mirror.back().data()));
    }
    device_layout = PagedKvLayout::kv_outer(d, kShape).value();
    mirror_layout = PagedKvLayout::kv_outer(m, kShape).value();
  }
  ~DeviceCache() {
    for (void* p : device) (void)cudaFree(p);
  }
  DeviceCache(const DeviceCache&) = delete;
  DeviceCache& operator=(const DeviceCache&) = delete;

  // Device contents copied back into the mirror.
  void download() {
    for (uint32_t l = 0; l < kLayers; ++l) {
      EXPECT_EQ(cudaMemcpy(mirror[l].data(), device[l], mirror[l].size(), cudaMemcpyDeviceToHost), cudaSuccess);
    }
  }
};

class CudaKvCopierTest : public ::testing::TestWithParam<Method> {
 protected:
  void SetUp() override {
    if (!cuda_kv_copy_built() || !have_gpu()) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

TEST_P(CudaKvCopierTest, OffloadAndOnboardThroughTheRegisteredArenaMatchTheHostCopier) {
  ScopedNode node(256 << 20);
  auto client = node.open();
  DeviceCache source(1), target(2);
  CudaKvCopierOptions options;
  options.host_memory = client->host_memory();
  options.method = GetParam();
  auto gpu = make_cuda_kv_copier(source.device_layout, options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  auto gpu_in = make_cuda_kv_copier(target.device_layout, options);  // the arena is already registered: shared
  ASSERT_TRUE(gpu_in.ok()) << gpu_in.status();
  auto host = make_host_kv_copier(source.mirror_layout).value();

  // 300 blocks: more than one kernel launch's batch.
  const uint64_t block_bytes = source.device_layout.block_bytes();
  const auto arena = client->host_memory();
  ASSERT_GE(arena.size(), 600 * block_bytes);
  std::vector<KvBlockCopy> to_arena, expected;
  std::vector<std::vector<uint8_t>> expected_bytes(300, std::vector<uint8_t>(block_bytes));
  for (uint32_t i = 0; i < 300; ++i) {
    const uint32_t id = (i * 13) % kShape.num_blocks;
    to_arena.push_back({id, arena.data() + uint64_t{i} * block_bytes});
    expected.push_back({id, expected_bytes[i].data()});
  }
  auto t = (*gpu)->start(KvCopyDirection::kOffload, to_arena);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*gpu)->wait(*t).ok());
  ASSERT_TRUE(host->wait(host->start(KvCopyDirection::kOffload, expected).value()).ok());
  for (uint32_t i = 0; i < 300; ++i) {
    ASSERT_EQ(0, std::memcmp(to_arena[i].host, expected_bytes[i].data(), block_bytes)) << "block " << i;
  }

  // The copiers share the arena's registration: the first going away leaves it to the second.
  gpu->reset();
  // Onboard the first 64 into the other cache, one layer at a time, then compare with its mirror.
  std::vector<KvBlockCopy> from_arena;
  for (uint32_t i = 0; i < kShape.num_blocks; ++i) from_arena.push_back({kShape.num_blocks - 1 - i, to_arena[i].host});
  std::vector<KvCopyTicket> tickets;
  for (uint32_t l = 0; l < kLayers; ++l)
    tickets.push_back((*gpu_in)->start(KvCopyDirection::kOnboard, from_arena, {2 * l, 2}).value());
  for (const auto& ticket : tickets) ASSERT_TRUE((*gpu_in)->wait(ticket).ok());
  target.download();
  auto check = make_host_kv_copier(target.mirror_layout).value();
  std::vector<uint8_t> got(block_bytes);
  for (uint32_t i = 0; i < kShape.num_blocks; ++i) {
    ASSERT_TRUE(check
                    ->wait(check
                               ->start(KvCopyDirection::kOffload,
                                       std::vector<KvBlockCopy>{{kShape.num_blocks - 1 - i, got.data()}})
                               .value())
                    .ok());
    ASSERT_EQ(0, std::memcmp(got.data(), to_arena[i].host, block_bytes)) << "block " << i;
  }
}

TEST_P(CudaKvCopierTest, CopiesFollowAndPrecedeTheEnginesStream) {
  ScopedNode node(64 << 20);
  auto client = node.open();
  DeviceCache cache(3);
  CudaKvCopierOptions options;
  options.host_memory = client->host_memory();
  options.method = GetParam();
  auto gpu = make_cuda_kv_copier(cache.device_layout, options).value();
  cudaStream_t engine = nullptr;
  ASSERT_EQ(cudaStreamCreate(&engine), cudaSuccess);
  // The engine's stream writes layer 0 (0x5A everywhere), then the offload follows it.
  ASSERT_EQ(cudaMemsetAsync(cache.device[0], 0x5A, 2 * kShape.chunk_bytes() * kShape.num_blocks, engine), cudaSuccess);
  uint8_t* host = client->host_memory().data();
  auto t = gpu->start(KvCopyDirection::kOffload, std::vector<KvBlockCopy>{{9, host}}, {0, 2},
                      reinterpret_cast<uintptr_t>(engine));
  ASSERT_TRUE(gpu->wait(t.value()).ok());
  for (uint64_t i = 0; i < 2 * kShape.chunk_bytes(); ++i) ASSERT_EQ(host[i], 0x5A) << i;
  // An onboard the engine's stream waits for before reading.
  std::memset(host, 0x33, 2 * kShape.chunk_bytes());
  auto in = gpu->start(KvCopyDirection::kOnboard, std::vector<KvBlockCopy>{{9, host}}, {0, 2}).value();
  ASSERT_TRUE(gpu->order_before(in, reinterpret_cast<uintptr_t>(engine)).ok());
  std::vector<uint8_t> read(kShape.chunk_bytes());
  ASSERT_EQ(cudaMemcpyAsync(read.data(), static_cast<uint8_t*>(cache.device[0]) + 9 * kShape.chunk_bytes(), read.size(),
                            cudaMemcpyDeviceToHost, engine),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(engine), cudaSuccess);
  for (const uint8_t b : read) ASSERT_EQ(b, 0x33);
  ASSERT_TRUE(gpu->wait(in).ok());
  (void)cudaStreamDestroy(engine);
}

TEST_P(CudaKvCopierTest, RefusesHostTensorsAndBlocksOutsideTheArena) {
  ScopedNode node(64 << 20);
  auto client = node.open();
  DeviceCache cache(4);
  CudaKvCopierOptions options;
  options.host_memory = client->host_memory();
  options.method = GetParam();
  EXPECT_EQ(make_cuda_kv_copier(cache.mirror_layout, options).status().code(), StatusCode::kInvalidArgument);
  options.device = 1 << 20;
  EXPECT_EQ(make_cuda_kv_copier(cache.device_layout, options).status().code(), StatusCode::kInvalidArgument);
  // A refusal leaves no error behind for the engine's next cudaGetLastError.
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  options.device = 0;
  auto gpu = make_cuda_kv_copier(cache.device_layout, options).value();
  if (GetParam() == Method::kKernel) {
    std::vector<uint8_t> outside(cache.device_layout.block_bytes());
    EXPECT_EQ(gpu->start(KvCopyDirection::kOffload, std::vector<KvBlockCopy>{{0, outside.data()}}).status().code(),
              StatusCode::kInvalidArgument);
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, CudaKvCopierTest, ::testing::Values(Method::kKernel, Method::kMemcpy),
                         [](const auto& param_info) {
                           return param_info.param == Method::kKernel ? "Kernel" : "Memcpy";
                         });

}  // namespace
}  // namespace kvtier
