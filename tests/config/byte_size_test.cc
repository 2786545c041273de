#include "config/byte_size.h"

#include <gtest/gtest.h>

namespace kvtier::config {
namespace {

TEST(ByteSizeTest, ParsesBinaryDecimalAndBareSizes) {
  EXPECT_EQ(*parse_byte_size("65536"), 65536u);
  EXPECT_EQ(*parse_byte_size("12B"), 12u);
  EXPECT_EQ(*parse_byte_size("4KiB"), 4096u);
  EXPECT_EQ(*parse_byte_size("4K"), 4096u);
  EXPECT_EQ(*parse_byte_size("4KB"), 4000u);
  EXPECT_EQ(*parse_byte_size("512MiB"), 512u << 20);
  EXPECT_EQ(*parse_byte_size(" 2 GiB "), 2ULL << 30);
  EXPECT_EQ(*parse_byte_size("1.5GiB"), 3ULL << 29);
  EXPECT_EQ(*parse_byte_size("3TB"), 3'000'000'000'000ULL);
}

TEST(ByteSizeTest, RejectsNonsenseWithTheInputInTheMessage) {
  for (const char* bad : {"", "GiB", "-1GiB", "12 parsecs", "1.5", "1.5B", "99999999999TiB", "1..5GiB"}) {
    const auto r = parse_byte_size(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos) << r.status();
  }
}

TEST(ByteSizeTest, FormatsExactlyAndRoundTrips) {
  EXPECT_EQ(format_byte_size(0), "0B");
  EXPECT_EQ(format_byte_size(1000), "1000B");
  EXPECT_EQ(format_byte_size(1536), "1.5KiB");
  EXPECT_EQ(format_byte_size(1ULL << 30), "1GiB");
  EXPECT_EQ(format_byte_size(3ULL << 29), "1.5GiB");
  EXPECT_EQ(format_byte_size(5ULL << 40), "5TiB");
  for (uint64_t v : {1ULL, 1000ULL, 1536ULL, 524288ULL, 3ULL << 29, 12345678912ULL, 7ULL << 40}) {
    EXPECT_EQ(*parse_byte_size(format_byte_size(v)), v) << v;
  }
}

}  // namespace
}  // namespace kvtier::config
