#include "kvtier/checksum.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>
#include <random>
#include <vector>

#include "common/checksum_variants.h"

namespace kvtier {
namespace {

// Sizes around every boundary XXH3 switches code at (0, 16, 128, 240 bytes, stripes of 64, blocks
// of 1 KiB) and block sizes kvtier stores; offsets make the input unaligned.
std::vector<size_t> sizes() {
  std::vector<size_t> s = {0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 255, 256, 1023, 1024, 1025, 4096};
  for (size_t n : {65536UL, 262144UL, 262144UL + 7, 1048576UL}) s.push_back(n);
  return s;
}

TEST(ChecksumTest, EveryBuildEqualsLibxxhash) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf((1 << 20) + 64);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t offset : {0UL, 1UL, 13UL}) {
    for (size_t n : sizes()) {
      const uint8_t* p = buf.data() + offset;
      const uint64_t want = XXH3_64bits(p, n);
      EXPECT_EQ(xxh3_64(p, n), want) << n << " bytes at +" << offset;
      EXPECT_EQ(detail::xxh3_64_sse2(p, n), want) << n << " bytes at +" << offset;
#if KVTIER_HAVE_XXH3_AVX2
      if (__builtin_cpu_supports("avx2") != 0) {
        EXPECT_EQ(detail::xxh3_64_avx2(p, n), want) << n << " bytes at +" << offset;
      }
      if (__builtin_cpu_supports("avx512f") != 0) {
        EXPECT_EQ(detail::xxh3_64_avx512(p, n), want) << n << " bytes at +" << offset;
      }
#endif
    }
  }
}

TEST(ChecksumTest, BlockChecksumIsNeverZero) {
  // 0 means "no checksum recorded"; the only input hashing to 0 is not findable, so check the
  // mapping itself on an ordinary input and that it leaves non-zero sums alone.
  const std::vector<uint8_t> bytes(4096, 0x5a);
  EXPECT_EQ(block_checksum(bytes.data(), bytes.size()), XXH3_64bits(bytes.data(), bytes.size()));
  EXPECT_NE(block_checksum(bytes.data(), bytes.size()), 0U);
}

TEST(ChecksumTest, ReportsItsImplementation) {
  const std::string impl = xxh3_64_implementation();
  EXPECT_TRUE(impl == "avx512" || impl == "avx2" || impl == "sse2") << impl;
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") != 0;
  EXPECT_EQ(impl == "avx512", avx512);
  EXPECT_EQ(impl == "avx2", !avx512 && __builtin_cpu_supports("avx2") != 0);
#endif
}

}  // namespace
}  // namespace kvtier
