// SHA-256 through OpenSSL's libcrypto (Debian's libssl-dev): vLLM's sha256_cbor block hash.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace kvtier {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest sha256(std::string_view data);

}  // namespace kvtier
