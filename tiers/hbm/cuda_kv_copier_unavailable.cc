// The CUDA copy path of a build without the CUDA toolkit (or a sanitizer build, which nvcc cannot
// instrument): it says so instead of failing at link time.
#include "kvtier/paged_kv.h"

namespace kvtier {

bool cuda_kv_copy_built() { return false; }

// NOLINTNEXTLINE(performance-unnecessary-value-param): the signature of the CUDA build, which keeps the layout
Result<std::unique_ptr<KvCopier>> make_cuda_kv_copier(PagedKvLayout layout, const CudaKvCopierOptions& /*options*/) {
  KVTIER_RETURN_IF_ERROR(layout.validate());
  return Status::unavailable("this kvtier was built without CUDA (nvcc was not found, or a sanitizer build)");
}

}  // namespace kvtier
