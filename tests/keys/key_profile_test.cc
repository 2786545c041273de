// The peers' block hashes (kvtier/key_profile.h) against profile_vectors.tsv, which the Python
// reference (profile_reference.py: cbor2, hashlib, xxhash) generated, and against the one vector
// a peer published: vLLM's NONE_HASH for PYTHONHASHSEED "0".
#include "kvtier/key_profile.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "keys/cbor_writer.h"
#include "token_spec.h"

#ifndef KVTIER_PROFILE_VECTORS
#error "KVTIER_PROFILE_VECTORS must name tests/keys/profile_vectors.tsv"
#endif

namespace kvtier {
namespace {

std::string hex(std::span<const uint8_t> b) {
  std::string out;
  for (const uint8_t c : b) out += fmt::format("{:02x}", c);
  return out;
}

TEST(KeyProfileTest, VllmNoneHashForSeedZeroIsThePublishedValue) {
  EXPECT_EQ(hex(vllm_none_hash("0")), "4e1195df020de59e0d65a33a4279f1183e7ae4e5d980e309f8b55adff2e61c3e");
}

TEST(KeyProfileTest, EveryVectorOfTheReferenceComesOutBitForBit) {
  std::ifstream in(KVTIER_PROFILE_VECTORS);
  ASSERT_TRUE(in) << KVTIER_PROFILE_VECTORS;
  std::string line;
  size_t cases = 0;
  bool header = true;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (header) {
      header = false;
      continue;
    }
    const auto f = testing::split(line, '\t');
    ASSERT_GE(f.size(), 9u) << line;
    KeyProfile p;
    p.kind = parse_key_profile(f[1]).value();
    p.block_tokens = static_cast<uint32_t>(std::stoul(f[2]));
    p.hash_seed = f[3];
    p.lora_name = f[4];
    p.cache_salt = f[5];
    if (f.size() > 9) p.model_name = f[9];
    if (f.size() > 10) p.lora_path = f[10];
    ASSERT_TRUE(p.validate().ok()) << f[0];
    const auto tokens = testing::expand_tokens(f[6]);
    std::string hashes;
    for (const uint64_t h : engine_block_hashes(p, tokens)) hashes += (hashes.empty() ? "" : ",") + std::to_string(h);
    EXPECT_EQ(hashes, f[7]) << f[0];
    if (p.kind == KeyProfileKind::kVllmSha256Cbor) {
      std::string digests;
      for (const auto& d : vllm_block_digests(p, tokens)) digests += (digests.empty() ? "" : ",") + hex(d);
      EXPECT_EQ(digests, f[8]) << f[0];
    }
    ++cases;
  }
  EXPECT_GE(cases, 10u);
}

TEST(KeyProfileTest, WireHashIsTheLastEightBytesBigEndian) {
  std::array<uint8_t, 32> d{};
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(vllm_wire_hash(d), 0x18191a1b1c1d1e1fULL);
  const uint8_t shorter[3] = {1, 2, 3};
  EXPECT_EQ(vllm_wire_hash(shorter), 0x010203ULL);
}

TEST(KeyProfileTest, CborHeadsAreTheShortestForm) {
  std::string out;
  cbor::Writer w(out);
  for (const uint64_t v : {0ULL, 23ULL, 24ULL, 255ULL, 256ULL, 65535ULL, 65536ULL, 4294967295ULL, 4294967296ULL}) {
    w.uint(v);
  }
  w.null();
  w.text("a0");
  EXPECT_EQ(hex({reinterpret_cast<const uint8_t*>(out.data()), out.size()}),
            "00"
            "17"
            "1818"
            "18ff"
            "190100"
            "19ffff"
            "1a00010000"
            "1affffffff"
            "1b0000000100000000"
            "f6"
            "626130");
}

TEST(KeyProfileTest, ProfilesAreParsedAndValidated) {
  for (const char* name : {"kvtier", "vllm_sha256_cbor", "llmd_fnv64_cbor", "dynamo_xxh3"}) {
    const auto k = parse_key_profile(name);
    ASSERT_TRUE(k.ok()) << name;
    EXPECT_EQ(key_profile_name(*k), name);
  }
  EXPECT_FALSE(parse_key_profile("sha256").ok());
  KeyProfile p;
  p.kind = KeyProfileKind::kDynamoXxh3;
  p.block_tokens = 0;
  EXPECT_FALSE(p.validate().ok());
  p.block_tokens = 16;
  EXPECT_TRUE(p.validate().ok());
  p.cache_salt = "t";
  p.lora_name = "l";
  EXPECT_TRUE(p.validate().ok()) << "Dynamo mixes both into its seed";
  p.kind = KeyProfileKind::kLlmdFnv64Cbor;
  EXPECT_FALSE(p.validate().ok()) << "llm-d has no salt";
  p.cache_salt.clear();
  EXPECT_TRUE(p.validate().ok()) << "llm-d roots an adapter's chains at its name";
  p.kind = KeyProfileKind::kDynamoXxh3;
  p.lora_name.clear();
  // A partial block gets no hash; kvtier's own profile has none here (it needs a Namespace).
  p.cache_salt.clear();
  EXPECT_TRUE(engine_block_hashes(p, std::vector<TokenId>(15, 1)).empty());
  p.kind = KeyProfileKind::kKvtier;
  EXPECT_TRUE(engine_block_hashes(p, std::vector<TokenId>(32, 1)).empty());
}

TEST(KeyProfileTest, KeySpacesKeepEqualHashesApart) {
  EXPECT_NE(engine_index_key(1, 42), engine_index_key(2, 42));
  EXPECT_EQ(engine_index_key(1, 42).lo, 42u);
}

}  // namespace
}  // namespace kvtier
