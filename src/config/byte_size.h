// Byte sizes as people write them in configs: "512MiB", "4GiB", "1.5TB", "65536".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kvtier/result.h"

namespace kvtier::config {

// Binary suffixes (KiB, MiB, GiB, TiB; also K, M, G, T) are powers of 1024; decimal ones
// (KB, MB, GB, TB) powers of 1000; no suffix or "B" means bytes. Fractions are allowed with a
// suffix ("1.5GiB"). Overflow, negatives and unknown suffixes are errors.
Result<uint64_t> parse_byte_size(std::string_view text);

// An exact, readable binary form: 1073741824 → "1GiB", 1536 → "1.5KiB", 1000 → "1000B".
std::string format_byte_size(uint64_t bytes);

}  // namespace kvtier::config
