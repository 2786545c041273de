#include "kvtier/key_profile.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

#include "keys/cbor_writer.h"
#include "keys/sha256.h"
#include "kvtier/namespace.h"

namespace kvtier {
namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;
constexpr uint64_t kDynamoSeed = 1337;

uint64_t fnv64a(std::string_view data) {
  uint64_t h = kFnvOffset;
  for (const char c : data) {
    h ^= static_cast<uint8_t>(c);
    h *= kFnvPrime;
  }
  return h;
}

void put_le64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

// CBOR([parent, [tokens…], extra]) with the parent already written by `parent`.
template <typename WriteParent, typename WriteExtra>
void block_tuple(std::string& buf, std::span<const TokenId> block, WriteParent parent, WriteExtra extra) {
  buf.clear();
  cbor::Writer w(buf);
  w.array(3);
  parent(w);
  w.array(block.size());
  for (const TokenId t : block) w.uint(t);
  extra(w);
}

}  // namespace

std::string_view key_profile_name(KeyProfileKind kind) {
  switch (kind) {
    case KeyProfileKind::kKvtier: return "kvtier";
    case KeyProfileKind::kVllmSha256Cbor: return "vllm_sha256_cbor";
    case KeyProfileKind::kLlmdFnv64Cbor: return "llmd_fnv64_cbor";
    case KeyProfileKind::kDynamoXxh3: return "dynamo_xxh3";
  }
  return "unknown";
}

Result<KeyProfileKind> parse_key_profile(std::string_view name) {
  for (const auto k : {KeyProfileKind::kKvtier, KeyProfileKind::kVllmSha256Cbor, KeyProfileKind::kLlmdFnv64Cbor,
                       KeyProfileKind::kDynamoXxh3}) {
    if (name == key_profile_name(k)) return k;
  }
  return Status::invalid_argument(
      fmt::format("unknown key profile '{}' (kvtier, vllm_sha256_cbor, llmd_fnv64_cbor or dynamo_xxh3)", name));
}

Status KeyProfile::validate() const {
  if (key_profile_name(kind) == "unknown") return Status::invalid_argument("unknown key profile kind");
  if (block_tokens == 0 || block_tokens > KvLayout::kMaxBlockTokens) {
    return Status::invalid_argument(
        fmt::format("block_tokens {} is outside 1..{}", block_tokens, KvLayout::kMaxBlockTokens));
  }
  if ((kind == KeyProfileKind::kKvtier || kind == KeyProfileKind::kLlmdFnv64Cbor) && !cache_salt.empty()) {
    return Status::invalid_argument(
        fmt::format("cache_salt keys vLLM's and Dynamo's hashes; profile {} has none", key_profile_name(kind)));
  }
  if (kind != KeyProfileKind::kVllmSha256Cbor && !lora_path.empty()) {
    return Status::invalid_argument(
        fmt::format("lora_path keys vLLM's hashes only; profile {} has none", key_profile_name(kind)));
  }
  if (kind == KeyProfileKind::kKvtier && !lora_name.empty()) {
    return Status::invalid_argument("lora_name keys the peers' hashes; kvtier's profile takes it from the Namespace");
  }
  return {};
}

std::array<uint8_t, 32> vllm_none_hash(std::string_view hash_seed) {
  std::string buf;
  cbor::Writer(buf).text(hash_seed);
  return sha256(buf);
}

std::vector<std::array<uint8_t, 32>> vllm_block_digests(const KeyProfile& profile, std::span<const TokenId> tokens) {
  const size_t n = full_blocks(tokens.size(), profile.block_tokens);
  std::vector<std::array<uint8_t, 32>> out;
  out.reserve(n);
  std::array<uint8_t, 32> parent = vllm_none_hash(profile.hash_seed);
  std::string buf;
  for (size_t i = 0; i < n; ++i) {
    const auto block = tokens.subspan(i * profile.block_tokens, profile.block_tokens);
    // extra_keys, tagged by source as vLLM 0.32 hashes them: ("lora", name, path), then
    // ("cache_salt", salt) on the first block; None when empty.
    const bool salt = i == 0 && !profile.cache_salt.empty();
    const size_t extras = (profile.lora_name.empty() ? 0 : 1) + (salt ? 1 : 0);
    block_tuple(
        buf, block, [&](cbor::Writer& w) { w.bytes(parent); },
        [&](cbor::Writer& w) {
          if (extras == 0) {
            w.null();
            return;
          }
          w.array(extras);
          if (!profile.lora_name.empty()) {
            w.array(3);
            w.text("lora");
            w.text(profile.lora_name);
            w.text(profile.lora_path);
          }
          if (salt) {
            w.array(2);
            w.text("cache_salt");
            w.text(profile.cache_salt);
          }
        });
    parent = sha256(buf);
    out.push_back(parent);
  }
  return out;
}

