// The token ring clients fill for the vLLM-format publisher: records read back whole, a lapped
// or torn record is reported lost (never returned wrong), geometry and format checks, engines'
// ids, and many writers racing one reader.
#include "events/token_ring.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace kvtier {
namespace {

struct TestRing {
  std::string name = "kvtier-tokring-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  static inline int counter = 0;
  std::unique_ptr<TokenRing> ring;
  explicit TestRing(TokenRing::Geometry g = {1024, 32}) {
    (void)TokenRing::destroy(name);
    ring = TokenRing::open_or_create(name, g).value();
  }
  ~TestRing() { (void)TokenRing::destroy(name); }
};

// A record whose tokens follow from its key, so a reader can tell a torn one.
std::vector<TokenId> tokens_for(uint64_t i, size_t n) {
  std::vector<TokenId> t(n);
  for (size_t j = 0; j < n; ++j) t[j] = static_cast<TokenId>(i * 1000003 + j * 7919);
  return t;
}
BlockKey key_for(uint64_t i) { return BlockKey{i * 0x9E3779B97F4A7C15ULL, i}; }

TEST(TokenRing, RecordsReadBackInTicketOrder) {
  TestRing t;
  EXPECT_EQ(t.ring->head(), 0U);
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(t.ring->record(key_for(i), tokens_for(i, 1 + i % 32)));
  ASSERT_EQ(t.ring->head(), 10U);
  TokenRecord r;
  for (uint64_t i = 0; i < 10; ++i) {
    ASSERT_EQ(t.ring->read(i, &r), TokenRing::Read::kRecord);
    EXPECT_EQ(r.key, key_for(i));
    EXPECT_EQ(r.tokens, tokens_for(i, 1 + i % 32));
  }
  EXPECT_EQ(t.ring->read(10, &r), TokenRing::Read::kPending);  // not handed out yet
  // An empty token list is a record too.
  ASSERT_TRUE(t.ring->record(key_for(99), {}));
  ASSERT_EQ(t.ring->read(10, &r), TokenRing::Read::kRecord);
  EXPECT_TRUE(r.tokens.empty());
}

TEST(TokenRing, RefusesMoreTokensThanASlotHolds) {
  TestRing t({1024, 16});
  EXPECT_FALSE(t.ring->record(key_for(1), tokens_for(1, 17)));
  EXPECT_EQ(t.ring->head(), 0U);  // nothing taken
  EXPECT_TRUE(t.ring->record(key_for(1), tokens_for(1, 16)));
}

TEST(TokenRing, LappedRecordsAreLostNotWrong) {
  TestRing t({1024, 8});
  for (uint64_t i = 0; i < 1024 + 10; ++i) ASSERT_TRUE(t.ring->record(key_for(i), tokens_for(i, 8)));
  TokenRecord r;
  for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ(t.ring->read(i, &r), TokenRing::Read::kLost) << i;
  for (uint64_t i = 10; i < 1034; ++i) {
    ASSERT_EQ(t.ring->read(i, &r), TokenRing::Read::kRecord) << i;
    EXPECT_EQ(r.key, key_for(i));
  }
}

TEST(TokenRing, GeometryIsCheckedAndKeptAcrossOpens) {
  TestRing t({2048, 64});
  EXPECT_EQ(TokenRing::open_or_create(t.name + "x", {1000, 16}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenRing::open_or_create(t.name + "x", {1024, 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenRing::attach(t.name + "-absent").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(t.ring->record(key_for(5), tokens_for(5, 64)));
  // A daemon restart with the same geometry keeps the ring (and what clients mapped).
  auto again = TokenRing::open_or_create(t.name, {2048, 64}).value();
  EXPECT_EQ(again->head(), 1U);
  auto client = TokenRing::attach(t.name).value();
  EXPECT_EQ(client->geometry().records, 2048U);
  EXPECT_EQ(client->geometry().max_tokens, 64U);
  // Another geometry starts a new ring.
  auto bigger = TokenRing::open_or_create(t.name, {4096, 64}).value();
  EXPECT_EQ(bigger->head(), 0U);
  EXPECT_EQ(TokenRing::attach(t.name).value()->geometry().records, 4096U);
}

TEST(TokenRing, EnginesNameThemselvesInTheirProcessSlotsEntry) {
  TestRing t;
  EXPECT_TRUE(t.ring->engines().empty());
  EXPECT_TRUE(t.ring->register_engine(3 | (7 << 6), "10.0.0.3"));
  EXPECT_TRUE(t.ring->register_engine(5 | (1 << 6), std::string(TokenRing::kMaxEngineIdBytes, 'x')));
  EXPECT_FALSE(t.ring->register_engine(6 | (1 << 6), "pod@model"));  // '@' separates topic parts
  EXPECT_FALSE(t.ring->register_engine(6 | (1 << 6), std::string(TokenRing::kMaxEngineIdBytes + 1, 'x')));
  EXPECT_FALSE(t.ring->register_engine(6 | (1 << 6), ""));
  auto engines = t.ring->engines();
  ASSERT_EQ(engines.size(), 2U);
  EXPECT_EQ(engines[0], std::make_pair(uint32_t{3 | (7 << 6)}, std::string("10.0.0.3")));
  EXPECT_EQ(engines[1].second.size(), TokenRing::kMaxEngineIdBytes);
  // A later process in the same slot replaces the entry.
  EXPECT_TRUE(t.ring->register_engine(3 | (8 << 6), "10.0.0.4"));
  EXPECT_EQ(t.ring->engines()[0], std::make_pair(uint32_t{3 | (8 << 6)}, std::string("10.0.0.4")));
  // Entries are in the segment: another process's mapping sees them.
  EXPECT_EQ(TokenRing::attach(t.name).value()->engines().size(), 2U);
}

TEST(TokenRing, ManyWritersAndAReaderNeverSeeATornRecord) {
  TestRing t({1024, 64});  // small, so writers lap the reader and one another
  constexpr int kWriters = 4;
  constexpr uint64_t kPerWriter = 20000;
  std::atomic<int> done{0};
  std::atomic<uint64_t> written{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (uint64_t i = 0; i < kPerWriter; ++i) {
        const uint64_t id = static_cast<uint64_t>(w) * kPerWriter + i;
        // False only when the ring lapped this writer mid-record.
        if (t.ring->record(key_for(id), tokens_for(id, 1 + id % 64))) written.fetch_add(1);
      }
      done.fetch_add(1);
    });
  }
  uint64_t cursor = 0, records = 0;
  TokenRecord r;
  auto progress = std::chrono::steady_clock::now();
  bool stuck = false;
  while (done.load() < kWriters || cursor < t.ring->head()) {
    if (cursor >= t.ring->head()) continue;
    const TokenRing::Read got = t.ring->read(cursor, &r);
    if (got == TokenRing::Read::kPending) {
      // A writer between its ticket and its last word: read again. Once every writer is done no
      // ticket may stay pending, since a slot's seq never goes back.
      if (done.load() == kWriters && std::chrono::steady_clock::now() - progress > std::chrono::seconds(5)) {
        stuck = true;
        break;
      }
      continue;
    }
    if (got == TokenRing::Read::kRecord) {
      const uint64_t id = r.key.lo;
      ASSERT_EQ(r.key, key_for(id));
      ASSERT_EQ(r.tokens, tokens_for(id, 1 + id % 64));
      ++records;
    }
    ++cursor;
    progress = std::chrono::steady_clock::now();
  }
  for (auto& th : writers) th.join();
  EXPECT_FALSE(stuck) << "ticket " << cursor << " stayed pending after every writer finished";
  EXPECT_EQ(t.ring->head(), kWriters * kPerWriter);
  EXPECT_GT(written.load(), 0U);
  EXPECT_GT(records, 0U);
}

}  // namespace
}  // namespace kvtier
