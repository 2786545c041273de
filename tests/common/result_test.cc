#include "kvtier/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace kvtier {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Status::invalid_argument("not positive: " + std::to_string(v));
  return v;
}

Result<int> doubled(int v) {
  KVTIER_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

TEST(ResultTest, HoldsAValue) {
  const Result<int> r = parse_positive(4);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 4);
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(r.value_or(9), 4);
}

TEST(ResultTest, HoldsAnError) {
  const Result<int> r = parse_positive(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.value_or(9), 9);
}

TEST(ResultTest, AnOkStatusWithoutAValueBecomesAnInternalError) {
  const Result<int> r = Status();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

TEST(ResultTest, AssignOrReturnPropagates) {
  EXPECT_EQ(*doubled(21), 42);
  EXPECT_EQ(doubled(0).status().code(), StatusCode::kInvalidArgument);
}

TEST(ResultTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultDeathTest, ValueOfAnErrorAborts) {
  const Result<int> r = Status::not_found("x");
  EXPECT_DEATH((void)r.value(), "");
}

}  // namespace
}  // namespace kvtier
