// AccessPolicy without a network: calls' metadata injected into real ServerContexts (gRPC's own
// test spouse), token files on disk. Roles by token and by default; refusals and their codes and
// counters; bad token files at open; a token rotated while threads check calls (for TSan: the
// token list is swapped under readers).
#include <grpcpp/server_context.h>
#include <grpcpp/test/server_context_test_spouse.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include <unistd.h>
#include "server/security/access_policy.h"

namespace kvtier::security {
namespace {

using config::Role;

// A directory of the test's own, removed afterwards.
class ScratchDir {
 public:
  ScratchDir()
      : path_(std::filesystem::temp_directory_path() /
              ("access-policy-" + std::to_string(::getpid()) + "-" + std::to_string(next_++))) {
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline std::atomic<int> next_{0};
  std::filesystem::path path_;
};

std::string write_file(const ScratchDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir / name;
  std::ofstream(path + ".new") << text;
  std::filesystem::rename(path + ".new", path);  // as Kubernetes swaps a Secret: readers see old or new
  return path;
}

grpc::StatusCode check(const AccessPolicy& policy, Role role, const std::string& authorization = "") {
  grpc::ServerContext context;
  grpc::testing::ServerContextTestSpouse spouse(&context);
  if (!authorization.empty()) spouse.AddClientMetadata("authorization", authorization);
  return policy.check(context, role, "Test").error_code();
}

class Counts final : public CounterVisitor {
 public:
  std::map<std::string, uint64_t> values;
  void counter(std::string_view name, std::string_view, uint64_t v) override { values[std::string(name)] = v; }
  void gauge(std::string_view, std::string_view, double) override {}
  void counters(std::string_view name, std::string_view, std::span<const LabelledCount> samples) override {
    for (const auto& s : samples) values[std::string(name) + "{" + std::string(s.labels) + "}"] = s.value;
  }
  void gauges(std::string_view, std::string_view, std::span<const LabelledLevel>) override {}
};

TEST(AccessPolicy, WithoutGrantsEveryCallerHoldsEveryRole) {
  const auto policy = AccessPolicy::open({}).value();
  EXPECT_TRUE(policy->open_to_everyone());
  for (Role r : {Role::kRead, Role::kWrite, Role::kAdmin}) EXPECT_EQ(check(*policy, r), grpc::StatusCode::OK);
  // Even a token nobody granted: there is nothing to authenticate against.
  EXPECT_EQ(check(*policy, Role::kAdmin, "Bearer anything"), grpc::StatusCode::OK);
}

TEST(AccessPolicy, TokensAddToTheDefaultRolesAndStrangersAreRefused) {
  ScratchDir dir;
  config::ServerSecurity s;
  s.default_roles = static_cast<config::RoleSet>(Role::kRead);
  s.grants.push_back({"", write_file(dir, "writer", "w-token\n"), static_cast<config::RoleSet>(Role::kWrite)});
  s.grants.push_back({"", write_file(dir, "admin", "  a-token  "), static_cast<config::RoleSet>(Role::kAdmin)});
  const auto policy = AccessPolicy::open(s).value();
  EXPECT_FALSE(policy->open_to_everyone());
  EXPECT_EQ(policy->grants(), 2u);

  EXPECT_EQ(check(*policy, Role::kRead), grpc::StatusCode::OK);
  EXPECT_EQ(check(*policy, Role::kWrite), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(check(*policy, Role::kWrite, "Bearer w-token"), grpc::StatusCode::OK);
  EXPECT_EQ(check(*policy, Role::kAdmin, "Bearer w-token"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(check(*policy, Role::kAdmin, "Bearer a-token"), grpc::StatusCode::OK);
  EXPECT_EQ(check(*policy, Role::kWrite, "Bearer w-toke"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(check(*policy, Role::kWrite, "Bearer w-token2"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(check(*policy, Role::kWrite, "Basic dzp0b2tlbg=="), grpc::StatusCode::UNAUTHENTICATED);

  grpc::ServerContext context;
  const grpc::Status denied = policy->check(context, Role::kWrite, "PutBlocks");
  EXPECT_EQ(denied.error_message(), "PutBlocks needs the write role; an anonymous caller holds: read");

  Counts counts;
  policy->visit_counters(counts);
  EXPECT_EQ((counts.values["access_refused_total{role=\"write\",code=\"permission_denied\"}"]), 2u);
  EXPECT_EQ((counts.values["access_refused_total{role=\"write\",code=\"unauthenticated\"}"]), 3u);
  EXPECT_EQ((counts.values["access_refused_total{role=\"admin\",code=\"permission_denied\"}"]), 1u);
  EXPECT_EQ(counts.values["access_token_reloads_total"], 0u);
}

TEST(AccessPolicy, UnusableTokenFilesAreErrorsAtOpen) {
  ScratchDir dir;
  const auto open_with = [&](const std::string& path) {
    config::ServerSecurity s;
    s.grants.push_back({"", path, static_cast<config::RoleSet>(Role::kRead)});
    return AccessPolicy::open(s);
  };
  EXPECT_EQ(open_with(dir / "absent").status().code(), StatusCode::kNotFound);
  const auto empty = open_with(write_file(dir, "empty", " \n"));
  EXPECT_NE(empty.status().message().find("is empty"), std::string::npos) << empty.status();
  const auto spaced = open_with(write_file(dir, "spaced", "two words"));
  EXPECT_NE(spaced.status().message().find("cannot carry"), std::string::npos) << spaced.status();
}

TEST(AccessPolicy, ARotatedTokenReplacesTheOldOneWhileCallsAreChecked) {
  ScratchDir dir;
  config::ServerSecurity s;
  const std::string file = write_file(dir, "token", "old-token");
  s.grants.push_back({"", file, static_cast<config::RoleSet>(Role::kRead)});
  const auto policy = AccessPolicy::open(s).value();
  std::atomic<bool> stop{false};
  std::atomic<int> odd{0};
  std::vector<std::thread> callers;
  for (const char* token : {"Bearer old-token", "Bearer new-token"}) {
    callers.emplace_back([&, token] {
      while (!stop.load()) {
        const grpc::StatusCode c = check(*policy, Role::kRead, token);
        if (c != grpc::StatusCode::OK && c != grpc::StatusCode::UNAUTHENTICATED) odd.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(check(*policy, Role::kRead, "Bearer old-token"), grpc::StatusCode::OK);
  EXPECT_EQ(check(*policy, Role::kRead, "Bearer new-token"), grpc::StatusCode::UNAUTHENTICATED);
  write_file(dir, "token", "new-token\n");
  policy->refresh_tokens();  // the watcher would within a second; the test does not wait for it
  EXPECT_EQ(check(*policy, Role::kRead, "Bearer new-token"), grpc::StatusCode::OK);
  EXPECT_EQ(check(*policy, Role::kRead, "Bearer old-token"), grpc::StatusCode::UNAUTHENTICATED);
  // An emptied file (a Secret mid-update) keeps the token read before.
  write_file(dir, "token", "");
  policy->refresh_tokens();
  EXPECT_EQ(check(*policy, Role::kRead, "Bearer new-token"), grpc::StatusCode::OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (auto& t : callers) t.join();
  EXPECT_EQ(odd.load(), 0);
  Counts counts;
  policy->visit_counters(counts);
  EXPECT_EQ(counts.values["access_token_reloads_total"], 1u);
  EXPECT_GE(counts.values["access_token_reload_errors_total"], 1u);
}

}  // namespace
}  // namespace kvtier::security