std::vector<uint64_t> dynamo_block_hashes(const KeyProfile& profile, std::span<const TokenId> tokens) {
  // The seed carries the request-wide identities (Dynamo's compute_salt_hash): the LoRA name
  // hashed with seed 0, the salt with seed 1, so neither can pass for the other.
  uint64_t seed = kDynamoSeed;
  if (!profile.lora_name.empty()) seed += XXH3_64bits_withSeed(profile.lora_name.data(), profile.lora_name.size(), 0);
  if (!profile.cache_salt.empty())
    seed += XXH3_64bits_withSeed(profile.cache_salt.data(), profile.cache_salt.size(), 1);
  const size_t n = full_blocks(tokens.size(), profile.block_tokens);
  std::vector<uint64_t> out;
  out.reserve(n);
  std::vector<uint8_t> le(size_t{profile.block_tokens} * sizeof(TokenId));
  for (size_t i = 0; i < n; ++i) {
    const TokenId* block = tokens.data() + i * profile.block_tokens;
    for (uint32_t t = 0; t < profile.block_tokens; ++t) {
      for (int b = 0; b < 4; ++b) le[4 * t + b] = static_cast<uint8_t>(block[t] >> (8 * b));
    }
    out.push_back(XXH3_64bits_withSeed(le.data(), le.size(), seed));
  }
  return out;
}

uint64_t vllm_wire_hash(std::span<const uint8_t> digest) {
  uint64_t v = 0;
  const size_t from = digest.size() >= 8 ? digest.size() - 8 : 0;
  for (size_t i = from; i < digest.size(); ++i) v = (v << 8) | digest[i];
  return v;
}

std::vector<uint64_t> engine_block_hashes(const KeyProfile& profile, std::span<const TokenId> tokens) {
  const size_t n = full_blocks(tokens.size(), profile.block_tokens);
  std::vector<uint64_t> out;
  out.reserve(n);
  switch (profile.kind) {
    case KeyProfileKind::kKvtier: break;
    case KeyProfileKind::kVllmSha256Cbor:
      for (const auto& d : vllm_block_digests(profile, tokens)) out.push_back(vllm_wire_hash(d));
      break;
    case KeyProfileKind::kLlmdFnv64Cbor: {
      // The root: [FNV-64a(seed), null, model or LoRA name], CBOR, FNV-64a.
      std::string buf;
      {
        cbor::Writer w(buf);
        w.array(3);
        w.uint(fnv64a(profile.hash_seed));
        w.null();
        w.text(profile.lora_name.empty() ? profile.model_name : profile.lora_name);
      }
      uint64_t parent = fnv64a(buf);
      for (size_t i = 0; i < n; ++i) {
        block_tuple(
            buf, tokens.subspan(i * profile.block_tokens, profile.block_tokens),
            [&](cbor::Writer& w) { w.uint(parent); }, [](cbor::Writer& w) { w.null(); });
        parent = fnv64a(buf);
        out.push_back(parent);
      }
      break;
    }
    case KeyProfileKind::kDynamoXxh3: {
      uint64_t seq = 0;
      const std::vector<uint64_t> locals = dynamo_block_hashes(profile, tokens);
      for (size_t i = 0; i < n; ++i) {
        const uint64_t local = locals[i];
        if (i == 0) {
          seq = local;
        } else {
          uint8_t pair[16];
          put_le64(pair, seq);
          put_le64(pair + 8, local);
          seq = XXH3_64bits_withSeed(pair, sizeof(pair), kDynamoSeed);
        }
        out.push_back(seq);
      }
      break;
    }
  }
  return out;
}

}  // namespace kvtier
