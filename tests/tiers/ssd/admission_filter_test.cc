// The SSD admission filter on its own, on a clock the test moves. Which blocks have been used
// enough is the index's judgement (Placement.* in tests/index/placement_test.cc); the node's mover
// drives both in tier_mover_test.cc and node_tiers_test.cc.
#include "tiers/ssd/admission_filter.h"

#include <gtest/gtest.h>

namespace kvtier::ssd {
namespace {

using Clock = AdmissionFilter::Clock;
using std::chrono::milliseconds;

TEST(AdmissionFilter, WithoutABudgetEveryWriteIsAdmittedAndCounted) {
  AdmissionFilter f({/*min_accesses=*/2, /*ancestor_hops=*/1, /*write_budget_bytes_per_s=*/0});
  EXPECT_TRUE(f.admit(4096));
  EXPECT_TRUE(f.admit(1 << 20));
  f.reject_cold();
  EXPECT_EQ(f.stats().admitted, 2u);
  EXPECT_EQ(f.stats().admitted_bytes, 4096u + (1 << 20));
  EXPECT_EQ(f.stats().rejected_cold, 1u);
  EXPECT_EQ(f.stats().rejected_budget, 0u) << "no budget set: nothing is refused for it";
}

TEST(AdmissionFilter, TheWriteBudgetAllowsOneSecondsBurstThenItsRate) {
  AdmissionFilter f({1, 0, /*write_budget_bytes_per_s=*/10000});
  const Clock::time_point t0{};
  // A full second's worth to start with: two 4 KB blocks fit, the third does not.
  EXPECT_TRUE(f.admit(4000, t0));
  EXPECT_TRUE(f.admit(4000, t0));
  EXPECT_FALSE(f.admit(4000, t0));
  EXPECT_EQ(f.stats().rejected_budget, 1u);
  // 200 ms refill 2000 bytes: with the 2000 left, one more block fits.
  EXPECT_TRUE(f.admit(4000, t0 + milliseconds(200)));
  EXPECT_FALSE(f.admit(1, t0 + milliseconds(200)));
  // A long idle spell refills to one second's worth, never more.
  EXPECT_TRUE(f.admit(10000, t0 + milliseconds(60000)));
  EXPECT_FALSE(f.admit(1000, t0 + milliseconds(60000)));
  EXPECT_EQ(f.stats().admitted, 4u);
  EXPECT_EQ(f.stats().admitted_bytes, 22000u);
  EXPECT_EQ(f.stats().rejected_budget, 3u);
}

}  // namespace
}  // namespace kvtier::ssd
