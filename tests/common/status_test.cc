#include "kvtier/status.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

namespace kvtier {
namespace {

TEST(StatusTest, DefaultIsOkAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.to_string(), "ok");
  EXPECT_TRUE(s.message().empty());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  const Status s = Status::resource_exhausted("host tier full");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.to_string(), "resource_exhausted: host tier full");
}

TEST(StatusTest, EveryCodeHasADistinctName) {
  const StatusCode codes[] = {StatusCode::kOk,
                              StatusCode::kInvalidArgument,
                              StatusCode::kNotFound,
                              StatusCode::kAlreadyExists,
                              StatusCode::kResourceExhausted,
                              StatusCode::kVersionMismatch,
                              StatusCode::kCorruption,
                              StatusCode::kIOError,
                              StatusCode::kUnavailable,
                              StatusCode::kFailedPrecondition,
                              StatusCode::kInternal,
                              StatusCode::kNotAdmitted};
  std::set<std::string_view> names;
  for (StatusCode c : codes) {
    EXPECT_NE(status_code_name(c), "unknown");
    names.insert(status_code_name(c));
  }
  EXPECT_EQ(names.size(), std::size(codes));
}

TEST(StatusTest, WithContextPrefixesErrorsAndLeavesOkAlone) {
  EXPECT_EQ(Status::not_found("no such file").with_context("opening /x").to_string(),
            "not_found: opening /x: no such file");
  EXPECT_TRUE(Status().with_context("anything").ok());
}

Status fails_at(int step, int failing) {
  return step == failing ? Status::io_error("step " + std::to_string(step)) : Status();
}

Status run_steps(int failing, int* completed) {
  for (int i = 0; i < 3; ++i) {
    KVTIER_RETURN_IF_ERROR(fails_at(i, failing));
    ++*completed;
  }
  return {};
}

TEST(StatusTest, ReturnIfErrorStopsAtTheFirstFailure) {
  int completed = 0;
  const Status s = run_steps(1, &completed);
  EXPECT_EQ(completed, 1);
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  completed = 0;
  EXPECT_TRUE(run_steps(-1, &completed).ok());
  EXPECT_EQ(completed, 3);
}

}  // namespace
}  // namespace kvtier
