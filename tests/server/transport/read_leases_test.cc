// ReadLeases without a network: what a lease pins, and each way it ends (released, with its
// session, when its time is up, refused over the cap), with several threads granting, releasing
// and ending sessions while the reaper expires leases (label concurrency: it runs under TSan).
#include "server/transport/read_leases.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "client/client_test_support.h"
#include "kvtier/prefix_chain.h"

namespace kvtier::transport {
namespace {

using testing_support::ScopedNode;

struct Node {
  ScopedNode scoped;
  std::unique_ptr<Client> client = scoped.open();
  NamespaceHandle ns = client->register_namespace(testing_support::small_model()).value();
  std::vector<BlockKey> keys;

  explicit Node(size_t blocks) {
    std::vector<TokenId> tokens(blocks * 16);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<TokenId>(i * 7 + 1);
    keys = client->keys(ns, tokens);
    std::vector<uint8_t> bytes(ns.ns.bytes_per_block(), 0x5a);
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_TRUE(client->put(ns, keys[i], i == 0 ? ns.ns.root() : keys[i - 1], bytes).ok());
    }
  }
  std::vector<HostBlock> pin(size_t from, size_t n) {
    auto held = client->acquire(std::span(keys).subspan(0, from + n)).value();
    return {std::make_move_iterator(held.begin() + static_cast<std::ptrdiff_t>(from)),
            std::make_move_iterator(held.end())};
  }
  uint32_t pins(size_t i) const { return client->index().lookup(keys[i])->pins; }
};

std::string counters(const ReadLeases& leases) {
  struct Text final : CounterVisitor {
    std::string out;
    void counter(std::string_view name, std::string_view, uint64_t v) override {
      out += std::string(name) + "=" + std::to_string(v) + "\n";
    }
    void gauge(std::string_view name, std::string_view, double v) override {
      out += std::string(name) + "=" + std::to_string(static_cast<int64_t>(v)) + "\n";
    }
    void counters(std::string_view name, std::string_view, std::span<const LabelledCount> s) override {
      for (const auto& c : s)
        out += std::string(name) + "{" + std::string(c.labels) + "}=" + std::to_string(c.value) + "\n";
    }
    void gauges(std::string_view, std::string_view, std::span<const LabelledLevel>) override {}
  } text;
  leases.visit_counters(text);
  return text.out;
}

TEST(ReadLeases, ALeasePinsItsBlocksUntilReleased) {
  Node n(4);
  ReadLeases leases(16);
  const uint64_t session = leases.new_session();
  const uint64_t id = leases.grant(session, n.pin(0, 4), std::chrono::seconds(60)).value();
  EXPECT_EQ(n.pins(0), 1u);
  EXPECT_EQ(n.pins(3), 1u);
  EXPECT_EQ(leases.open(), 1u);
  EXPECT_FALSE(leases.release(session + 1, id)) << "another session's release does nothing";
  EXPECT_EQ(n.pins(0), 1u);
  EXPECT_TRUE(leases.release(session, id));
  EXPECT_FALSE(leases.release(session, id)) << "twice: already ended";
  EXPECT_EQ(n.pins(0), 0u);
  EXPECT_EQ(leases.open(), 0u);
  const std::string c = counters(leases);
  EXPECT_NE(c.find("read_leases_ended_total{end=\"released\"}=1"), std::string::npos) << c;
  EXPECT_NE(c.find("read_leases_granted_total=1"), std::string::npos) << c;
}

TEST(ReadLeases, EndingASessionEndsEveryLeaseOfItAndNoOther) {
  Node n(6);
  ReadLeases leases(16);
  const uint64_t a = leases.new_session(), b = leases.new_session();
  ASSERT_TRUE(leases.grant(a, n.pin(0, 2), std::chrono::seconds(60)).ok());
  ASSERT_TRUE(leases.grant(a, n.pin(2, 2), std::chrono::seconds(60)).ok());
  ASSERT_TRUE(leases.grant(b, n.pin(4, 2), std::chrono::seconds(60)).ok());
  EXPECT_EQ(leases.end_session(a), 2u);
  EXPECT_EQ(n.pins(0), 0u);
  EXPECT_EQ(n.pins(3), 0u);
  EXPECT_EQ(n.pins(4), 1u) << "the other session's lease stands";
  EXPECT_EQ(leases.open(), 1u);
  EXPECT_NE(counters(leases).find("read_leased_blocks=2"), std::string::npos);
}

TEST(ReadLeases, TheReaperEndsALeaseWhenItsTimeIsUp) {
  Node n(2);
  ReadLeases leases(16);
  const uint64_t session = leases.new_session();
  ASSERT_TRUE(leases.grant(session, n.pin(0, 2), std::chrono::milliseconds(30)).ok());
  ASSERT_TRUE(leases.grant(session, n.pin(0, 1), std::chrono::seconds(60)).ok());
  EXPECT_EQ(n.pins(1), 1u);  // pins count processes, not leases: block 0 reads 1 too
  // The reaper takes the lease out of the table, then lets its pins go (outside the lock): wait for both.
  for (int i = 0; i < 500 && (leases.open() > 1 || n.pins(1) > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(leases.open(), 1u) << "the 30 ms lease expired, the 60 s one did not";
  EXPECT_EQ(n.pins(0), 1u);
  EXPECT_EQ(n.pins(1), 0u);
  EXPECT_EQ(leases.expire(ReadLeases::Clock::now() + std::chrono::seconds(61)), 1u);
  EXPECT_EQ(n.pins(0), 0u);
  EXPECT_NE(counters(leases).find("read_leases_ended_total{end=\"expired\"}=2"), std::string::npos);
}

TEST(ReadLeases, OverTheCapALeaseIsRefusedAndItsBlocksUnpinned) {
  Node n(2);
  ReadLeases leases(1);
  const uint64_t session = leases.new_session();
  ASSERT_TRUE(leases.grant(session, n.pin(0, 1), std::chrono::seconds(60)).ok());
  auto refused = leases.grant(session, n.pin(1, 1), std::chrono::seconds(60));
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(n.pins(1), 0u) << "a refused lease holds nothing";
  EXPECT_NE(counters(leases).find("read_leases_ended_total{end=\"refused\"}=1"), std::string::npos);
}

TEST(ReadLeases, DestroyedItEndsEveryLease) {
  Node n(3);
  {
    ReadLeases leases(16);
    ASSERT_TRUE(leases.grant(leases.new_session(), n.pin(0, 3), std::chrono::seconds(60)).ok());
    EXPECT_EQ(n.pins(2), 1u);
  }
  EXPECT_EQ(n.pins(0), 0u);
  EXPECT_EQ(n.pins(2), 0u);
}

TEST(ReadLeases, ThreadsGrantReleaseAndEndSessionsWhileTheReaperExpires) {
  Node n(8);
  ReadLeases leases(64);
  std::atomic<uint64_t> granted{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        const uint64_t session = leases.new_session();
        std::vector<uint64_t> ids;
        for (int i = 0; i < 3; ++i) {
          const auto ttl = std::chrono::milliseconds((round + i + t) % 3 == 0 ? 1 : 60000);
          auto id = leases.grant(session, n.pin(static_cast<size_t>(i + t) % 6, 2), ttl);
          if (id.ok()) {
            ids.push_back(*id);
            granted.fetch_add(1);
          }
        }
        if (round % 2 == 0 && !ids.empty()) (void)leases.release(session, ids.front());
        (void)leases.end_session(session);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(leases.open(), 0u);
  for (size_t i = 0; i < n.keys.size(); ++i) EXPECT_EQ(n.pins(i), 0u) << "block " << i << " left pinned";
  EXPECT_GT(granted.load(), 0u);
}

}  // namespace
}  // namespace kvtier::transport
