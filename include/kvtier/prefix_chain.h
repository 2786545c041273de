// Prefix-hash chains: the keys of a token sequence's full blocks.
//
//   key_0 = XXH3-128(root     ‖ tokens[0 : B])
//   key_i = XXH3-128(key_{i-1} ‖ tokens[iB : (i+1)B])
//
// with keys in their canonical 16-byte form, tokens as little-endian uint32 and seed 0. Only full
// blocks get keys. docs/keys.md is the normative specification, with golden vectors.
//
// A longest-prefix match is a walk along the chain until the first miss, so keys must be computed
// in order; the functions below do that for a whole prompt in one call, without allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/namespace.h"

namespace kvtier {

// Version of the key derivation. It is hashed into every root, so keys of different formats
// never meet. Bump it for any change to docs/keys.md.
inline constexpr uint32_t kKeyFormatVersion = 1;

using TokenId = uint32_t;

// Number of full blocks in `num_tokens` tokens.
constexpr size_t full_blocks(size_t num_tokens, uint32_t block_tokens) {
  return block_tokens == 0 ? 0 : num_tokens / block_tokens;
}

// One link of a chain: the key of `block` (all of its tokens) following the block keyed `parent`
// (or following the namespace root, for the first block).
BlockKey chain_key(const BlockKey& parent, std::span<const TokenId> block);

// Keys of the full blocks of `tokens` that follow `parent`, written to `out` in order. Writes
// min(full blocks, out.size()) keys and returns that count. No allocation.
size_t extend_chain(const BlockKey& parent, uint32_t block_tokens, std::span<const TokenId> tokens,
                    std::span<BlockKey> out);

// Keys of the full blocks of a whole prompt: extend_chain from the namespace root.
size_t compute_chain(const Namespace& ns, std::span<const TokenId> tokens, std::span<BlockKey> out);
std::vector<BlockKey> compute_chain(const Namespace& ns, std::span<const TokenId> tokens);

}  // namespace kvtier
