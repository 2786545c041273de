#include "kvtier/client.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <numeric>
#include <random>

#include "../index/process_harness.h"
#include "client_test_support.h"
#include "index/crash_points.h"
#include "index/index_mechanics.h"
#include "tiers/host/host_arena.h"

namespace kvtier {
namespace {

using testing_support::ReadyPipe;
using testing_support::spawn;
using testing_support::wait_for;

using testing_support::ScopedNode;
using testing_support::small_model;

// Block bytes derived from the key, so any process can check what it reads.
std::vector<uint8_t> content(const BlockKey& k, size_t n) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(k.lo ^ k.hi);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t x = rng();
    std::memcpy(v.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return v;
}

std::vector<TokenId> tokens(size_t n, uint32_t seed) {
  std::vector<TokenId> t(n);
  std::iota(t.begin(), t.end(), seed * 100000);
  return t;
}

Status put_chain(Client& c, const NamespaceHandle& ns, const std::vector<BlockKey>& keys) {
  BlockKey parent = ns.ns.root();
  for (const auto& k : keys) {
    KVTIER_RETURN_IF_ERROR(c.put(ns, k, parent, content(k, ns.ns.bytes_per_block())));
    parent = k;
  }
  return {};
}

TEST(ClientTest, PutThenReadInPlaceAndByCopy) {
  ScopedNode node;
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = client->keys(ns, tokens(16 * 6 + 3, 1));
  ASSERT_EQ(keys.size(), 6u);
  ASSERT_TRUE(put_chain(*client, ns, {keys.begin(), keys.begin() + 4}).ok());
  EXPECT_EQ(client->match(keys).in(Tier::kHost), 4u);

  auto blocks = client->acquire(keys);
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  ASSERT_EQ(blocks->size(), 4u);
  for (const auto& b : *blocks) {
    const auto want = content(b.key(), ns.ns.bytes_per_block());
    ASSERT_EQ(b.size(), want.size());
    EXPECT_EQ(std::memcmp(b.data(), want.data(), want.size()), 0);
  }
  std::vector<uint8_t> out(3 * ns.ns.bytes_per_block());
  EXPECT_EQ(client->get_copy(ns, keys, out).value(), 3u);  // as many as fit
  EXPECT_EQ(std::memcmp(out.data() + 2 * ns.ns.bytes_per_block(), content(keys[2], ns.ns.bytes_per_block()).data(),
                        ns.ns.bytes_per_block()),
            0);
  const ClientStats s = client->stats();
  EXPECT_EQ(s.puts, 4u);
  EXPECT_EQ(s.host_used_bytes, 4u * 65536);
}

TEST(ClientTest, PuttingWhatExistsIsACheapNoOpAndBadInputIsRefused) {
  ScopedNode node;
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = client->keys(ns, tokens(32, 2));
  ASSERT_TRUE(put_chain(*client, ns, keys).ok());
  auto again = client->reserve(ns, keys[0], ns.ns.root());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->exists());
  EXPECT_TRUE(std::move(*again).commit().ok());
  EXPECT_EQ(client->stats().put_exists, 1u);
  EXPECT_EQ(client->stats().host_used_bytes, 2u * 65536);

