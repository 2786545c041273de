// How a block's bytes are stored on SSD: as they are, or zstd-compressed (per namespace; KV data
// in bf16/fp16 compresses modestly, so it is off by default and the bench reports the ratio).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kvtier/result.h"

namespace kvtier::ssd {

enum class Codec : uint8_t { kNone = 0, kZstd = 1 };

std::string_view codec_name(Codec c);
Result<Codec> parse_codec(std::string_view name);  // "none" | "zstd"

// Compresses `in` into `out` (resized to fit); false when it would not shrink the block, so the
// caller stores it raw. One compression context per thread, reused.
bool zstd_compress(std::span<const uint8_t> in, int level, std::vector<uint8_t>& out);
// Decompresses into exactly out.size() bytes; corruption if the frame is bad or sized otherwise.
Status zstd_decompress(std::span<const uint8_t> in, std::span<uint8_t> out);

}  // namespace kvtier::ssd
