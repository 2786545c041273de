// `kvtier-bench hbm`: the CUDA copy path between a paged KV cache in GPU memory and the registered
// host arena, against cudaMemcpyAsync of one contiguous buffer of the same total size between the
// same GPU and the same arena memory, in the same run.
//   offload: scattered GPU blocks (a random permutation of block ids, as a paged cache holds them)
//            → consecutive host blocks; onboard the other way. Each method (kernel, memcpy per
//            chunk) is timed; the model is 32 layers × K/V of 16 tokens × 8 heads × 128 dims bf16
//            (vLLM's FlashAttention layout): 32 KiB chunks, 2 MiB blocks.
// Without a CUDA build or a device it says so and prints {"suite":"hbm","skipped":...}.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "bench_report.h"
#include "bench_timer.h"
#include "kvtier/client.h"
#include "kvtier/paged_kv.h"
#include "suites.h"

#if KVTIER_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace kvtier::bench {
namespace {

int skipped(const SuiteOptions& opt, const std::string& why) {
  fmt::print("kvtier-bench hbm: skipped: {}\n", why);
  if (opt.json) fmt::print("{}\n", JsonObject().add("suite", "hbm").add("skipped", why).str());
  return 0;
}

}  // namespace

#if !KVTIER_HAVE_CUDA

int run_hbm_suite(const SuiteOptions& opt) { return skipped(opt, "this build has no CUDA copy path (nvcc not found)"); }

#else

namespace {

constexpr KvShape kShape{/*num_blocks=*/1024, /*block_tokens=*/16, /*kv_heads=*/8, /*head_dim=*/128,
                         /*element_bytes=*/2};
constexpr uint32_t kLayers = 32;

struct Timing {
  double offload = 0, onboard = 0;  // best GB/s
};

}  // namespace

