// xxh3_64 compiled with -mavx2 (src/CMakeLists.txt). Nothing else lives here: any inline function
// this file emitted could be picked by the linker for the whole program and run on a CPU without
// AVX2, so it includes only C headers and defines one function.
#include "common/checksum_variants.h"

#if KVTIER_HAVE_XXH3_AVX2
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

namespace kvtier::detail {

uint64_t xxh3_64_avx2(const void* data, size_t size) { return XXH3_64bits(data, size); }

}  // namespace kvtier::detail
#endif
