#include "kvtier/prefix_chain.h"

// Inline XXH3 so short block inputs hash without a library call, with the seed and secret
// folded in at compile time. The digest is the same as libxxhash's (tested).
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace kvtier {
namespace {

// Blocks up to this many tokens are hashed as one contiguous stack buffer (parent ‖ tokens);
// larger ones through XXH3's streaming state, which gives the identical digest.
constexpr uint32_t kMaxContiguousTokens = 1024;
constexpr size_t kParentBytes = BlockKey::kBytes;

void put_parent(const BlockKey& parent, uint8_t* out) {
  const auto bytes = parent.to_bytes();
  std::memcpy(out, bytes.data(), kParentBytes);
}

// Tokens are hashed as little-endian uint32; on a little-endian host that is their memory image.
void put_tokens_le(const TokenId* tokens, size_t n, uint8_t* out) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out, tokens, n * sizeof(TokenId));
  } else {
    for (size_t i = 0; i < n; ++i) {
      const TokenId t = tokens[i];
      out[4 * i] = static_cast<uint8_t>(t);
      out[4 * i + 1] = static_cast<uint8_t>(t >> 8);
      out[4 * i + 2] = static_cast<uint8_t>(t >> 16);
      out[4 * i + 3] = static_cast<uint8_t>(t >> 24);
    }
  }
}

BlockKey to_key(XXH128_hash_t h) { return {h.high64, h.low64}; }

BlockKey hash_contiguous(const BlockKey& parent, const TokenId* tokens, size_t n) {
  alignas(64) uint8_t buf[kParentBytes + kMaxContiguousTokens * sizeof(TokenId)];
  put_parent(parent, buf);
  put_tokens_le(tokens, n, buf + kParentBytes);
  return to_key(XXH3_128bits(buf, kParentBytes + n * sizeof(TokenId)));
}

BlockKey hash_streaming(const BlockKey& parent, const TokenId* tokens, size_t n) {
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_128bits_reset(&state);
  uint8_t parent_bytes[kParentBytes];
  put_parent(parent, parent_bytes);
  XXH3_128bits_update(&state, parent_bytes, kParentBytes);
  if constexpr (std::endian::native == std::endian::little) {
    XXH3_128bits_update(&state, tokens, n * sizeof(TokenId));
  } else {
    uint8_t chunk[kMaxContiguousTokens * sizeof(TokenId)];
    for (size_t done = 0; done < n; done += kMaxContiguousTokens) {
      const size_t m = std::min<size_t>(kMaxContiguousTokens, n - done);
      put_tokens_le(tokens + done, m, chunk);
      XXH3_128bits_update(&state, chunk, m * sizeof(TokenId));
    }
  }
  return to_key(XXH3_128bits_digest(&state));
}

}  // namespace

BlockKey chain_key(const BlockKey& parent, std::span<const TokenId> block) {
  return block.size() <= kMaxContiguousTokens ? hash_contiguous(parent, block.data(), block.size())
                                              : hash_streaming(parent, block.data(), block.size());
}

size_t extend_chain(const BlockKey& parent, uint32_t block_tokens, std::span<const TokenId> tokens,
                    std::span<BlockKey> out) {
  const size_t n = std::min(full_blocks(tokens.size(), block_tokens), out.size());
  BlockKey key = parent;
  const TokenId* p = tokens.data();
  if (block_tokens <= kMaxContiguousTokens) {
    for (size_t i = 0; i < n; ++i, p += block_tokens) out[i] = key = hash_contiguous(key, p, block_tokens);
  } else {
    for (size_t i = 0; i < n; ++i, p += block_tokens) out[i] = key = hash_streaming(key, p, block_tokens);
  }
  return n;
}

size_t compute_chain(const Namespace& ns, std::span<const TokenId> tokens, std::span<BlockKey> out) {
  return extend_chain(ns.root(), ns.block_tokens(), tokens, out);
}

std::vector<BlockKey> compute_chain(const Namespace& ns, std::span<const TokenId> tokens) {
  std::vector<BlockKey> keys(full_blocks(tokens.size(), ns.block_tokens()));
  compute_chain(ns, tokens, keys);
  return keys;
}

}  // namespace kvtier
