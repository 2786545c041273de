// xxh3_64's dispatch and its baseline (SSE2) build. The AVX2 and AVX-512 builds are
// checksum_avx2.cc and checksum_avx512.cc, the only files compiled for those units; each is called
// only where the CPU reports it.
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

enum class Unit : uint8_t { kSse2, kAvx2, kAvx512 };

Unit widest_unit() noexcept {
#if KVTIER_HAVE_XXH3_AVX2
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") != 0) return Unit::kAvx512;
  if (__builtin_cpu_supports("avx2") != 0) return Unit::kAvx2;
#endif
  return Unit::kSse2;
}

// Asked once; afterwards a guard load per call, nothing next to hashing a block.
Unit unit() noexcept {
  static const Unit u = widest_unit();
  return u;
}

}  // namespace

uint64_t xxh3_64(const void* data, size_t size) {
#if KVTIER_HAVE_XXH3_AVX2
  switch (unit()) {
    case Unit::kAvx512: return detail::xxh3_64_avx512(data, size);
    case Unit::kAvx2: return detail::xxh3_64_avx2(data, size);
    case Unit::kSse2: break;
  }
#endif
  return detail::xxh3_64_sse2(data, size);
}

const char* xxh3_64_implementation() {
  switch (unit()) {
    case Unit::kAvx512: return "avx512";
    case Unit::kAvx2: return "avx2";
    case Unit::kSse2: break;
  }
  return "sse2";
}

}  // namespace kvtier
