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

TEST(UcxWorker, ReadsUcxTlsAsUcxDoes) {
  EXPECT_TRUE(ucx_tls_allows(nullptr, {"tcp"})) << "unset: every transport";
  EXPECT_TRUE(ucx_tls_allows("", {"tcp"}));
  EXPECT_TRUE(ucx_tls_allows("all", {"tcp"}));
  EXPECT_TRUE(ucx_tls_allows("sm,tcp,self", {"tcp"}));
  EXPECT_FALSE(ucx_tls_allows("sm,self", {"tcp", "rc", "ud"}));
  EXPECT_TRUE(ucx_tls_allows("rc_x,sm", {"tcp", "rc"})) << "a name covers its variants";
  EXPECT_FALSE(ucx_tls_allows("rcache,sm", {"rc"})) << "but not another name it begins";
  EXPECT_FALSE(ucx_tls_allows("^tcp", {"tcp"}));
  EXPECT_TRUE(ucx_tls_allows("^tcp,sm", {"rc"}));
  EXPECT_FALSE(ucx_tls_allows("^all", {"tcp"}));
}

}  // namespace
}  // namespace kvtier::transport
