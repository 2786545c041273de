// Owned CUDA runtime objects for the CUDA copier (nvcc only): a stream, an event or device memory
// freed by whoever holds it when it goes, so no path (a failed init, an error mid-copy, the
// copier's destruction) can leak one or free one twice. Move-only.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "kvtier/result.h"

namespace kvtier::hbm {

template <typename T, cudaError_t (*Destroy)(T)>
class CudaHandle {
 public:
  CudaHandle() = default;
  explicit CudaHandle(T handle) : handle_(handle) {}
  CudaHandle(CudaHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  CudaHandle& operator=(CudaHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  CudaHandle(const CudaHandle&) = delete;
  CudaHandle& operator=(const CudaHandle&) = delete;
  ~CudaHandle() { reset(); }

  T get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  // Frees it now (under the device the caller made current); a no-op when empty.
  void reset() {
    if (handle_ != nullptr) (void)Destroy(std::exchange(handle_, nullptr));
  }

 private:
  T handle_ = nullptr;
};

using CudaStream = CudaHandle<cudaStream_t, cudaStreamDestroy>;
using CudaEvent = CudaHandle<cudaEvent_t, cudaEventDestroy>;
using DeviceMemory = CudaHandle<void*, cudaFree>;

// Each: the object, or the CUDA error that refused it (what names the call in the message).
inline cudaError_t make_stream(CudaStream& out) {
  cudaStream_t s = nullptr;
  const cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e == cudaSuccess) out = CudaStream(s);
  return e;
}
inline cudaError_t make_event(CudaEvent& out) {
  cudaEvent_t ev = nullptr;
  const cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  if (e == cudaSuccess) out = CudaEvent(ev);
  return e;
}
inline cudaError_t make_device_memory(size_t bytes, DeviceMemory& out) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaSuccess) out = DeviceMemory(p);
  return e;
}

}  // namespace kvtier::hbm
