// The CUDA copier: batched asynchronous copies between an engine's paged KV cache in GPU memory and
// host blocks in the registered host arena, on the copier's own stream, completed through events.
//
// The kernel method launches one gather/scatter kernel per batch of up to kBlocksPerLaunch blocks:
// one thread block per (block, tensor) chunk, reading or writing the host arena in place through
// its mapped device address (cudaHostRegister), so a chunk of a few KiB costs no API call and the
// copies run at PCIe speed without a bounce buffer. The memcpy method issues one cudaMemcpyAsync
// per chunk, for comparison (kvtier-bench hbm).
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvtier/paged_kv.h"
#include "tiers/hbm/chunk_copy.h"
#include "tiers/hbm/cuda_handles.h"

namespace kvtier {
namespace {

// Blocks per launch, passed by value as the kernel's parameter (under the 4 KiB every CUDA version
// accepts), so a launch needs no descriptor upload.
constexpr uint32_t kBlocksPerLaunch = 240;
constexpr uint32_t kThreads = 256;

struct LaunchBlock {
  uint64_t host = 0;  // the host block's device-visible address
  uint32_t id = 0;
  uint32_t unused = 0;
};

struct LaunchBatch {
  uint32_t count = 0;
  uint32_t unused = 0;
  LaunchBlock blocks[kBlocksPerLaunch];
};

__device__ void copy_bytes(uint8_t* dst, const uint8_t* src, uint64_t bytes) {
  if (((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | bytes) & 15) == 0) {
    // 16-byte vectors, four loads in flight per thread before the stores: PCIe latency is long.
    auto* d = reinterpret_cast<int4*>(dst);
    const auto* s = reinterpret_cast<const int4*>(src);
    const uint64_t n = bytes / 16;
    const uint64_t t = kThreads;  // strides in 64 bits: indexes may pass 2^32 vectors
    uint64_t i = threadIdx.x;
    for (; i + 3 * t < n; i += 4 * t) {
      const int4 a = s[i], b = s[i + t], c = s[i + 2 * t], e = s[i + 3 * t];
      d[i] = a;
      d[i + t] = b;
      d[i + 2 * t] = c;
      d[i + 3 * t] = e;
    }
    for (; i < n; i += t) d[i] = s[i];
  } else {
    for (uint64_t i = threadIdx.x; i < bytes; i += kThreads) dst[i] = src[i];
  }
}

__global__ void copy_chunks(const hbm::ChunkSpec* specs, uint32_t first, uint32_t count, LaunchBatch batch,
                            bool offload) {
  const uint32_t b = blockIdx.x / count;
  const hbm::ChunkSpec c = specs[first + blockIdx.x % count];
  auto* engine = reinterpret_cast<uint8_t*>(hbm::engine_chunk(c, batch.blocks[b].id));
  auto* host = reinterpret_cast<uint8_t*>(hbm::host_chunk(c, batch.blocks[b].host));
  if (offload) {
    copy_bytes(host, engine, c.bytes);
  } else {
    copy_bytes(engine, host, c.bytes);
  }
}

// Messages are built with std::string: fmt's compile-time format checks do not compile under nvcc.
using std::to_string;

Status cuda_error(cudaError_t e, const char* what) {
  return Status::internal(std::string("CUDA ") + what + ": " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) +
                          ")");
}

#define KVTIER_CUDA_RETURN(call, what)                                          \
  do {                                                                          \
    const cudaError_t kvtier_cuda_e_ = (call);                                  \
    if (kvtier_cuda_e_ != cudaSuccess) return cuda_error(kvtier_cuda_e_, what); \
  } while (false)

// Makes `device` current for a scope and restores the caller's: an engine thread's current device is
// the engine's business.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      (void)cudaGetLastError();
      previous_ = -1;
    }
    if (previous_ != device) {
      error_ = cudaSetDevice(device);
      // A failed call would otherwise stay as the thread's last error, for the engine to find.
      if (error_ != cudaSuccess) (void)cudaGetLastError();
      changed_ = error_ == cudaSuccess && previous_ >= 0;
    }
  }
  ~DeviceScope() {
    if (changed_) (void)cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;
  cudaError_t error() const { return error_; }

 private:
  int previous_ = -1;
  bool changed_ = false;
  cudaError_t error_ = cudaSuccess;
};

