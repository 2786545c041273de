// kvtierd's gRPC services end to end: the real daemon on loopback ports, a C++ gRPC client, blocks
// written through the client library. Locality (MatchPrefix and its batch form, bad input),
// Events (Subscribe, resync for another epoch, Snapshot), and a restart that changes the epoch.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "daemon_process.h"
#include "health.grpc.pb.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "node_test_support.h"

namespace kvtier::node {
namespace {

using testing::Daemon;
using testing::ScratchDir;

struct GrpcNode {
  ScratchDir dir;
  std::string node = "grpc" + std::to_string(::getpid());
  std::string address = "127.0.0.1:" + std::to_string(testing::free_port());
  std::string config = dir / "node.yaml";
  Daemon daemon;
  std::unique_ptr<Client> client;
  std::optional<NamespaceHandle> ns;
  std::shared_ptr<grpc::Channel> channel;

  GrpcNode() {
    std::ofstream f(config);
    f << "node: {name: " << node << ", shm_prefix: kvtiertest}\n"
      << "index: {capacity: 16384}\nhost: {bytes: 8MiB, slab_bytes: 1MiB}\n"
      << "ssd: {dir: " << (dir / "ssd") << ", bytes: 64MiB, region_bytes: 2MiB}\n"
      << "server: {grpc_address: \"" << address << "\", metrics_address: \"127.0.0.1:" << testing::free_port()
      << "\"}\n"
      << "namespaces:\n  - model_id: node-test/model\n"
      << "    layout: {dtype: bf16, block_tokens: 16, num_layers: 2, num_kv_heads: 8, head_dim: 64, kv_planes: 2}\n";
    f.close();
    daemon = Daemon::start(config);
    ClientOptions co;
    co.node_name = node;
    co.shm_prefix = "kvtiertest";
    client = Client::open(co).value();
    ns = client->register_namespace(testing::small_namespace()).value();
    channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }
  ~GrpcNode() {
    client.reset();
    channel.reset();  // an open connection would hold the daemon's graceful shutdown to its deadline
    if (daemon.pid > 0) daemon.stop();
    NodeTiersOptions o;
    o.node_name = node;
    o.shm_prefix = "kvtiertest";
    (void)NodeTiers::destroy_segments(o);
  }
};

v1::MatchPrefixRequest by_tokens(const std::vector<TokenId>& tokens) {
  v1::MatchPrefixRequest r;
  r.mutable_namespace_()->set_model_id("node-test/model");
  for (TokenId t : tokens) r.add_token_ids(t);
  return r;
}

uint32_t in_tier(const v1::MatchPrefixResponse& r, v1::Tier tier) {
  for (const auto& t : r.per_tier()) {
    if (t.tier() == tier) return t.blocks();
  }
  return 0;
}

TEST(KvtierdGrpc, MatchPrefixAnswersPerTierFromTokensOrKeys) {
  GrpcNode n;
  const auto tokens = testing::tokens(10 * 16 + 5);  // 10 whole blocks and a partial one
  const auto keys = n.client->keys(*n.ns, tokens);
  testing::put_chain(*n.client, *n.ns, {keys.begin(), keys.begin() + 6});
  auto stub = v1::Locality::NewStub(n.channel);

  grpc::ClientContext c1;
  v1::MatchPrefixResponse r;
  ASSERT_TRUE(stub->MatchPrefix(&c1, by_tokens(tokens), &r).ok());
  EXPECT_EQ(r.matched_blocks(), 6u);
  EXPECT_EQ(r.blocks_asked(), 10u);
  EXPECT_EQ(r.block_tokens(), 16u);
  EXPECT_EQ(in_tier(r, v1::TIER_HOST), 6u);
  EXPECT_EQ(in_tier(r, v1::TIER_SSD), 0u);

  v1::MatchPrefixRequest by_keys;
  for (const BlockKey& k : keys) {
    const auto b = k.to_bytes();
    by_keys.add_keys(b.data(), b.size());
  }
  grpc::ClientContext c2;
  v1::MatchPrefixResponse r2;
  ASSERT_TRUE(stub->MatchPrefix(&c2, by_keys, &r2).ok());
  EXPECT_EQ(r2.matched_blocks(), 6u);

  v1::MatchPrefixBatchRequest batch;
  *batch.add_requests() = by_tokens(tokens);
  *batch.add_requests() = by_tokens(testing::tokens(64, 99));  // nothing cached
  grpc::ClientContext c3;
  v1::MatchPrefixBatchResponse rb;
  ASSERT_TRUE(stub->MatchPrefixBatch(&c3, batch, &rb).ok());
  ASSERT_EQ(rb.responses_size(), 2);
  EXPECT_EQ(rb.responses(0).matched_blocks(), 6u);
  EXPECT_EQ(rb.responses(1).matched_blocks(), 0u);
}

TEST(KvtierdGrpc, TheStandardHealthServiceSaysServing) {
  GrpcNode n;
  auto health = grpc::health::v1::Health::NewStub(n.channel);
  grpc::ClientContext c;
  grpc::health::v1::HealthCheckResponse r;
  ASSERT_TRUE(health->Check(&c, grpc::health::v1::HealthCheckRequest(), &r).ok());
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(KvtierdGrpc, BadRequestsAreInvalidArgumentWithAMessage) {
  GrpcNode n;
  auto stub = v1::Locality::NewStub(n.channel);
  const auto expect_invalid = [&](const v1::MatchPrefixRequest& req, const char* what) {
    grpc::ClientContext c;
    v1::MatchPrefixResponse r;
    const grpc::Status s = stub->MatchPrefix(&c, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_FALSE(s.error_message().empty()) << what;
  };
  v1::MatchPrefixRequest unknown = by_tokens(testing::tokens(32));
  unknown.mutable_namespace_()->set_model_id("not/configured");
  expect_invalid(unknown, "unknown namespace");
  v1::MatchPrefixRequest no_ns;
  no_ns.add_token_ids(1);
  expect_invalid(no_ns, "tokens without a namespace");
  v1::MatchPrefixRequest short_key;
  short_key.add_keys("0123456789");
  expect_invalid(short_key, "a 10-byte key");
  expect_invalid(v1::MatchPrefixRequest(), "neither tokens nor keys");
  v1::MatchPrefixRequest both = by_tokens(testing::tokens(16));
  both.add_keys(std::string(16, 'k'));
  expect_invalid(both, "both tokens and keys");
}

TEST(KvtierdGrpc, SubscribersSeeEveryChangeAndAStaleEpochGetsAResync) {
  GrpcNode n;
  auto events = v1::Events::NewStub(n.channel);
  grpc::ClientContext snap_ctx;
  v1::SnapshotResponse snap;
  ASSERT_TRUE(events->Snapshot(&snap_ctx, v1::SnapshotRequest(), &snap).ok());
  EXPECT_EQ(snap.node_id(), n.node);
  EXPECT_NE(snap.epoch(), 0u);

  grpc::ClientContext sub_ctx;
  v1::SubscribeRequest from;
  from.set_epoch(snap.epoch());
  from.set_from_seq(snap.as_of_seq());
  auto stream = events->Subscribe(&sub_ctx, from);
  const auto keys = n.client->keys(*n.ns, testing::tokens(4 * 16, 7));
  testing::put_chain(*n.client, *n.ns, keys);
  std::vector<v1::Event> got;
  v1::EventBatch batch;
  while (got.size() < 4 && stream->Read(&batch)) {
    EXPECT_FALSE(batch.resync());
    EXPECT_EQ(batch.epoch(), snap.epoch());
    for (const auto& e : batch.events()) got.push_back(e);
  }
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq(), snap.as_of_seq() + i) << "gap-free";
    EXPECT_EQ(got[i].kind(), v1::Event::KIND_STORED);
    EXPECT_EQ(got[i].key().size(), 16u);
    EXPECT_EQ(BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(got[i].key().data())), keys[i]);
    EXPECT_EQ(got[i].tiers_after(), 2u) << "host";
  }
  sub_ctx.TryCancel();
  stream->Finish();

