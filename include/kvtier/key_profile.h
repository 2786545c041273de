// Key profiles: the block hashes that other engines and schedulers compute, so a scheduler can
// turn a prompt's token ids into the keys an engine reports in its events (docs/scheduler.md).
//
//   vllm_sha256_cbor  vLLM's sha256_cbor: h_i = SHA-256(CBOR([h_{i-1}, [tokens…], extra_keys])),
//                     h_{-1} = NONE_HASH = SHA-256(CBOR(PYTHONHASHSEED)); extra_keys null, or
//                     tagged entries ["lora", name, path] and, on the first block, ["cache_salt",
//                     salt] (vLLM 0.32); on the wire the last 8 bytes of h_i read big-endian.
//   llmd_fnv64_cbor   llm-d's token processor (FNV-64a): h_i = FNV-64a(CBOR([h_{i-1}, [tokens…],
//                     null])), h_{-1} = FNV-64a(CBOR([FNV-64a(hash seed bytes), null, name])),
//                     name the LoRA adapter's name or else the model's (llm-d-kv-cache since
//                     late 2025: pkg/kvcache/kvblock/token_processor.go, getInitHash).
//   dynamo_xxh3       Dynamo's router: local_i = XXH3-64(tokens as LE uint32, seed), seed = 1337
//                     + XXH3-64(LoRA name, seed 0) + XXH3-64(cache salt, seed 1) (each term only
//                     when set, wrapping); sequence hash s_0 = local_0, s_i = XXH3-64(LE s_{i-1} ‖
//                     LE local_i, seed 1337).
//   kvtier            kvtier's own XXH3-128 chain (kvtier/prefix_chain.h) from a Namespace.
//
// Only full blocks get hashes, as in every engine.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/prefix_chain.h"
#include "kvtier/result.h"
#include "kvtier/status.h"

namespace kvtier {

enum class KeyProfileKind : uint8_t {
  kKvtier = 0,
  kVllmSha256Cbor = 1,
  kLlmdFnv64Cbor = 2,
  kDynamoXxh3 = 3,
};

// "kvtier", "vllm_sha256_cbor", "llmd_fnv64_cbor", "dynamo_xxh3".
std::string_view key_profile_name(KeyProfileKind kind);
Result<KeyProfileKind> parse_key_profile(std::string_view name);

struct KeyProfile {
  KeyProfileKind kind = KeyProfileKind::kKvtier;
  uint32_t block_tokens = 16;
  // vLLM: the engines' PYTHONHASHSEED (vLLM draws a random NONE_HASH when it is unset, and then
  // no scheduler can reproduce its hashes). llm-d: its HashSeed. Unused by the others.
  std::string hash_seed;
  // vLLM's extra keys: the LoRA name on every block, the cache_salt on the first block only.
  // llm-d: the LoRA name replaces the model name in the root. Dynamo: both mixed into the seed
  // (Dynamo calls the salt the cache namespace).
  std::string lora_name;
  std::string cache_salt;
  // vLLM: the LoRA adapter's path, which vLLM hashes with its name (LoRARequest.lora_path).
  std::string lora_path;
  // llm-d: the model name its root hashes (the served model name, the topic's last part).
  std::string model_name;

  // A known kind, 1 ≤ block_tokens ≤ KvLayout::kMaxBlockTokens; no LoRA name or cache_salt for
  // kvtier's own profile, no cache_salt for llm-d's.
  Status validate() const;
};

// The 64-bit hash an engine of `profile` reports for each full block of `tokens`, in order: what
// vLLM puts on the wire as an int, llm-d's key, Dynamo's sequence hash. Not for kKvtier (its keys
// are 128-bit and need a Namespace: compute_chain).
std::vector<uint64_t> engine_block_hashes(const KeyProfile& profile, std::span<const TokenId> tokens);

// Dynamo only: the per-block hashes local_i its router matches prompts by (Dynamo's
// compute_block_hash_for_seq); engine_block_hashes gives the sequence hashes chained from them.
std::vector<uint64_t> dynamo_block_hashes(const KeyProfile& profile, std::span<const TokenId> tokens);

// The seed vLLM (0.32) derives NONE_HASH from for its cryptographic hashes (sha256, sha256_cbor)
// when PYTHONHASHSEED is unset, so that engines agree without configuration.
inline constexpr std::string_view kVllmDefaultNoneHashSeed = "vllm-none-hash";

// vLLM only: the full 32-byte digests h_i, and NONE_HASH for the profile's seed.
std::vector<std::array<uint8_t, 32>> vllm_block_digests(const KeyProfile& profile, std::span<const TokenId> tokens);
std::array<uint8_t, 32> vllm_none_hash(std::string_view hash_seed);

// vLLM's int form of a digest (or of any hash given as bytes): its last 8 bytes, big-endian.
uint64_t vllm_wire_hash(std::span<const uint8_t> digest);

// Where a 64-bit engine hash lives in a 128-bit keyed index: the high half names the key space
// (a namespace's profile), so equal hashes of different spaces never meet.
inline BlockKey engine_index_key(uint64_t key_space, uint64_t engine_hash) { return {key_space, engine_hash}; }

}  // namespace kvtier
