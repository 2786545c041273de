// kvtier-indexer against a real cluster on loopback: three kvtierd nodes and the indexer, all
// started by the test. Writes on each node show up in ScoreNodes; a node killed with SIGKILL and
// restarted (warm, or cold: its shared memory gone) is re-read from a snapshot, so no stale
// blocks survive; a stalled indexer (SIGSTOP) that fell out of a node's replay ring recovers by
// snapshot; a node removed from the nodes file is dropped.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "common/clock.h"
#include "common/node_segments.h"
#include "daemon_process.h"
#include "indexer_process.h"
#include "kvtier/v1/scheduler.grpc.pb.h"
#include "node_test_support.h"
#include "server/indexer/node_follower.h"

namespace kvtier::node {
namespace {

using testing::Daemon;
using testing::IndexerProcess;
using testing::ScratchDir;

// One kvtierd of the test cluster, with its own segments, directory and ports.
struct ClusterNode {
  ScratchDir dir;
  std::string name;
  std::string address = "127.0.0.1:" + std::to_string(testing::free_port());
  std::string config;
  Daemon daemon;
  std::unique_ptr<Client> client;
  std::optional<NamespaceHandle> ns;

  explicit ClusterNode(const std::string& tag, uint32_t event_ring = 65536)
      : name("idx" + tag + "-" + std::to_string(::getpid())), config(dir / "node.yaml") {
    testing::write_node_config(
        config, name,
        "index: {capacity: 16384}\nhost: {bytes: 8MiB, slab_bytes: 1MiB}\nssd: {enabled: false}\n"
        "server: {grpc_address: \"" +
            address + "\", metrics_address: \"\"}\nevents: {ring: " + std::to_string(event_ring) + "}\n");
    start();
  }
  void start() {
    daemon = Daemon::start(config);
    client = Client::open(testing::daemon_client_options(name)).value();
    ns = client->register_namespace(testing::small_namespace()).value();
  }
  void kill9() {
    client.reset();
    daemon.kill9();
    daemon.pid = -1;
  }
  void destroy_segments() { testing::destroy_daemon_segments(name); }
  ~ClusterNode() {
    client.reset();
    if (daemon.pid > 0) daemon.stop();
    destroy_segments();
  }
};

class IndexerCluster : public ::testing::Test {
 protected:
  ScratchDir dir;
  std::vector<std::unique_ptr<ClusterNode>> nodes;
  std::string indexer_address = "127.0.0.1:" + std::to_string(testing::free_port());
  std::string nodes_file = dir / "nodes.txt";
  IndexerProcess indexer;
  std::unique_ptr<v1::Scheduler::Stub> scheduler;

  void start_cluster(size_t n, uint32_t event_ring = 65536, int grace_ms = 60000) {
    for (size_t i = 0; i < n; ++i) nodes.push_back(std::make_unique<ClusterNode>(std::to_string(i), event_ring));
    write_nodes_file(n);
    indexer = IndexerProcess::start({"--grpc-address", indexer_address, "--nodes-file", nodes_file,
                                     "--namespaces-config", nodes[0]->config, "--grace-ms", std::to_string(grace_ms)},
                                    dir / "indexer.log");
    scheduler = v1::Scheduler::NewStub(grpc::CreateChannel(indexer_address, grpc::InsecureChannelCredentials()));
  }
  void write_nodes_file(size_t n) {
    std::ofstream f(nodes_file + ".tmp");
    f << "# the test cluster\n";
    for (size_t i = 0; i < n; ++i) f << nodes[i]->address << "\n";
    f.close();
    std::filesystem::rename(nodes_file + ".tmp", nodes_file);  // atomically, as a ConfigMap update
  }