  grpc::ClientContext stale_ctx;
  v1::SubscribeRequest stale;
  stale.set_epoch(snap.epoch() + 1);
  auto stale_stream = events->Subscribe(&stale_ctx, stale);
  ASSERT_TRUE(stale_stream->Read(&batch));
  EXPECT_TRUE(batch.resync()) << "another epoch's position is a resync";
  stale_ctx.TryCancel();
  stale_stream->Finish();
}

TEST(KvtierdGrpc, ARestartIsANewEpochWithTheDataStillThere) {
  GrpcNode n;
  const auto tokens = testing::tokens(5 * 16, 3);
  testing::put_chain(*n.client, *n.ns, n.client->keys(*n.ns, tokens));
  uint64_t first_epoch = 0;
  {
    auto events = v1::Events::NewStub(n.channel);
    grpc::ClientContext c;
    v1::SnapshotResponse snap;
    ASSERT_TRUE(events->Snapshot(&c, v1::SnapshotRequest(), &snap).ok());
    first_epoch = snap.epoch();
  }
  EXPECT_EQ(n.daemon.stop(), 0);
  n.daemon = Daemon::start(n.config);
  auto events = v1::Events::NewStub(n.channel);
  grpc::ClientContext c;
  v1::SnapshotResponse snap;
  ASSERT_TRUE(events->Snapshot(&c, v1::SnapshotRequest(), &snap).ok());
  EXPECT_NE(snap.epoch(), first_epoch);
  size_t host_keys = 0;
  for (const auto& t : snap.tiers()) host_keys += t.tier() == v1::TIER_HOST ? static_cast<size_t>(t.keys_size()) : 0;
  EXPECT_EQ(host_keys, 5u) << "warm: the blocks survived the restart";
  auto locality = v1::Locality::NewStub(n.channel);
  grpc::ClientContext mc;
  v1::MatchPrefixResponse r;
  ASSERT_TRUE(locality->MatchPrefix(&mc, by_tokens(tokens), &r).ok());
  EXPECT_EQ(r.matched_blocks(), 5u);
}

}  // namespace
}  // namespace kvtier::node
