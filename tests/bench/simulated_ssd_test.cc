// The study's SSD tier (bench/policy/simulated_ssd.h) keeps and gives up blocks as the node's
// SsdStore does: regions in write order, the oldest reclaimed first, blocks read since they were
// written rewritten once, the rest lost and listed for the mover to forget.
#include "policy/simulated_ssd.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace kvtier::policy {
namespace {

BlockKey key(uint64_t i) { return BlockKey{i, i}; }

void write(SimulatedSsd& ssd, uint64_t i) { ASSERT_TRUE(ssd.insert({key(i), 0, 0, 1}, {}).ok()); }

bool read(SimulatedSsd& ssd, uint64_t i) {
  std::vector<tiers::TierRead> reads{tiers::TierRead{{key(i), 0, 0, 1}, 0, {}, {}}};
  ssd.read(reads);
  return reads[0].status.ok();
}

TEST(SimulatedSsd, TheOldestRegionGoesAndItsBlocksReadSinceWrittenAreRewrittenOnce) {
  SimulatedSsd ssd(/*capacity=*/8, /*regions=*/4, /*reinsert_hot=*/true);  // 4 regions of 2 blocks
  for (uint64_t i = 1; i <= 8; ++i) write(ssd, i);
  EXPECT_EQ(ssd.used_bytes(), 8u);
  EXPECT_TRUE(ssd.take_lost().empty());
  ASSERT_TRUE(read(ssd, 1));
  write(ssd, 9);  // the first region ({1, 2}) is reclaimed: 1 was read, 2 was not
  EXPECT_EQ(ssd.take_lost(), std::vector<BlockKey>{key(2)});
  EXPECT_TRUE(ssd.contains(key(1), 0));
  EXPECT_TRUE(ssd.contains(key(9), 0)) << "written beside the rewritten block";
  EXPECT_EQ(ssd.reinserted(), 1u);
  for (uint64_t i = 10; i <= 17; ++i) write(ssd, i);  // around again: 1 was not read since its rewrite
  const std::vector<BlockKey> lost = ssd.take_lost();
  EXPECT_NE(std::find(lost.begin(), lost.end(), key(1)), lost.end());
  EXPECT_FALSE(read(ssd, 1));
  EXPECT_EQ(ssd.used_bytes(), 8u);
}

TEST(SimulatedSsd, RemovedBlocksLeaveTheirSpaceUntilTheRegionIsReclaimed) {
  SimulatedSsd ssd(8, 4, /*reinsert_hot=*/false);
  for (uint64_t i = 1; i <= 8; ++i) write(ssd, i);
  ssd.remove(key(1), 0);
  EXPECT_FALSE(ssd.contains(key(1), 0));
  EXPECT_EQ(ssd.used_bytes(), 8u) << "log-structured: dead space until its region goes";
  ASSERT_TRUE(read(ssd, 2));
  write(ssd, 9);
  EXPECT_EQ(ssd.take_lost(), std::vector<BlockKey>{key(2)}) << "without reinsertion a hot block goes too";
  EXPECT_EQ(ssd.insert({key(10), 0, 0, 3}, {}).status().code(), StatusCode::kResourceExhausted)
      << "a block larger than a region";
}

}  // namespace
}  // namespace kvtier::policy
