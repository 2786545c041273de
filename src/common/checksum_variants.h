// The builds of xxh3_64 behind kvtier/checksum.h's dispatch; tests compare them with libxxhash.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__)
#define KVTIER_HAVE_XXH3_AVX2 1
#else
#define KVTIER_HAVE_XXH3_AVX2 0
#endif

namespace kvtier::detail {

uint64_t xxh3_64_sse2(const void* data, size_t size);
#if KVTIER_HAVE_XXH3_AVX2
// Only on a CPU with AVX2 (the file is compiled with -mavx2).
uint64_t xxh3_64_avx2(const void* data, size_t size);
// Only on a CPU with AVX-512F (compiled with -mavx512f): about 1.5x AVX2's rate on cached blocks,
// which is what a reader checking blocks as they land hashes.
uint64_t xxh3_64_avx512(const void* data, size_t size);
#endif

}  // namespace kvtier::detail
