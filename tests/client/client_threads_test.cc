// One Client shared by threads that put, read in place and copy out at once: the library's
// thread-safety, checked by ThreadSanitizer in the tsan preset.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <numeric>
#include <thread>

#include "kvtier/client.h"

namespace kvtier {
namespace {

TEST(ClientThreadsTest, PutsAndReadsFromManyThreads) {
  ClientOptions o;
  o.node_name = "threads-" + std::to_string(::getpid());
  o.create_if_missing = true;
  o.index_capacity = 4096;
  o.host_bytes = 16 << 20;
  o.slab_bytes = 4 << 20;
  auto client = Client::open(o).value();
  NamespaceSpec spec;
  spec.model_id = "threads/model";
  spec.layout = {KvDType::kBFloat16, 16, 2, 2, 64, 2};
  const NamespaceHandle ns = client->register_namespace(spec).value();
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> bytes(ns.ns.bytes_per_block()), out(4 * ns.ns.bytes_per_block());
      for (int round = 0; round < 200; ++round) {
        std::vector<TokenId> tokens(64);
        std::iota(tokens.begin(), tokens.end(), (round % 20) * 1000);  // threads share chains
        const auto keys = client->keys(ns, tokens);
        BlockKey parent = ns.ns.root();
        for (const auto& k : keys) {
          std::memset(bytes.data(), static_cast<int>(k.lo & 0xFF), bytes.size());
          if (!client->put(ns, k, parent, bytes).ok()) bad++;
          parent = k;
        }
        auto blocks = client->acquire(keys);
        if (!blocks.ok()) {
          bad++;
          continue;
        }
        for (const auto& b : *blocks) {
          if (b.data()[b.size() / 2] != static_cast<uint8_t>(b.key().lo & 0xFF)) bad++;
        }
        if (t % 2 == 0) (void)client->get_copy(ns, keys, out);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(client->stats().index.entries, 80u);  // 20 chains × 4 blocks, each stored once
  EXPECT_TRUE(client->index().check_invariants().ok());
  client.reset();
  (void)Client::destroy_node(o);
}

}  // namespace
}  // namespace kvtier
