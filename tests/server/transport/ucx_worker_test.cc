// UcxWorker's reading of UCX's TCP segment sizes: what both ends of a remote read compare before
// they connect (a reader that receives smaller segments than the node sends would be aborted by UCX).
#include "server/transport/ucx_worker.h"

#include <gtest/gtest.h>

namespace kvtier::transport {
namespace {

TEST(UcxWorker, ParsesUcxSizes) {
  EXPECT_EQ(parse_ucx_bytes("65536"), 65536u);
  EXPECT_EQ(parse_ucx_bytes("8K"), 8192u);
  EXPECT_EQ(parse_ucx_bytes("256k"), 262144u);
  EXPECT_EQ(parse_ucx_bytes("1m"), 1048576u);
  EXPECT_EQ(parse_ucx_bytes("2GB"), 2ULL << 30);
  EXPECT_EQ(parse_ucx_bytes("64kb"), 65536u);
  EXPECT_FALSE(parse_ucx_bytes("inf"));
  EXPECT_FALSE(parse_ucx_bytes(""));
  EXPECT_FALSE(parse_ucx_bytes("12x"));
  EXPECT_FALSE(parse_ucx_bytes("1kk"));
  EXPECT_FALSE(parse_ucx_bytes("99999999999999999999"));
}

}  // namespace
}  // namespace kvtier::transport
