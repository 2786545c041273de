// The storage tiers a block can be resident in, fastest first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvtier {

enum class Tier : uint8_t {
  kHbm = 0,   // GPU memory owned by an engine (G1)
  kHost = 1,  // the node's shared-memory arena (G2)
  kSsd = 2,   // local NVMe (G3)
};

inline constexpr size_t kNumTiers = 3;
inline constexpr Tier kAllTiers[kNumTiers] = {Tier::kHbm, Tier::kHost, Tier::kSsd};

constexpr uint8_t tier_bit(Tier t) { return static_cast<uint8_t>(1u << static_cast<uint8_t>(t)); }
constexpr size_t tier_index(Tier t) { return static_cast<size_t>(t); }

// "hbm", "host", "ssd".
std::string_view tier_name(Tier t);

}  // namespace kvtier