// Host memory registrations, counted per process: the copiers of a process share one registration
// of the arena and the last to go unregisters it. A range registered outside kvtier stays so.
class HostRegistry {
 public:
  static Status acquire(uint8_t* base, size_t bytes) {
    std::lock_guard lock(mu());
    auto& entries = map();
    if (auto it = entries.find(base); it != entries.end()) {
      if (it->second.bytes < bytes)
        return Status::invalid_argument("the host memory is registered with a smaller size");
      ++it->second.refs;
      return Status{};
    }
    bool owned = true;
    const cudaError_t e = cudaHostRegister(base, bytes, cudaHostRegisterPortable | cudaHostRegisterMapped);
    if (e == cudaErrorHostMemoryAlreadyRegistered) {
      (void)cudaGetLastError();
      owned = false;
    } else if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return cuda_error(e, "cudaHostRegister of the host arena");
    }
    entries.emplace(base, Entry{bytes, 1, owned});
    return Status{};
  }

  static void release(uint8_t* base) {
    std::lock_guard lock(mu());
    auto& entries = map();
    auto it = entries.find(base);
    if (it == entries.end() || --it->second.refs > 0) return;
    if (it->second.owned) (void)cudaHostUnregister(base);
    entries.erase(it);
  }

 private:
  struct Entry {
    size_t bytes = 0;
    int refs = 0;
    bool owned = false;  // registered by kvtier: unregistered with the last reference
  };
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::map<uint8_t*, Entry>& map() {
    static std::map<uint8_t*, Entry> m;
    return m;
  }
};

class CudaKvCopier final : public KvCopier {
 public:
  CudaKvCopier(PagedKvLayout layout, const CudaKvCopierOptions& options)
      : KvCopier(std::move(layout)), options_(options), specs_(hbm::chunk_specs(this->layout())) {}

  ~CudaKvCopier() override {
    if (!device_checked_) return;  // init refused the device: nothing was made on it
    // The handles free themselves; here, in order and with the copier's device current.
    DeviceScope scope(options_.device);
    if (stream_) (void)cudaStreamSynchronize(stream_.get());
    pending_.clear();
    free_events_.clear();
    after_event_.reset();
    device_specs_.reset();
    stream_.reset();
    if (registered_) HostRegistry::release(options_.host_memory.data());
  }

