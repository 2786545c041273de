// xxh3_64's dispatch and its baseline (SSE2) build. The AVX2 build is checksum_avx2.cc, the only
// file compiled with -mavx2; it is called only where the CPU reports AVX2.
#include "kvtier/checksum.h"

#include "common/checksum_variants.h"

// The hash inlined from Debian's xxhash.h (not the library's exported, baseline-compiled one).
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvtier {
namespace detail {

uint64_t xxh3_64_sse2(const void* data, size_t size) { return XXH3_64bits(data, size); }

}  // namespace detail

namespace {

bool cpu_has_avx2() noexcept {
#if KVTIER_HAVE_XXH3_AVX2
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
#else
  return false;
#endif
}

// Asked once; afterwards a guard load per call, nothing next to hashing a block.
bool use_avx2() noexcept {
  static const bool avx2 = cpu_has_avx2();
  return avx2;
}

}  // namespace

uint64_t xxh3_64(const void* data, size_t size) {
#if KVTIER_HAVE_XXH3_AVX2
  if (use_avx2()) return detail::xxh3_64_avx2(data, size);
#endif
  return detail::xxh3_64_sse2(data, size);
}

const char* xxh3_64_implementation() { return use_avx2() ? "avx2" : "sse2"; }

}  // namespace kvtier