int run_hbm_suite(const SuiteOptions& opt) {
  int devices = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&devices); e != cudaSuccess || devices == 0) {
    return skipped(opt, std::string("no usable CUDA device: ") + cudaGetErrorString(e));
  }
  const uint32_t batch = opt.quick ? 128 : 512;  // blocks per copy: 256 MiB or 1 GiB
  const int reps = opt.quick ? 3 : 8;

  // The engine's cache: one [2, num_blocks, 16, 8, 128] tensor per layer.
  const uint64_t layer_bytes = 2 * kShape.chunk_bytes() * kShape.num_blocks;
  std::vector<void*> layers(kLayers, nullptr);
  std::vector<uint64_t> bases;
  for (auto& p : layers) {
    if (cudaMalloc(&p, layer_bytes) != cudaSuccess) return skipped(opt, "not enough GPU memory for the cache");
    (void)cudaMemset(p, 0x5A, layer_bytes);
    bases.push_back(reinterpret_cast<uint64_t>(p));
  }
  const PagedKvLayout layout = PagedKvLayout::kv_outer(bases, kShape).value();
  const uint64_t block_bytes = layout.block_bytes();
  const uint64_t total = uint64_t{batch} * block_bytes;

  ClientOptions co;
  co.node_name = fmt::format("bench-hbm-{}", ::getpid());
  co.create_if_missing = true;
  co.host_bytes = total + (64ULL << 20);
  co.slab_bytes = 32ULL << 20;
  (void)Client::destroy_node(co);
  auto client = Client::open(co);
  if (!client.ok()) return skipped(opt, client.status().to_string());
  struct Cleanup {
    const ClientOptions& options;
    std::vector<void*>& layers;
    ~Cleanup() {
      for (void* p : layers) (void)cudaFree(p);
      (void)Client::destroy_node(options);
    }
  } cleanup{co, layers};
  const auto arena = (*client)->host_memory();

  std::vector<uint32_t> ids(kShape.num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(42));
  std::vector<KvBlockCopy> blocks;
  for (uint32_t i = 0; i < batch; ++i) blocks.push_back({ids[i], arena.data() + uint64_t{i} * block_bytes});

  Table table({"path", "offload GB/s", "onboard GB/s", "offload vs memcpy", "onboard vs memcpy"});
  JsonObject json;
  json.add("suite", "hbm")
      .add("block_bytes", static_cast<long long>(block_bytes))
      .add("batch_bytes", static_cast<long long>(total));

  // Baseline: one contiguous cudaMemcpyAsync of the same bytes, same GPU, same registered arena.
  Timing baseline;
  {
    CudaKvCopierOptions o;
    o.host_memory = arena;
    auto registrar = make_cuda_kv_copier(layout, o);  // registers the arena for the baseline too
    if (!registrar.ok()) return skipped(opt, registrar.status().to_string());
    void* contiguous = nullptr;
    if (cudaMalloc(&contiguous, total) != cudaSuccess) return skipped(opt, "not enough GPU memory for the baseline");
    cudaStream_t stream = nullptr;
    (void)cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    for (int r = 0; r < reps; ++r) {
      double t0 = now_seconds();
      (void)cudaMemcpyAsync(arena.data(), contiguous, total, cudaMemcpyDeviceToHost, stream);
      (void)cudaStreamSynchronize(stream);
      baseline.offload = std::max(baseline.offload, static_cast<double>(total) / (now_seconds() - t0) / 1e9);
      t0 = now_seconds();
      (void)cudaMemcpyAsync(contiguous, arena.data(), total, cudaMemcpyHostToDevice, stream);
      (void)cudaStreamSynchronize(stream);
      baseline.onboard = std::max(baseline.onboard, static_cast<double>(total) / (now_seconds() - t0) / 1e9);
    }
    (void)cudaStreamDestroy(stream);
    (void)cudaFree(contiguous);

    for (const auto method : {CudaKvCopierOptions::Method::kKernel, CudaKvCopierOptions::Method::kMemcpy}) {
      o.method = method;
      auto copier = make_cuda_kv_copier(layout, o);
      if (!copier.ok()) return skipped(opt, copier.status().to_string());
      Timing t;
      for (int r = 0; r < reps; ++r) {
        double t0 = now_seconds();
        if (!(*copier)->wait((*copier)->start(KvCopyDirection::kOffload, blocks).value()).ok()) return 1;
        t.offload = std::max(t.offload, static_cast<double>(total) / (now_seconds() - t0) / 1e9);
        t0 = now_seconds();
        if (!(*copier)->wait((*copier)->start(KvCopyDirection::kOnboard, blocks).value()).ok()) return 1;
        t.onboard = std::max(t.onboard, static_cast<double>(total) / (now_seconds() - t0) / 1e9);
      }
      const std::string name = (*copier)->method();
      table.add_row({name, fixed(t.offload, 2), fixed(t.onboard, 2), fixed(t.offload / baseline.offload, 3),
                     fixed(t.onboard / baseline.onboard, 3)});
      const std::string prefix = method == CudaKvCopierOptions::Method::kKernel ? "" : "memcpy_path_";
      json.add(prefix + "offload_gb_per_s", t.offload)
          .add(prefix + "onboard_gb_per_s", t.onboard)
          .add(prefix + "offload_vs_memcpy", t.offload / baseline.offload)
          .add(prefix + "onboard_vs_memcpy", t.onboard / baseline.onboard);
    }
  }
  table.add_row(
      {"cudaMemcpy, one contiguous buffer", fixed(baseline.offload, 2), fixed(baseline.onboard, 2), "1.000", "1.000"});
  json.add("memcpy_d2h_gb_per_s", baseline.offload).add("memcpy_h2d_gb_per_s", baseline.onboard);
  fmt::print("kvtier-bench hbm: {} blocks of {} MiB ({} MiB per copy), scattered block ids, best of {}\n", batch,
             block_bytes >> 20, total >> 20, reps);
  fmt::print("{}", table.render());
  if (opt.json) fmt::print("{}\n", json.str());
  return 0;
}

#endif

}  // namespace kvtier::bench