  Status init() {
    int devices = 0;
    if (const cudaError_t e = cudaGetDeviceCount(&devices); e != cudaSuccess) {
      (void)cudaGetLastError();
      return Status::unavailable(std::string("no usable CUDA device: ") + cudaGetErrorString(e));
    }
    if (options_.device < 0 || options_.device >= devices) {
      return Status::invalid_argument("CUDA device " + to_string(options_.device) + " does not exist (" +
                                      to_string(devices) + " devices)");
    }
    device_checked_ = true;
    DeviceScope scope(options_.device);
    KVTIER_CUDA_RETURN(scope.error(), "cudaSetDevice");
    for (size_t t = 0; t < specs_.size(); ++t) {
      cudaPointerAttributes attributes{};
      KVTIER_CUDA_RETURN(cudaPointerGetAttributes(&attributes, reinterpret_cast<void*>(specs_[t].base)),
                         "cudaPointerGetAttributes");
      if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged) {
        return Status::invalid_argument("KV tensor " + to_string(t) +
                                        " is not GPU memory (use the host copier for host memory)");
      }
    }
    if (options_.method == CudaKvCopierOptions::Method::kKernel && options_.host_memory.empty()) {
      return Status::invalid_argument(
          "the kernel copy needs the host memory to register (CudaKvCopierOptions::host_memory)");
    }
    if (!options_.host_memory.empty()) {
      KVTIER_RETURN_IF_ERROR(HostRegistry::acquire(options_.host_memory.data(), options_.host_memory.size()));
      registered_ = true;
      void* device_view = nullptr;
      KVTIER_CUDA_RETURN(cudaHostGetDevicePointer(&device_view, options_.host_memory.data(), 0),
                         "cudaHostGetDevicePointer");
      host_device_base_ = reinterpret_cast<uint64_t>(device_view);
    }
    KVTIER_CUDA_RETURN(hbm::make_stream(stream_), "cudaStreamCreate");
    KVTIER_CUDA_RETURN(hbm::make_event(after_event_), "cudaEventCreate");
    KVTIER_CUDA_RETURN(hbm::make_device_memory(specs_.size() * sizeof(hbm::ChunkSpec), device_specs_), "cudaMalloc");
    KVTIER_CUDA_RETURN(
        cudaMemcpy(device_specs_.get(), specs_.data(), specs_.size() * sizeof(hbm::ChunkSpec), cudaMemcpyHostToDevice),
        "cudaMemcpy of the layout");
    return Status{};
  }

  const char* method() const override {
    return options_.method == CudaKvCopierOptions::Method::kKernel ? "cuda-kernel" : "cuda-memcpy";
  }

  Result<KvCopyTicket> start(KvCopyDirection direction, std::span<const KvBlockCopy> blocks, KvTensorRange range,
                             uintptr_t after_stream) override {
    auto checked = check(blocks, range);
    if (!checked.ok()) return checked.status();
    const bool kernel = options_.method == CudaKvCopierOptions::Method::kKernel;
    const uint64_t block_bytes = layout().block_bytes();
    const auto* host_begin = options_.host_memory.data();
    for (const KvBlockCopy& b : blocks) {
      if (kernel && (b.host < host_begin || b.host + block_bytes > host_begin + options_.host_memory.size())) {
        return Status::invalid_argument("the host block of block id " + to_string(b.block_id) +
                                        " is outside the registered host memory");
      }
    }
    const bool offload = direction == KvCopyDirection::kOffload;
    std::lock_guard lock(mu_);
    DeviceScope scope(options_.device);
    KVTIER_CUDA_RETURN(scope.error(), "cudaSetDevice");
    if (after_stream != 0) {
      KVTIER_CUDA_RETURN(cudaEventRecord(after_event_.get(), reinterpret_cast<cudaStream_t>(after_stream)),
                         "cudaEventRecord");
      KVTIER_CUDA_RETURN(cudaStreamWaitEvent(stream_.get(), after_event_.get(), 0), "cudaStreamWaitEvent");
    }
    if (kernel) {
      KVTIER_RETURN_IF_ERROR(launch_kernels(blocks, *checked, offload));
    } else {
      KVTIER_RETURN_IF_ERROR(issue_memcpys(blocks, *checked, offload));
    }
    hbm::CudaEvent event;
    if (free_events_.empty()) {
      KVTIER_CUDA_RETURN(hbm::make_event(event), "cudaEventCreate");
    } else {
      event = std::move(free_events_.back());
      free_events_.pop_back();
    }
    if (const cudaError_t e = cudaEventRecord(event.get(), stream_.get()); e != cudaSuccess) {
      free_events_.push_back(std::move(event));
      return cuda_error(e, "cudaEventRecord");
    }
    const KvCopyTicket ticket{next_++};
    pending_.emplace(ticket.id, std::move(event));
    return ticket;
  }

  Status wait(KvCopyTicket ticket) override {
    hbm::CudaEvent event;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(ticket.id);
      if (it == pending_.end()) return unknown(ticket);
      event = std::move(it->second);
      pending_.erase(it);
    }
    const cudaError_t e = cudaEventSynchronize(event.get());
    std::lock_guard lock(mu_);
    free_events_.push_back(std::move(event));
    if (e != cudaSuccess) return cuda_error(e, "copy");
    return Status{};
  }

  Result<bool> done(KvCopyTicket ticket) override {
    std::lock_guard lock(mu_);
    auto it = pending_.find(ticket.id);
    if (it == pending_.end()) return unknown(ticket);
    const cudaError_t e = cudaEventQuery(it->second.get());
    if (e == cudaErrorNotReady) return false;
    if (e != cudaSuccess) return cuda_error(e, "copy");
    return true;
  }

  Status order_before(KvCopyTicket ticket, uintptr_t stream) override {
    std::lock_guard lock(mu_);
    auto it = pending_.find(ticket.id);
    if (it == pending_.end()) return unknown(ticket);
    KVTIER_CUDA_RETURN(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream), it->second.get(), 0),
                       "cudaStreamWaitEvent");
    return Status{};
  }

 private:
  static Status unknown(KvCopyTicket ticket) {
    return Status::invalid_argument("copy ticket " + to_string(ticket.id) +
                                    " is unknown (never started, or already waited)");
  }

  Status launch_kernels(std::span<const KvBlockCopy> blocks, KvTensorRange range, bool offload) {
    const auto* host_begin = options_.host_memory.data();
    LaunchBatch batch;
    for (size_t i = 0; i < blocks.size(); i += kBlocksPerLaunch) {
      batch.count = static_cast<uint32_t>(std::min<size_t>(kBlocksPerLaunch, blocks.size() - i));
      for (uint32_t j = 0; j < batch.count; ++j) {
        const KvBlockCopy& b = blocks[i + j];
        batch.blocks[j] = {host_device_base_ + static_cast<uint64_t>(b.host - host_begin), b.block_id, 0};
      }
      copy_chunks<<<batch.count * range.count, kThreads, 0, stream_.get()>>>(
          static_cast<const hbm::ChunkSpec*>(device_specs_.get()), range.first, range.count, batch, offload);
      KVTIER_CUDA_RETURN(cudaGetLastError(), "copy kernel launch");
    }
    return Status{};
  }

  Status issue_memcpys(std::span<const KvBlockCopy> blocks, KvTensorRange range, bool offload) {
    for (const KvBlockCopy& b : blocks) {
      for (uint32_t t = range.first; t < range.first + range.count; ++t) {
        const hbm::ChunkSpec& c = specs_[t];
        auto* engine = reinterpret_cast<void*>(hbm::engine_chunk(c, b.block_id));
        auto* host = reinterpret_cast<void*>(hbm::host_chunk(c, reinterpret_cast<uint64_t>(b.host)));
        KVTIER_CUDA_RETURN(cudaMemcpyAsync(offload ? host : engine, offload ? engine : host, c.bytes,
                                           offload ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, stream_.get()),
                           "cudaMemcpyAsync");
      }
    }
    return Status{};
  }

  CudaKvCopierOptions options_;
  std::vector<hbm::ChunkSpec> specs_;
  bool device_checked_ = false;  // options_.device exists: the destructor may select it
  bool registered_ = false;
  uint64_t host_device_base_ = 0;
  hbm::CudaStream stream_;
  hbm::CudaEvent after_event_;
  hbm::DeviceMemory device_specs_;  // the layout's chunk specs, for the kernel
  std::mutex mu_;
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, hbm::CudaEvent> pending_;
  std::vector<hbm::CudaEvent> free_events_;
};

}  // namespace

bool cuda_kv_copy_built() { return true; }

Result<std::unique_ptr<KvCopier>> make_cuda_kv_copier(PagedKvLayout layout, const CudaKvCopierOptions& options) {
  KVTIER_RETURN_IF_ERROR(layout.validate());
  auto copier = std::make_unique<CudaKvCopier>(std::move(layout), options);
  KVTIER_RETURN_IF_ERROR(copier->init());
  return std::unique_ptr<KvCopier>(std::move(copier));
}

}  // namespace kvtier
