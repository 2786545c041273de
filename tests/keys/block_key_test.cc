#include "kvtier/block_key.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace kvtier {
namespace {

constexpr BlockKey kKey{0x0123456789abcdefULL, 0xfedcba9876543210ULL};

TEST(BlockKeyTest, CanonicalBytesAreHiThenLoBigEndian) {
  const auto b = kKey.to_bytes();
  const uint8_t expected[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
  EXPECT_TRUE(std::equal(b.begin(), b.end(), expected));
  EXPECT_EQ(BlockKey::from_bytes(b.data()), kKey);
}

TEST(BlockKeyTest, HexRoundTrips) {
  EXPECT_EQ(kKey.to_hex(), "0123456789abcdeffedcba9876543210");
  EXPECT_EQ(*BlockKey::from_hex("0123456789abcdeffedcba9876543210"), kKey);
  EXPECT_EQ(*BlockKey::from_hex("0123456789ABCDEFFEDCBA9876543210"), kKey);
}

TEST(BlockKeyTest, BadHexIsAClearError) {
  const auto too_short = BlockKey::from_hex("0123");
  ASSERT_FALSE(too_short.ok());
  EXPECT_EQ(too_short.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_short.status().message().find("32 hex digits"), std::string::npos);
  const auto bad_char = BlockKey::from_hex("0123456789abcdeffedcba987654321g");
  ASSERT_FALSE(bad_char.ok());
  EXPECT_NE(bad_char.status().message().find("non-hex"), std::string::npos);
}

TEST(BlockKeyTest, Low64IsTheLastEightCanonicalBytesBigEndian) {
  // vLLM-style events carry a digest as an int: its last 8 bytes read big-endian.
  const auto b = kKey.to_bytes();
  uint64_t v = 0;
  for (int i = 8; i < 16; ++i) v = (v << 8) | b[i];
  EXPECT_EQ(kKey.low64(), v);
}

TEST(BlockKeyTest, OrderAndHashing) {
  EXPECT_LT((BlockKey{1, 9}), (BlockKey{2, 0}));
  EXPECT_LT((BlockKey{1, 1}), (BlockKey{1, 2}));
  std::unordered_set<BlockKey> set{{1, 2}, {2, 1}, {1, 2}};
  EXPECT_EQ(set.size(), 2u);
}

}  // namespace
}  // namespace kvtier
