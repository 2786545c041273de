#include "kvtier/block_key.h"

#include <bit>

namespace kvtier {
namespace {

void store_be64(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

uint64_t load_be64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return v;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::array<uint8_t, BlockKey::kBytes> BlockKey::to_bytes() const {
  std::array<uint8_t, kBytes> out{};
  store_be64(hi, out.data());
  store_be64(lo, out.data() + 8);
  return out;
}

BlockKey BlockKey::from_bytes(const uint8_t* bytes) { return {load_be64(bytes), load_be64(bytes + 8)}; }

std::string BlockKey::to_hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto bytes = to_bytes();
  std::string out(2 * kBytes, '0');
  for (size_t i = 0; i < kBytes; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xF];
  }
  return out;
}

Result<BlockKey> BlockKey::from_hex(std::string_view hex) {
  if (hex.size() != 2 * kBytes) {
    return Status::invalid_argument("block key must be 32 hex digits, got " + std::to_string(hex.size()) +
                                    " characters");
  }
  std::array<uint8_t, kBytes> bytes{};
  for (size_t i = 0; i < kBytes; ++i) {
    const int h = hex_value(hex[2 * i]);
    const int l = hex_value(hex[2 * i + 1]);
    if (h < 0 || l < 0) {
      return Status::invalid_argument("block key has a non-hex character near offset " + std::to_string(2 * i));
    }
    bytes[i] = static_cast<uint8_t>((h << 4) | l);
  }
  return from_bytes(bytes.data());
}

}  // namespace kvtier
