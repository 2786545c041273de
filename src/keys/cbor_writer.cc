#include "keys/cbor_writer.h"

namespace kvtier::cbor {

void Writer::head(uint8_t major, uint64_t value) {
  const auto initial = static_cast<uint8_t>(major << 5);
  if (value < 24) {
    out_.push_back(static_cast<char>(initial | value));
    return;
  }
  int bytes = 8;
  uint8_t info = 27;
  if (value <= 0xFF) {
    bytes = 1;
    info = 24;
  } else if (value <= 0xFFFF) {
    bytes = 2;
    info = 25;
  } else if (value <= 0xFFFFFFFF) {
    bytes = 4;
    info = 26;
  }
  out_.push_back(static_cast<char>(initial | info));
  for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<char>(value >> (8 * i)));
}

void Writer::bytes(std::span<const uint8_t> b) {
  head(2, b.size());
  out_.append(reinterpret_cast<const char*>(b.data()), b.size());
}

void Writer::text(std::string_view s) {
  head(3, s.size());
  out_.append(s);
}

}  // namespace kvtier::cbor