  v1::ListNodesResponse list() {
    grpc::ClientContext c;
    v1::ListNodesResponse r;
    EXPECT_TRUE(scheduler->ListNodes(&c, v1::ListNodesRequest(), &r).ok());
    return r;
  }
  v1::ScoreNodesResponse score(const std::vector<TokenId>& tokens) {
    v1::ScoreNodesRequest req;
    req.mutable_namespace_()->set_model_id("node-test/model");
    for (TokenId t : tokens) req.add_token_ids(t);
    grpc::ClientContext c;
    v1::ScoreNodesResponse r;
    const grpc::Status s = scheduler->ScoreNodes(&c, req, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r;
  }
  // The ListNodes entry of a node, by name (default when the indexer does not list it).
  v1::FollowedNode followed(const std::string& node) {
    const v1::ListNodesResponse l = list();
    for (const auto& n : l.nodes()) {
      if (n.node() == node) return n;
    }
    return {};
  }
  static const v1::NodeScore* of(const v1::ScoreNodesResponse& r, const std::string& node) {
    for (const auto& n : r.nodes()) {
      if (n.node() == node) return &n;
    }
    return nullptr;
  }
  // Polls until `done` holds (events travel asynchronously), up to 15 s.
  bool eventually(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return done();
  }
  uint32_t prefix_on(const std::vector<TokenId>& tokens, const std::string& node) {
    const auto r = score(tokens);
    const v1::NodeScore* n = of(r, node);
    return n == nullptr ? 0 : n->prefix_blocks();
  }
  void TearDown() override {
    if (indexer.pid > 0) {
      EXPECT_EQ(indexer.stop(), 0) << indexer.log();
    }
  }
};

TEST_F(IndexerCluster, WritesOnEachNodeShowUpInScoreNodes) {
  start_cluster(3);
  const auto a = testing::tokens(8 * 16, 11);  // chain A: 8 blocks
  const auto b = testing::tokens(4 * 16, 22);  // chain B: 4 blocks
  ClusterNode& n0 = *nodes[0];
  ClusterNode& n1 = *nodes[1];
  ClusterNode& n2 = *nodes[2];
  const auto keys_a = n0.client->keys(*n0.ns, a);
  testing::put_chain(*n0.client, *n0.ns, keys_a);
  testing::put_chain(*n1.client, *n1.ns, {keys_a.begin(), keys_a.begin() + 3});
  testing::put_chain(*n2.client, *n2.ns, n2.client->keys(*n2.ns, b));
  ASSERT_TRUE(eventually([&] { return prefix_on(a, n0.name) == 8 && prefix_on(a, n1.name) == 3; })) << indexer.log();
  const auto r = score(a);
  EXPECT_EQ(r.best_node(), n0.name);
  EXPECT_EQ(r.blocks(), 8u);
  EXPECT_EQ(r.cluster_prefix_blocks(), 8u);
  EXPECT_EQ(r.block_tokens(), 16u);
  ASSERT_EQ(r.nodes_size(), 3);
  EXPECT_EQ(of(r, n0.name)->host_blocks(), 8u);
  EXPECT_EQ(of(r, n0.name)->address(), n0.address);
  EXPECT_EQ(of(r, n1.name)->remote_blocks(), 5u) << "the rest of A can come from node 0";
  EXPECT_EQ(of(r, n2.name)->prefix_blocks(), 0u);
  EXPECT_EQ(of(r, n2.name)->remote_blocks(), 8u);
  EXPECT_GT(of(r, n0.name)->score(), of(r, n1.name)->score());
  EXPECT_GT(of(r, n1.name)->score(), of(r, n2.name)->score());
  ASSERT_TRUE(eventually([&] { return prefix_on(b, n2.name) == 4; }));

  // The same by keys, restricted to two candidates, with weights that favour nothing but HBM.
  v1::ScoreNodesRequest req;
  for (const BlockKey& k : keys_a) {
    const auto kb = k.to_bytes();
    req.mutable_packed_keys()->append(reinterpret_cast<const char*>(kb.data()), kb.size());
  }
  req.add_candidates(n1.name);
  req.add_candidates(n2.name);
  req.mutable_weights()->mutable_host()->set_value(0.0);
  req.mutable_weights()->mutable_remote()->set_value(0.0);
  grpc::ClientContext c;
  v1::ScoreNodesResponse by_keys;
  ASSERT_TRUE(scheduler->ScoreNodes(&c, req, &by_keys).ok());
  ASSERT_EQ(by_keys.nodes_size(), 2);
  EXPECT_EQ(of(by_keys, n1.name)->prefix_blocks(), 3u);
  EXPECT_EQ(of(by_keys, n1.name)->score(), 0.0);

  // More writes on node 1 follow as events; an evicted block follows too.
  testing::put_chain(*n1.client, *n1.ns, keys_a);
  EXPECT_TRUE(eventually([&] { return prefix_on(a, n1.name) == 8; }));
  ASSERT_TRUE(n0.client->evict(Tier::kHost, 8ULL << 20, *make_lru_policy()).ok());
  EXPECT_TRUE(eventually([&] { return prefix_on(a, n0.name) == 0; })) << "node 0 emptied its host tier";

  // Bad requests are INVALID_ARGUMENT with a message.
  const auto invalid = [&](const v1::ScoreNodesRequest& bad) {
    grpc::ClientContext bc;
    v1::ScoreNodesResponse ignored;
    const grpc::Status s = scheduler->ScoreNodes(&bc, bad, &ignored);
    return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT && !s.error_message().empty();
  };
  v1::ScoreNodesRequest none;
  EXPECT_TRUE(invalid(none)) << "neither tokens nor keys";
  v1::ScoreNodesRequest odd;
  odd.set_packed_keys("0123456789");
  EXPECT_TRUE(invalid(odd)) << "10 bytes of keys";
  v1::ScoreNodesRequest unknown_ns;
  unknown_ns.mutable_namespace_()->set_model_id("no/such-model");
  unknown_ns.add_token_ids(1);
  EXPECT_TRUE(invalid(unknown_ns));
  v1::ScoreNodesRequest heavy = req;
  heavy.mutable_weights()->mutable_ssd()->set_value(2.0);
  EXPECT_TRUE(invalid(heavy)) << "a weight above 1";
}

TEST_F(IndexerCluster, AKilledNodeComesBackFromASnapshotWithoutStaleBlocks) {
  start_cluster(2);
  ClusterNode& n0 = *nodes[0];
  const auto a = testing::tokens(6 * 16, 33);
  testing::put_chain(*n0.client, *n0.ns, n0.client->keys(*n0.ns, a));
  ASSERT_TRUE(eventually([&] { return prefix_on(a, n0.name) == 6; })) << indexer.log();
  const auto epoch_of = [&](const std::string& name) {
    const v1::FollowedNode n = followed(name);
    return std::make_pair(n.epoch(), n.restarts());
  };
  const uint64_t epoch0 = epoch_of(n0.name).first;

  // SIGKILL, then a warm restart: the shared memory survived, so the blocks are still there; the
  // indexer sees a new epoch and reloads the node from a snapshot.
  n0.kill9();
  n0.start();
  ASSERT_TRUE(eventually([&] { return epoch_of(n0.name).first != epoch0; })) << indexer.log();
  EXPECT_GE(epoch_of(n0.name).second, 1u);
  EXPECT_EQ(prefix_on(a, n0.name), 6u) << "warm restart: the blocks are real";

  // SIGKILL, then a cold start (segments removed, as after a reboot): everything the index held
  // for the node is stale and must go.
  const uint64_t epoch1 = epoch_of(n0.name).first;
  n0.kill9();
  n0.destroy_segments();
  n0.start();
  ASSERT_TRUE(eventually([&] { return epoch_of(n0.name).first != epoch1; })) << indexer.log();
  EXPECT_TRUE(eventually([&] { return prefix_on(a, n0.name) == 0; })) << "no stale blocks after a cold start";
  const auto r = score(a);
  EXPECT_EQ(r.cluster_prefix_blocks(), 0u);
}

TEST_F(IndexerCluster, AStalledIndexerRecoversBySnapshot) {
  start_cluster(1, 1024);  // the smallest replay ring
  ClusterNode& n0 = *nodes[0];
  const auto a = testing::tokens(4 * 16, 44);
  testing::put_chain(*n0.client, *n0.ns, n0.client->keys(*n0.ns, a));
  ASSERT_TRUE(eventually([&] { return prefix_on(a, n0.name) == 4; })) << indexer.log();
  const auto snapshots = [&] { return list().nodes(0).snapshots(); };
  const uint64_t before = snapshots();

  indexer.pause();
  // Far more events than the ring keeps (HBM records come and go), then a new chain. Written
  // through a handle of the node's index of its own, as the daemon writes.
  auto index = BlockIndex::attach(node_index_segment(testing::kDaemonShmPrefix, n0.name)).value();
  for (uint64_t i = 0; i < 6000; ++i) {
    const BlockKey k{0x7374616c6cULL, (i + 1) * 0x9e3779b97f4a7c15ULL | 1};
    // Holder 0xFF: no process slot, so no process leaving the node's index drops the record.
    ASSERT_TRUE(index.insert({k, BlockKey{}, 7, 4096, Tier::kHbm, (uint64_t{0xFF} << 24) | i}).ok());
    ASSERT_TRUE(index.remove(k).ok());
  }
  const auto b = testing::tokens(3 * 16, 55);
  testing::put_chain(*n0.client, *n0.ns, n0.client->keys(*n0.ns, b));
  indexer.resume();

  EXPECT_TRUE(eventually([&] { return snapshots() > before; })) << "fell out of the ring: resync by snapshot";
  EXPECT_TRUE(eventually([&] { return prefix_on(b, n0.name) == 3; })) << indexer.log();
  EXPECT_EQ(prefix_on(a, n0.name), 4u);
  EXPECT_TRUE(eventually([&] { return list().keys() == 7u; })) << "only the 7 host blocks; no HBM leftovers";
}

TEST_F(IndexerCluster, AnUnreachableNodeIsKeptForItsGracePeriodThenDropped) {
  start_cluster(2, 65536, 3000);  // long enough to see the node down on a loaded machine
  ClusterNode& n1 = *nodes[1];
  const auto a = testing::tokens(2 * 16, 77);
  testing::put_chain(*n1.client, *n1.ns, n1.client->keys(*n1.ns, a));
  ASSERT_TRUE(eventually([&] { return prefix_on(a, n1.name) == 2; })) << indexer.log();
  n1.kill9();
  const auto down_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return followed(n1.name).state() == v1::FollowedNode::STATE_DOWN; }));
  EXPECT_EQ(prefix_on(a, n1.name), 2u) << "kept while within the grace period";
  ASSERT_TRUE(eventually([&] { return score(a).cluster_prefix_blocks() == 0; })) << indexer.log();
  EXPECT_GE(std::chrono::steady_clock::now() - down_at, std::chrono::milliseconds(2900));
  EXPECT_NE(indexer.log().find("gone past its grace period"), std::string::npos);
}

