#include "kvtier/prefix_chain.h"

#include <gtest/gtest.h>
#include <xxhash.h>  // the shared library's XXH3, as an independent check of the inlined one

#include <random>
#include <set>
#include <vector>

namespace kvtier {
namespace {

Namespace make_ns(uint32_t block_tokens, std::string salt = "") {
  NamespaceSpec s;
  s.model_id = "test/model";
  s.cache_salt = std::move(salt);
  s.layout = {KvDType::kBFloat16, block_tokens, 4, 2, 64, 2};
  return Namespace::create(s).value();
}

std::vector<TokenId> random_tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<TokenId> t(n);
  for (auto& x : t) x = static_cast<TokenId>(rng());
  return t;
}

// The definition in docs/keys.md, written the slow obvious way with libxxhash.
BlockKey definition(const BlockKey& parent, const std::vector<TokenId>& tokens, size_t begin, size_t count) {
  std::vector<uint8_t> buf;
  const auto p = parent.to_bytes();
  buf.insert(buf.end(), p.begin(), p.end());
  for (size_t i = begin; i < begin + count; ++i) {
    for (int b = 0; b < 4; ++b) buf.push_back(static_cast<uint8_t>(tokens[i] >> (8 * b)));
  }
  const XXH128_hash_t h = XXH3_128bits(buf.data(), buf.size());
  return {h.high64, h.low64};
}

TEST(PrefixChainTest, OnlyFullBlocksGetKeys) {
  const Namespace ns = make_ns(16);
  EXPECT_EQ(compute_chain(ns, random_tokens(0, 1)).size(), 0u);
  EXPECT_EQ(compute_chain(ns, random_tokens(15, 1)).size(), 0u);
  EXPECT_EQ(compute_chain(ns, random_tokens(16, 1)).size(), 1u);
  EXPECT_EQ(compute_chain(ns, random_tokens(47, 1)).size(), 2u);
  EXPECT_EQ(full_blocks(47, 16), 2u);
  EXPECT_EQ(full_blocks(47, 0), 0u);
}

TEST(PrefixChainTest, MatchesTheDefinitionAcrossBothHashPaths) {
  // 1024 tokens is the largest block hashed from one stack buffer; 1025 takes the streaming path.
  for (uint32_t b : {1u, 3u, 16u, 17u, 64u, 256u, 1023u, 1024u, 1025u, 4096u}) {
    const Namespace ns = make_ns(b);
    const auto tokens = random_tokens(3 * b + b / 2, b);
    const auto keys = compute_chain(ns, tokens);
    ASSERT_EQ(keys.size(), 3u) << "block_tokens=" << b;
    BlockKey parent = ns.root();
    for (size_t i = 0; i < keys.size(); ++i) {
      parent = definition(parent, tokens, i * b, b);
      EXPECT_EQ(keys[i], parent) << "block_tokens=" << b << " block " << i;
    }
  }
}

TEST(PrefixChainTest, AChainOfAPrefixIsAPrefixOfTheChain) {
  const Namespace ns = make_ns(16);
  const auto tokens = random_tokens(16 * 40 + 5, 7);
  const auto full = compute_chain(ns, tokens);
  for (size_t cut : {0u, 1u, 16u, 100u, 320u, 645u}) {
    const std::vector<TokenId> prefix(tokens.begin(), tokens.begin() + cut);
    const auto part = compute_chain(ns, prefix);
    ASSERT_LE(part.size(), full.size());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin())) << "cut=" << cut;
  }
}

TEST(PrefixChainTest, ExtendChainContinuesFromAKnownBlock) {
  const Namespace ns = make_ns(16);
  const auto tokens = random_tokens(16 * 10, 3);
  const auto full = compute_chain(ns, tokens);
  // A decode step that fills blocks 6..9 extends from block 5's key.
  std::vector<BlockKey> tail(4);
  const std::span<const TokenId> rest(tokens.data() + 16 * 6, 16 * 4);
  EXPECT_EQ(extend_chain(full[5], 16, rest, tail), 4u);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), full.begin() + 6));
}

TEST(PrefixChainTest, OutputSpanBoundsTheWork) {
  const Namespace ns = make_ns(16);
  const auto tokens = random_tokens(16 * 8, 4);
  std::vector<BlockKey> out(3);
  EXPECT_EQ(compute_chain(ns, tokens, out), 3u);
  EXPECT_EQ(out[2], compute_chain(ns, tokens)[2]);
}

TEST(PrefixChainTest, OneTokenChangesItsBlockAndEveryLaterKeyOnly) {
  const Namespace ns = make_ns(16);
  auto tokens = random_tokens(16 * 6, 5);
  const auto before = compute_chain(ns, tokens);
  tokens[16 * 3 + 7] ^= 1;
  const auto after = compute_chain(ns, tokens);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(before[i], after[i]);
  for (size_t i = 3; i < 6; ++i) EXPECT_NE(before[i], after[i]);
}

TEST(PrefixChainTest, TenantsWithDifferentSaltsShareNoKey) {
  const auto tokens = random_tokens(16 * 50, 6);
  const auto a = compute_chain(make_ns(16, "tenant-a"), tokens);
  const auto b = compute_chain(make_ns(16, "tenant-b"), tokens);
  std::set<BlockKey> seen(a.begin(), a.end());
  for (const auto& k : b) EXPECT_FALSE(seen.contains(k));
}

TEST(PrefixChainTest, SameBlockTokensUnderDifferentHistoryGiveDifferentKeys) {
  // The key names the block *and its prefix*: equal block contents after different prefixes differ.
  const Namespace ns = make_ns(4);
  const std::vector<TokenId> x{1, 2, 3, 4, 9, 9, 9, 9};
  const std::vector<TokenId> y{5, 6, 7, 8, 9, 9, 9, 9};
  EXPECT_NE(compute_chain(ns, x)[1], compute_chain(ns, y)[1]);
}

}  // namespace
}  // namespace kvtier
