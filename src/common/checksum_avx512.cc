// xxh3_64 compiled with -mavx512f (src/CMakeLists.txt), for the same reason checksum_avx2.cc is
// alone in its file: nothing this file emits may run on a CPU without AVX-512.
#include "common/checksum_variants.h"

#if KVTIER_HAVE_XXH3_AVX2
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX512
// GCC 12 warns inside its own avx512fintrin.h (the _mm512_undefined_* idiom reads as uninitialised).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xxhash.h>
#pragma GCC diagnostic pop

namespace kvtier::detail {

uint64_t xxh3_64_avx512(const void* data, size_t size) { return XXH3_64bits(data, size); }

}  // namespace kvtier::detail
#endif
