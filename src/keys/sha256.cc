#include "keys/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace kvtier {

Sha256Digest sha256(std::string_view data) {
  // The algorithm is looked up once (a provider fetch is slower than hashing a block's CBOR).
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  Sha256Digest out{};
  unsigned int len = 0;
  if (md == nullptr || EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1 || len != out.size()) {
    std::abort();  // libcrypto without SHA-256 is a broken installation, not an input error
  }
  return out;
}

}  // namespace kvtier
