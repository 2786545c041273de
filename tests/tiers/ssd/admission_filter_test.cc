// The SSD admission filter on its own, on a clock the test moves (the node's mover drives it in
// tier_mover_test.cc and node_tiers_test.cc).
#include "tiers/ssd/admission_filter.h"

#include <gtest/gtest.h>

namespace kvtier::ssd {
namespace {

using Clock = AdmissionFilter::Clock;
using std::chrono::milliseconds;

TEST(AdmissionFilter, BlocksUsedFewerTimesThanTheThresholdStayOffSsd) {
  AdmissionFilter f({/*min_accesses=*/2, /*write_budget_bytes_per_s=*/0});
  EXPECT_FALSE(f.admit(0, 4096));
  EXPECT_FALSE(f.admit(1, 4096));
  EXPECT_TRUE(f.admit(2, 4096));
  EXPECT_TRUE(f.admit(255, 4096));
  EXPECT_EQ(f.stats().rejected_cold, 2u);
  EXPECT_EQ(f.stats().admitted, 2u);
  EXPECT_EQ(f.stats().admitted_bytes, 8192u);
  EXPECT_EQ(f.stats().rejected_budget, 0u) << "no budget set: only the threshold refuses";
}

TEST(AdmissionFilter, TheWriteBudgetAllowsOneSecondsBurstThenItsRate) {
  AdmissionFilter f({1, /*write_budget_bytes_per_s=*/10000});
  const Clock::time_point t0{};
  // A full second's worth to start with: two 4 KB blocks fit, the third does not.
  EXPECT_TRUE(f.admit(1, 4000, t0));
  EXPECT_TRUE(f.admit(1, 4000, t0));
  EXPECT_FALSE(f.admit(1, 4000, t0));
  EXPECT_EQ(f.stats().rejected_budget, 1u);
  // 200 ms refill 2000 bytes: with the 2000 left, one more block fits.
  EXPECT_TRUE(f.admit(1, 4000, t0 + milliseconds(200)));
  EXPECT_FALSE(f.admit(1, 1, t0 + milliseconds(200)));
  // A long idle spell refills to one second's worth, never more.
  EXPECT_TRUE(f.admit(1, 10000, t0 + milliseconds(60000)));
  EXPECT_FALSE(f.admit(1, 1000, t0 + milliseconds(60000)));
  // A cold block is refused before it costs any budget.
  AdmissionFilter g({2, 10000});
  EXPECT_FALSE(g.admit(1, 10000, t0));
  EXPECT_TRUE(g.admit(2, 10000, t0));
  EXPECT_EQ(g.stats().rejected_cold, 1u);
  EXPECT_EQ(g.stats().rejected_budget, 0u);
}

}  // namespace
}  // namespace kvtier::ssd
