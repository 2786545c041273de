// Writers of the token ring killed with SIGKILL at any point: they hold nothing, so other
// writers and the reader go on; the slot a killed writer left half-written reads as pending or
// lost, never as a wrong record.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "events/token_ring.h"

namespace kvtier {
namespace {

std::vector<TokenId> tokens_for(uint64_t id) {
  std::vector<TokenId> t(48);
  for (size_t j = 0; j < t.size(); ++j) t[j] = static_cast<TokenId>(id * 31 + j);
  return t;
}

TEST(TokenRingMultiprocess, WritersKilledAtAnyPointLeaveTheRingUsable) {
  const std::string name = "kvtier-tokring-mp-" + std::to_string(::getpid());
  (void)TokenRing::destroy(name);
  auto ring = TokenRing::open_or_create(name, {4096, 64}).value();
  std::mt19937 rng(7);
  for (int round = 0; round < 6; ++round) {
    std::vector<pid_t> children;
    for (int c = 0; c < 3; ++c) {
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        auto mine = TokenRing::attach(name);
        if (!mine.ok()) ::_exit(2);
        for (uint64_t i = 0;; ++i) {
          const uint64_t id = (static_cast<uint64_t>(::getpid()) << 32) | i;
          (*mine)->record(BlockKey{id, id ^ 0x5555}, tokens_for(id));
        }
      }
      children.push_back(pid);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 20000));
    for (pid_t pid : children) ::kill(pid, SIGKILL);
    for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
  }
  // Every slot reads as a correct record, or as pending/lost; none is wrong.
  const uint64_t head = ring->head();
  ASSERT_GT(head, 0U);
  TokenRecord r;
  uint64_t records = 0;
  for (uint64_t t = head > 4096 ? head - 4096 : 0; t < head; ++t) {
    if (ring->read(t, &r) != TokenRing::Read::kRecord) continue;
    ASSERT_EQ(r.key.lo, r.key.hi ^ 0x5555);
    ASSERT_EQ(r.tokens, tokens_for(r.key.hi));
    ++records;
  }
  EXPECT_GT(records, 0U);
  // And a new writer's record reads back.
  ASSERT_TRUE(ring->record(BlockKey{1, 2}, tokens_for(3)));
  ASSERT_EQ(ring->read(head, &r), TokenRing::Read::kRecord);
  EXPECT_EQ(r.tokens, tokens_for(3));
  (void)TokenRing::destroy(name);
}

}  // namespace
}  // namespace kvtier
