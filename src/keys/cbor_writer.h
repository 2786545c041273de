// Canonical CBOR (RFC 8949 §4.2.1: shortest heads, definite lengths) for the few types peers'
// block hashes encode: unsigned integers, byte and text strings, arrays and null. vLLM's
// sha256_cbor and llm-d's token processor hash exactly such encodings, so a key profile that
// must reproduce their hashes writes the same bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kvtier::cbor {

// Appends to a caller-owned buffer, which can be cleared and reused without reallocating.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void uint(uint64_t v) { head(0, v); }
  void bytes(std::span<const uint8_t> b);
  void text(std::string_view s);
  void array(uint64_t items) { head(4, items); }
  void null() { out_.push_back(static_cast<char>(0xF6)); }

 private:
  void head(uint8_t major, uint64_t value);

  std::string& out_;
};

}  // namespace kvtier::cbor
