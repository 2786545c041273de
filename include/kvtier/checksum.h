// Block checksums: XXH3-64 of a payload, the value kvtier records for a host or SSD block and
// sends with every GetBlocks / PutBlocks chunk (docs/api.md).
//
// The same function as libxxhash's XXH3_64bits (seed 0), with the hash loop compiled for the
// widest vector unit this CPU has (AVX-512 or AVX2 where present): the Debian library is built for the
// x86-64 baseline (SSE2) and hashes about a third as fast, which made checksums cost more than
// the copies they guard.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace kvtier {

// XXH3-64 (seed 0) of `size` bytes at `data`; equal to XXH3_64bits(data, size).
uint64_t xxh3_64(const void* data, size_t size);

inline uint64_t xxh3_64(std::span<const uint8_t> bytes) { return xxh3_64(bytes.data(), bytes.size()); }

// The checksum recorded for a block: its XXH3-64, never 0 (0 means "none recorded").
inline uint64_t block_checksum(const void* data, size_t size) {
  const uint64_t sum = xxh3_64(data, size);
  return sum != 0 ? sum : 1;
}

// Which implementation xxh3_64 runs on this CPU: "avx512", "avx2" or "sse2" (for logs and benchmarks).
const char* xxh3_64_implementation();

}  // namespace kvtier
