// The real kvtierd binary, SIGKILLed while an engine process writes blocks through it, restarts
// warm: every block the restarted node offers from SSD loads back byte for byte, and the index
// offers no SSD block the SSD tier did not keep.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>

#include "daemon_process.h"
#include "node_test_support.h"

namespace kvtier::node {
namespace {

using testing::Daemon;
using testing::ScratchDir;

TEST(Kvtierd, SigkillUnderWriteLoadRestartsWarm) {
  ScratchDir dir;
  const std::string node = "restart" + std::to_string(::getpid());
  const std::string config = dir / "node.yaml";
  {
    std::ostringstream sections;
    sections << "index: {capacity: 16384}\nhost: {bytes: 8MiB, slab_bytes: 1MiB}\n"
             << "ssd: {dir: " << (dir / "ssd") << ", bytes: 96MiB, region_bytes: 2MiB, io_bytes: 512KiB,"
             << " admission: {min_accesses: 1}}\n"
             << "server: {grpc_address: \"127.0.0.1:" << testing::free_port()
             << "\", metrics_address: \"127.0.0.1:" << testing::free_port() << "\"}\n";
    testing::write_node_config(config, node, sections.str());
  }
  const ClientOptions co = testing::daemon_client_options(node);

  Daemon daemon = Daemon::start(config);
  auto client = Client::open(co);
  ASSERT_TRUE(client.ok()) << client.status().to_string();
  auto ns = (*client)->register_namespace(testing::small_namespace());
  ASSERT_TRUE(ns.ok());

  // Many short conversations, written steadily: the daemon demotes them to SSD as host fills.
  std::vector<std::vector<BlockKey>> chains;
  const auto kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  bool killed = false;
  for (uint32_t conv = 0; conv < 100000 && !killed; ++conv) {
    chains.push_back((*client)->keys(*ns, testing::tokens(8 * 16, conv + 1)));
    for (size_t i = 0; i < chains.back().size(); ++i) {
      const auto& keys = chains.back();
      const auto bytes = ssd::testing::block_bytes(keys[i], ns->ns.bytes_per_block());
      (void)(*client)->put(*ns, keys[i], i == 0 ? ns->ns.root() : keys[i - 1], bytes);
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      if (std::chrono::steady_clock::now() >= kill_at) {
        daemon.kill9();  // mid-load: regions being filled and written are lost, written ones are not
        killed = true;
        break;
      }
    }
  }
  ASSERT_TRUE(killed);
  const IndexStats before = (*client)->index().stats();
  ASSERT_GT(before.tier_entries[tier_index(Tier::kSsd)], 0u) << "the daemon demoted nothing before it was killed";

  daemon = Daemon::start(config);
  const IndexStats after = (*client)->index().stats();
  const size_t on_ssd = after.tier_entries[tier_index(Tier::kSsd)];
  EXPECT_GT(on_ssd, 0u) << "the restart is warm";
  // Every block the index now offers from SSD comes back intact.
  size_t loaded = 0, checked = 0;
  for (const auto& keys : chains) {
    std::vector<BlockKey> ssd_only;
    for (const BlockKey& k : keys) {
      auto info = (*client)->index().lookup(k);
      if (info && info->in(Tier::kSsd) && !info->in(Tier::kHost)) ssd_only.push_back(k);
    }
    if (ssd_only.empty()) continue;
    for (const BlockKey& k : ssd_only) {
      auto load = (*client)->load({&k, 1});
      ASSERT_TRUE(load.ok()) << load.status().to_string();
      loaded += load->wait(std::chrono::seconds(10));
      auto got = (*client)->acquire({&k, 1});
      if (!got.ok() || got->empty()) {
        // Only a block whose own parent chain is not cached cannot be acquired alone; load() says
        // whether it reached host memory.
        continue;
      }
      const auto want = ssd::testing::block_bytes(k, got->front().size());
      EXPECT_EQ(std::memcmp(got->front().data(), want.data(), want.size()), 0) << "an SSD block came back altered";
      ++checked;
    }
    if (checked >= 200) break;  // bounded: enough to cover many regions
  }
  std::printf("SSD blocks in the index: %zu before SIGKILL, %zu after restart; %zu loaded back and verified\n",
              static_cast<size_t>(before.tier_entries[tier_index(Tier::kSsd)]), on_ssd, checked);
  EXPECT_GT(loaded, 0u);
  EXPECT_EQ(loaded, checked);
  EXPECT_TRUE((*client)->index().check_invariants().ok());
  client->reset();
  EXPECT_EQ(daemon.stop(), 0);
  testing::destroy_daemon_segments(node);
}

}  // namespace
}  // namespace kvtier::node