// The same decision in a follower of this process, on a manual clock: an unreachable node's blocks
// stay however long noticing it takes (a loaded machine cannot make the test drop them early), and
// go once the clock passes the grace period.
TEST_F(IndexerCluster, AFollowerKeepsAnUnreachableNodeUntilItsClockPassesTheGrace) {
  nodes.push_back(std::make_unique<ClusterNode>("grace"));
  ClusterNode& n = *nodes[0];
  const auto a = testing::tokens(2 * 16, 78);
  testing::put_chain(*n.client, *n.ns, n.client->keys(*n.ns, a));
  cluster::ClusterIndex index;
  ManualClock clock;
  indexer::FollowerOptions o;
  o.address = n.address;
  o.grace = std::chrono::seconds(30);
  o.max_backoff = std::chrono::milliseconds(100);
  o.clock = &clock;
  indexer::NodeFollower follower(index, o);
  ASSERT_TRUE(eventually([&] { return index.stats().keys == 2; }));
  n.kill9();
  ASSERT_TRUE(eventually([&] { return follower.status().state == indexer::FollowerState::kDown; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // several retries, all within the grace
  EXPECT_EQ(index.stats().keys, 2U) << "kept while the clock is within the grace period";
  clock.advance(std::chrono::seconds(31));
  EXPECT_TRUE(eventually([&] { return index.stats().keys == 0; })) << "dropped past the grace period";
  EXPECT_GE(follower.status().down_ms, 31000U);
  follower.stop(/*drop_entries=*/false);
}

TEST_F(IndexerCluster, ANodeTakenOutOfTheNodesFileIsDropped) {
  start_cluster(2);
  ClusterNode& n1 = *nodes[1];
  const auto a = testing::tokens(2 * 16, 66);
  testing::put_chain(*n1.client, *n1.ns, n1.client->keys(*n1.ns, a));
  ASSERT_TRUE(eventually([&] { return prefix_on(a, n1.name) == 2; })) << indexer.log();
  write_nodes_file(1);  // node 1 leaves the cluster
  EXPECT_TRUE(eventually([&] { return list().nodes_size() == 1 && score(a).cluster_prefix_blocks() == 0; }))
      << indexer.log();
  EXPECT_EQ(of(score(a), n1.name), nullptr);
}

// In Kubernetes the nodes come from a headless Service over the DaemonSet: a DNS name whose
// addresses are the ready pods. Here "localhost" stands for it.
TEST_F(IndexerCluster, NodesADnsNameResolvesToAreFollowed) {
  nodes.push_back(std::make_unique<ClusterNode>("0", 65536));
  ClusterNode& n0 = *nodes[0];
  const std::string port = n0.address.substr(n0.address.rfind(':') + 1);
  indexer = IndexerProcess::start(
      {"--grpc-address", indexer_address, "--nodes-dns", "localhost:" + port, "--namespaces-config", n0.config},
      dir / "indexer.log");
  scheduler = v1::Scheduler::NewStub(grpc::CreateChannel(indexer_address, grpc::InsecureChannelCredentials()));
  const auto a = testing::tokens(3 * 16, 67);
  testing::put_chain(*n0.client, *n0.ns, n0.client->keys(*n0.ns, a));
  ASSERT_TRUE(eventually([&] { return prefix_on(a, n0.name) == 3; })) << indexer.log();
  const v1::ListNodesResponse l = list();
  ASSERT_EQ(l.nodes_size(), 1) << "one address family is followed, not both of a dual-stack name";
  EXPECT_EQ(l.nodes(0).address(), "127.0.0.1:" + port);
  EXPECT_NE(indexer.log().find("(DNS localhost:" + port + ")"), std::string::npos) << indexer.log();
}

}  // namespace
}  // namespace kvtier::node