  std::vector<uint8_t> wrong(100);
  EXPECT_EQ(client->put(ns, keys[1], keys[0], wrong).code(), StatusCode::kInvalidArgument);
  // Token ids, when given, are one block's worth; with no publishing daemon they go nowhere.
  const auto fifteen = tokens(15, 3);
  EXPECT_EQ(client->reserve(ns, keys[1], keys[0], fifteen).status().code(), StatusCode::kInvalidArgument);
  const auto sixteen = tokens(16, 3);
  const auto k3 = client->keys(ns, sixteen);
  EXPECT_TRUE(client->put(ns, k3[0], ns.ns.root(), content(k3[0], ns.ns.bytes_per_block()), sixteen).ok());
  EXPECT_EQ(client->stats().tokens_recorded, 0u);
  NamespaceSpec huge = small_model();
  huge.layout.num_layers = 4096;  // 32 MiB blocks: larger than a slab
  EXPECT_EQ(client->register_namespace(huge).status().code(), StatusCode::kInvalidArgument);
  NamespaceSpec bad = small_model();
  bad.model_id.clear();
  EXPECT_EQ(client->register_namespace(bad).status().code(), StatusCode::kInvalidArgument);
  ClientOptions missing;
  missing.node_name = "no-such-node-" + std::to_string(::getpid());
  EXPECT_EQ(Client::open(missing).status().code(), StatusCode::kNotFound);
  missing.node_name = "bad/name";
  EXPECT_EQ(Client::open(missing).status().code(), StatusCode::kInvalidArgument);
  ClientOptions bad_engine = node.options;
  bad_engine.engine_id = "pod@model";
  EXPECT_EQ(Client::open(bad_engine).status().code(), StatusCode::kInvalidArgument);
}

TEST(ClientTest, AnUncommittedReservationFreesItsSpace) {
  ScopedNode node;
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = client->keys(ns, tokens(16, 3));
  {
    auto r = client->reserve(ns, keys[0], ns.ns.root());
    ASSERT_TRUE(r.ok());
    std::memset(r->data(), 1, r->size());
    EXPECT_EQ(client->stats().host_used_bytes, 65536u);
  }
  EXPECT_EQ(client->stats().host_used_bytes, 0u);
  EXPECT_FALSE(client->match(keys).overall);
}

TEST(ClientTest, TwoWritersOfOneBlockKeepOneCopy) {
  ScopedNode node;
  auto a = node.open();
  auto b = node.open();
  const NamespaceHandle ns = a->register_namespace(small_model()).value();
  const auto keys = a->keys(ns, tokens(16, 4));
  auto ra = a->reserve(ns, keys[0], ns.ns.root()).value();
  auto rb = b->reserve(ns, keys[0], ns.ns.root()).value();  // both reserve before either commits
  std::memcpy(ra.data(), content(keys[0], ra.size()).data(), ra.size());
  std::memcpy(rb.data(), content(keys[0], rb.size()).data(), rb.size());
  ASSERT_TRUE(std::move(ra).commit().ok());
  ASSERT_TRUE(std::move(rb).commit().ok());  // loses quietly: its copy is freed
  EXPECT_EQ(a->stats().host_used_bytes, 65536u);
  EXPECT_EQ(b->stats().put_exists, 1u);
}

// commit() consumes the reservation: it needs an rvalue, and the buffer is gone afterwards, so no
// caller can keep writing into a block other processes already read.
template <typename R>
concept CommitsAnLvalue = requires(R& r) {
  r.commit();
};
template <typename R>
concept CommitsAnRvalue = requires(R& r) {
  std::move(r).commit();
};
static_assert(!CommitsAnLvalue<PutReservation>, "commit() on an lvalue must not compile");
static_assert(CommitsAnRvalue<PutReservation>);

TEST(ClientTest, ACommittedReservationHasNoBufferLeft) {
  ScopedNode node;
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = client->keys(ns, tokens(16, 5));
  auto r = client->reserve(ns, keys[0], ns.ns.root()).value();
  ASSERT_NE(r.data(), nullptr);
  std::memcpy(r.data(), content(keys[0], r.size()).data(), r.size());
  ASSERT_TRUE(std::move(r).commit().ok());
  EXPECT_EQ(r.data(), nullptr);  // NOLINT(bugprone-use-after-move): what is left of it is the test
  EXPECT_EQ(r.size(), 0u);       // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(std::move(r).commit().ok()) << "a second commit is a no-op";  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(client->match(keys).overall, 1u);
}

TEST(ClientTest, ViewsReservationsAndLoadsOutliveTheirClient) {
  // An engine may drop its Client before the objects it handed out (a shutdown in any order):
  // each keeps what it reads mapped (ASan reports any read of an unmapped arena or freed state).
  // Loads are checked the same way against a real daemon (NodeTiers.ClientsLoadSsdBlocks...).
  ScopedNode node;
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = client->keys(ns, tokens(16 * 3, 6));
  ASSERT_TRUE(put_chain(*client, ns, {keys.begin(), keys.begin() + 2}).ok());
  auto views = client->acquire(keys).value();
  ASSERT_EQ(views.size(), 2u);
  auto reservation = client->reserve(ns, keys[2], keys[1]).value();
  ASSERT_FALSE(reservation.exists());
  client.reset();
  for (size_t i = 0; i < views.size(); ++i) {
    const auto want = content(keys[i], views[i].size());
    EXPECT_EQ(std::memcmp(views[i].data(), want.data(), want.size()), 0) << "block " << i;
  }
  std::memcpy(reservation.data(), content(keys[2], reservation.size()).data(), reservation.size());
  EXPECT_TRUE(std::move(reservation).commit().ok());
  views.clear();
  auto again = node.open();
  EXPECT_EQ(again->match(keys).overall, 3u) << "the reservation committed after its Client was gone";
  EXPECT_TRUE(again->index().check_invariants().ok());
}

TEST(ClientTest, AFullArenaEvictsByPolicyAndKeepsWorking) {
  // 2 slabs, 128 blocks of 64 KiB. A clock that moves one tick per chain: the newest chain is the
  // youngest whatever the machine's load (with the monotonic clock, chains put within one tick tie).
  ScopedNode node(/*host_bytes=*/8 << 20, /*capacity=*/4096, /*manual_clock=*/true);
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  for (uint32_t c = 0; c < 40; ++c) {
    ASSERT_TRUE(index::IndexMechanics::set_clock(node.index(), c + 1).ok());
    const auto keys = client->keys(ns, tokens(16 * 8, 100 + c));
    ASSERT_TRUE(put_chain(*client, ns, keys).ok()) << "chain " << c;
  }
  const ClientStats s = client->stats();
  EXPECT_LE(s.host_used_bytes, 8u << 20);
  EXPECT_GT(s.evictions_for_room, 0u);
  // Index and arena agree block for block (the arena rounds each 16 KiB block up to a 64 KiB unit).
  EXPECT_EQ(s.index.tier_entries[tier_index(Tier::kHost)] * 65536, s.host_used_bytes);
  // The newest chain is whole; evicted chains lost tails, never heads.
  EXPECT_EQ(client->match(client->keys(ns, tokens(16 * 8, 139))).overall, 8u);
  EXPECT_TRUE(client->index().check_invariants().ok());
}

// Writers in two processes, readers in two others, checking every byte they read in place.
TEST(ClientMultiProcessTest, BlocksWrittenByOneProcessAreReadZeroCopyByOthers) {
  ScopedNode node;
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  std::vector<pid_t> kids;
  for (int w = 0; w < 2; ++w) {
    kids.push_back(spawn([&, w] {
      auto c = node.open();
      const NamespaceHandle n = c->register_namespace(small_model()).value();
      for (uint32_t i = 0; i < 50; ++i) {
        const Status st = put_chain(*c, n, c->keys(n, tokens(16 * 4, 1000 + (i % 25))));
        if (!st.ok()) {
          std::fprintf(stderr, "writer: %s\n", st.to_string().c_str());
          return false;
        }
      }
      return true;
    }));
  }
  for (int r = 0; r < 2; ++r) {
    kids.push_back(spawn([&] {
      auto c = node.open();
      const NamespaceHandle n = c->register_namespace(small_model()).value();
      size_t seen = 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      for (int round = 0; round < 400 || (seen == 0 && std::chrono::steady_clock::now() < deadline); ++round) {
        const auto keys = c->keys(n, tokens(16 * 4, 1000 + round % 25));
        auto blocks = c->acquire(keys);
        if (!blocks.ok()) return false;
        for (const auto& b : *blocks) {
          const auto want = content(b.key(), b.size());
          if (std::memcmp(b.data(), want.data(), want.size()) != 0) {
            std::fprintf(stderr, "reader saw wrong bytes for %s\n", b.key().to_hex().c_str());
            return false;
          }
          ++seen;
        }
      }
      return seen > 0;
    }));
  }
  for (pid_t p : kids) EXPECT_EQ(wait_for(p), 0);
  EXPECT_EQ(client->stats().index.entries, 100u);  // 25 chains × 4 blocks, each stored once
  EXPECT_EQ(client->stats().host_used_bytes, 100u * 65536);
}

// A writer killed mid-put (reserved, or published but not committed) leaks nothing, and a block
// it published stays readable.
TEST(ClientMultiProcessTest, WritersKilledMidPutLeakNothing) {
  for (const char* where : {"reserved", "client-published"}) {
    ScopedNode node;
    auto client = node.open();
    const NamespaceHandle ns = client->register_namespace(small_model()).value();
    const auto keys = client->keys(ns, tokens(16 * 2, 7));
    ReadyPipe ready;
    const std::string point = where;
    const pid_t child = spawn([&] {
      auto c = node.open();
      const NamespaceHandle n = c->register_namespace(small_model()).value();
      if (!put_chain(*c, n, {keys[0]}).ok()) return false;
      if (point == "reserved") {
        auto r = c->reserve(n, keys[1], keys[0]);
        ready.signal();
        ::pause();
      }
      index::set_crash_hook_for_testing([](const char* p) {
        if (std::string(p) == "client-published") ::raise(SIGKILL);
      });
      ready.signal();
      (void)put_chain(*c, n, {keys[1]});
      return true;
    });
    ASSERT_TRUE(ready.wait());
    if (point == "reserved") ::kill(child, SIGKILL);
    ASSERT_EQ(wait_for(child), 128 + SIGKILL) << where;
    ASSERT_TRUE(client->maintain().ok());
    const ClientStats s = client->stats();
    if (point == "reserved") {
      EXPECT_EQ(s.host_used_bytes, 65536u) << where;  // the reservation was freed
      EXPECT_EQ(client->match(keys).overall, 1u);
    } else {
      EXPECT_EQ(s.host_used_bytes, 2u * 65536) << where;  // published: adopted, not freed
      auto blocks = client->acquire(keys).value();
      ASSERT_EQ(blocks.size(), 2u);
      EXPECT_EQ(std::memcmp(blocks[1].data(), content(keys[1], blocks[1].size()).data(), blocks[1].size()), 0);
    }
    EXPECT_TRUE(client->index().check_invariants().ok());
  }
}

TEST(ClientMultiProcessTest, LeasesOfAKilledReaderAreReclaimed) {
  ScopedNode node(/*host_bytes=*/4 << 20);  // one slab: 64 blocks
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = client->keys(ns, tokens(16 * 4, 9));
  ASSERT_TRUE(put_chain(*client, ns, keys).ok());
  ReadyPipe ready;
  const pid_t child = spawn([&] {
    auto c = node.open();
    auto blocks = c->acquire(keys);
    if (!blocks.ok() || blocks->size() != 4) return false;
    ready.signal();
    ::pause();
    return true;
  });
  ASSERT_TRUE(ready.wait());
  EXPECT_EQ(node.index().remove(keys[3]).code(), StatusCode::kFailedPrecondition);  // leased
  ::kill(child, SIGKILL);
  ASSERT_EQ(wait_for(child), 128 + SIGKILL);
  ASSERT_TRUE(client->maintain().ok());
  EXPECT_EQ(client->evict(Tier::kSsd, 1, *make_lru_policy()).status().code(), StatusCode::kInvalidArgument)
      << "SSD blocks are the daemon's to evict";
  auto freed = client->evict(Tier::kHost, UINT64_MAX, *make_prefix_aware_policy());
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed->blocks_dropped, 4u);
  EXPECT_EQ(client->stats().host_used_bytes, 0u);  // and their arena space is free again
}

}  // namespace
}  // namespace kvtier

