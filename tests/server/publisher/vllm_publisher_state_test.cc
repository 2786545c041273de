// The vLLM publisher's state file: what a clean stop wrote reads back whole and only once; a file
// this version did not write (truncated, foreign, corrupt counts) is ignored, never trusted; a
// path that cannot be written is reported.
#include "server/publisher/vllm_publisher_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace kvtier::publisher {
namespace {

std::string scratch_path(const char* name) {
  return (std::filesystem::path(::testing::TempDir()) / (std::string(name) + std::to_string(::getpid()))).string();
}

PublisherState sample() {
  PublisherState s;
  s.pods = {"10.0.0.1:8000", "pod-b"};
  s.blocks[{1, 2}] = {7, 0x1235, 0b110, {1, 2, 3}};
  s.blocks[{3, 4}] = {2, 0x1235, 0b010, {}};
  return s;
}

TEST(VllmPublisherState, AStateReadsBackWholeAndOnlyOnce) {
  const std::string path = scratch_path("vllm-published-");
  ASSERT_TRUE(write_publisher_state(path, sample()));
  const auto read = read_publisher_state(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->pods, sample().pods);
  ASSERT_EQ(read->blocks.size(), 2U);
  const PublishedBlock& b = read->blocks.at({1, 2});
  EXPECT_EQ(b.parent_lo, 7U);
  EXPECT_EQ(b.ns, 0x1235);
  EXPECT_EQ(b.tiers, 0b110);
  EXPECT_EQ(b.tokens, (std::vector<TokenId>{1, 2, 3}));
  EXPECT_TRUE(read->blocks.at({3, 4}).tokens.empty());
  EXPECT_FALSE(std::filesystem::exists(path)) << "a state is good for one start";
  EXPECT_FALSE(read_publisher_state(path).has_value());
}

TEST(VllmPublisherState, AFileThisVersionDidNotWriteIsIgnored) {
  const std::string path = scratch_path("vllm-published-bad-");
  ASSERT_TRUE(write_publisher_state(path, sample()));
  std::string whole;
  {
    std::ifstream in(path, std::ios::binary);
    whole.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto write_raw = [&](const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };
  // Cut anywhere: the closing magic is missing or lands inside the data.
  for (size_t cut : {size_t{0}, size_t{5}, size_t{12}, whole.size() / 2, whole.size() - 1}) {
    write_raw(whole.substr(0, cut));
    EXPECT_FALSE(read_publisher_state(path).has_value()) << "cut at " << cut;
    EXPECT_FALSE(std::filesystem::exists(path)) << "an unreadable state is not kept either";
  }
  // A block count larger than the file holds.
  std::string wrong = whole;
  const size_t count_at = 8 + 4 + (4 + 13) + (4 + 5);  // magic, pods, then the block count
  wrong[count_at] = 3;
  write_raw(wrong);
  EXPECT_FALSE(read_publisher_state(path).has_value());
  // Another file altogether.
  write_raw("not a kvtier state file at all, just text");
  EXPECT_FALSE(read_publisher_state(path).has_value());
}

TEST(VllmPublisherState, AnUnwritablePathIsReported) {
  EXPECT_FALSE(write_publisher_state("/proc/kvtier-no-such-dir/vllm-published", sample()));
}

}  // namespace
}  // namespace kvtier::publisher
