// BlockKey: the 128-bit name of one KV-cache block *and every token before it*.
//
// Keys come from a prefix-hash chain (kvtier/prefix_chain.h, docs/keys.md): equal keys mean equal
// namespace, equal block tokens and equal history. 128 bits because 64-bit keys collide at fleet
// scale, and a collision would serve another prompt's KV silently.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "kvtier/result.h"

namespace kvtier {

struct BlockKey {
  // The XXH3-128 digest halves. The canonical byte form is hi then lo, each big-endian, which is
  // the digest's canonical (printed) form.
  uint64_t hi = 0;
  uint64_t lo = 0;

  static constexpr size_t kBytes = 16;

  // Canonical 16 bytes: what chains hash, what goes on the wire as `bytes`.
  std::array<uint8_t, kBytes> to_bytes() const;
  static BlockKey from_bytes(const uint8_t* bytes);

  // 32 lower-case hex digits of the canonical bytes.
  std::string to_hex() const;
  static Result<BlockKey> from_hex(std::string_view hex);

  // The last 8 canonical bytes read big-endian: the 64-bit form that vLLM-style event streams
  // carry when a hash must fit an int.
  uint64_t low64() const { return lo; }

  friend constexpr bool operator==(const BlockKey&, const BlockKey&) = default;
  friend constexpr auto operator<=>(const BlockKey&, const BlockKey&) = default;
};

// Hash-table mixing for keys that are already uniform hashes: folding the halves is enough.
struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const noexcept {
    return static_cast<size_t>(k.lo ^ (k.hi * 0x9E3779B97F4A7C15ULL));
  }
};

}  // namespace kvtier

template <>
struct std::hash<kvtier::BlockKey> : kvtier::BlockKeyHash {};