namespace kvtier {
namespace {

TEST(ClientTest, SealedBlocksAreVerifiedAndCorruptOnesNeverServed) {
  ScopedNode node;
  node.options.verify_reads = true;
  auto client = node.open();
  const NamespaceHandle ns = client->register_namespace(small_model()).value();
  const auto keys = client->keys(ns, tokens(16 * 4, 11));
  ASSERT_TRUE(put_chain(*client, ns, keys).ok());
  {
    auto unsealed = client->acquire(keys).value();
    EXPECT_EQ(client->checksum(unsealed[0]), 0u);  // puts do not hash
  }
  EXPECT_EQ(client->seal(keys).value(), 4u);
  EXPECT_EQ(client->seal(keys).value(), 0u);  // once is enough
  uint32_t corrupt_loc = 0;
  {
    auto blocks = client->acquire(keys).value();
    ASSERT_EQ(blocks.size(), 4u);  // intact: all verify
    EXPECT_NE(client->checksum(blocks[2]), 0u);
    corrupt_loc = client->index().lookup(keys[2])->host_loc;
  }
  // Flip one byte of block 2 behind the cache's back.
  auto arena = host::HostArena::attach("kvtier-" + node.options.node_name + "-host").value();
  arena->data(corrupt_loc)[100] ^= 0x01;
  auto blocks = client->acquire(keys).value();
  EXPECT_EQ(blocks.size(), 2u);  // served up to the corrupt block, not past it
  EXPECT_EQ(client->stats().corrupt_dropped, 1u);
  EXPECT_FALSE(client->index().lookup(keys[2]).has_value());  // dropped from the cache
  EXPECT_EQ(client->stats().host_used_bytes, 3u * 65536);     // and its space freed
}

}  // namespace
}  // namespace kvtier
