// kvtierd's gRPC services end to end: the real daemon on loopback ports, a C++ gRPC client, blocks
// written through the client library. Locality (MatchPrefix and its batch form, bad input),
// Events (Subscribe, resync for another epoch, Snapshot), Blocks (GetBlocks from host and SSD,
// PutBlocks and its checks), Admin (stats, clear, evict), health, /metrics, and a restart that
// changes the epoch.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "health.grpc.pb.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/blocks.grpc.pb.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "node_test_support.h"
#include "served_node.h"

namespace kvtier::node {
namespace {

using testing::Daemon;
using testing::ScratchDir;

struct GrpcNode : testing::ServedNode {
  std::shared_ptr<grpc::Channel> channel;

  GrpcNode() : ServedNode("grpc", "limits: {max_keys: 4096}") {
    channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }
  ~GrpcNode() {
    channel.reset();  // an open connection would hold the daemon's graceful shutdown to its deadline
  }
  GrpcNode(const GrpcNode&) = delete;
  GrpcNode& operator=(const GrpcNode&) = delete;
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

  v1::MatchPrefixRequest packed;
  for (const BlockKey& k : keys) {
    const auto b = k.to_bytes();
    packed.mutable_packed_keys()->append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  grpc::ClientContext c4;
  v1::MatchPrefixResponse r4;
  ASSERT_TRUE(stub->MatchPrefix(&c4, packed, &r4).ok());
  EXPECT_EQ(r4.matched_blocks(), 6u);
  EXPECT_EQ(r4.blocks_asked(), 10u);

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
  v1::MatchPrefixRequest ragged;
  ragged.set_packed_keys(std::string(40, 'k'));
  expect_invalid(ragged, "packed_keys of 2.5 keys");
  v1::MatchPrefixRequest too_many;
  too_many.set_packed_keys(std::string(16 * 4097, 'k'));
  expect_invalid(too_many, "more packed keys than server.limits.max_keys");
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

std::string key_bytes(const BlockKey& k) {
  const auto b = k.to_bytes();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// What a GetBlocks stream delivered: each block reassembled, checked chunk by chunk.
struct Received {
  std::vector<BlockKey> keys;
  std::vector<std::string> bytes;
  std::vector<v1::Tier> tiers;
  size_t chunks = 0;
  bool checksums_ok = true;
  size_t bad_chunks = 0;       // chunk_xxh3 differs from the chunk's bytes
  size_t bad_blocks = 0;       // block_xxh3 differs from the reassembled block
  size_t unsealed_blocks = 0;  // last chunks without a block_xxh3
  grpc::Status status;
};

Received get_blocks(const std::shared_ptr<grpc::Channel>& channel, const std::vector<BlockKey>& keys, bool include_ssd,
                    uint32_t chunk_bytes) {
  auto stub = v1::Blocks::NewStub(channel);
  v1::GetBlocksRequest req;
  for (const BlockKey& k : keys) req.add_keys(key_bytes(k));
  req.set_include_ssd(include_ssd);
  req.set_chunk_bytes(chunk_bytes);
  grpc::ClientContext c;
  auto stream = stub->GetBlocks(&c, req);
  Received got;
  v1::BlockChunk chunk;
  while (stream->Read(&chunk)) {
    ++got.chunks;
    if (XXH3_64bits(chunk.data().data(), chunk.data().size()) != chunk.chunk_xxh3()) {
      got.checksums_ok = false;
      ++got.bad_chunks;
    }
    if (chunk.offset() == 0) {
      got.keys.push_back(BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(chunk.key().data())));
      got.bytes.emplace_back();
      got.tiers.push_back(chunk.tier());
      EXPECT_EQ(chunk.block(), got.keys.size() - 1);
    }
    EXPECT_EQ(chunk.offset(), got.bytes.back().size()) << "chunks in order, back to back";
    got.bytes.back() += chunk.data();
    if (chunk.last()) {
      EXPECT_EQ(got.bytes.back().size(), chunk.block_bytes());
      if (chunk.block_xxh3() == 0) {
        ++got.unsealed_blocks;
      } else if (XXH3_64bits(got.bytes.back().data(), got.bytes.back().size()) != chunk.block_xxh3()) {
        got.checksums_ok = false;
        ++got.bad_blocks;
      }
    }
  }
  got.status = stream->Finish();
  return got;
}

bool bytes_match(const Received& got, size_t block_bytes) {
  for (size_t i = 0; i < got.keys.size(); ++i) {
    const auto want = ssd::testing::block_bytes(got.keys[i], block_bytes);
    if (got.bytes[i].size() != want.size() || std::memcmp(got.bytes[i].data(), want.data(), want.size()) != 0) {
      return false;
    }
  }
  return true;
}

TEST(KvtierdGrpc, GetBlocksStreamsTheHeldPrefixInChecksummedChunks) {
  GrpcNode n;
  const auto keys = n.client->keys(*n.ns, testing::tokens(10 * 16, 5));
  testing::put_chain(*n.client, *n.ns, {keys.begin(), keys.begin() + 6});
  const size_t block_bytes = n.ns->ns.bytes_per_block();

  const Received got = get_blocks(n.channel, keys, false, 16384);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  ASSERT_EQ(got.keys.size(), 6u) << "the held prefix, no more";
  EXPECT_EQ(std::vector<BlockKey>(keys.begin(), keys.begin() + 6), got.keys);
  EXPECT_EQ(got.chunks, 6 * (block_bytes / 16384));
  EXPECT_TRUE(got.checksums_ok);
  EXPECT_EQ(got.unsealed_blocks, 0u) << "a block leaves the node sealed";
  EXPECT_TRUE(bytes_match(got, block_bytes));
  for (v1::Tier t : got.tiers) EXPECT_EQ(t, v1::TIER_HOST);

  // A chain the node does not hold: an empty, successful stream.
  const Received none = get_blocks(n.channel, n.client->keys(*n.ns, testing::tokens(32, 77)), false, 0);
  EXPECT_TRUE(none.status.ok());
  EXPECT_EQ(none.chunks, 0u);

  // Bad requests.
  auto stub = v1::Blocks::NewStub(n.channel);
  const auto expect_invalid = [&](const v1::GetBlocksRequest& req, const char* what) {
    grpc::ClientContext c;
    auto stream = stub->GetBlocks(&c, req);
    v1::BlockChunk chunk;
    EXPECT_FALSE(stream->Read(&chunk)) << what;
    const grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_FALSE(s.error_message().empty()) << what;
  };
  v1::GetBlocksRequest short_key;
  short_key.add_keys("short");
  expect_invalid(short_key, "a 5-byte key");
  v1::GetBlocksRequest tiny_chunks;
  tiny_chunks.add_keys(key_bytes(keys[0]));
  tiny_chunks.set_chunk_bytes(100);
  expect_invalid(tiny_chunks, "100-byte chunks");
  v1::GetBlocksRequest too_many;
  for (int i = 0; i < 4097; ++i) too_many.add_keys(key_bytes(keys[0]));
  expect_invalid(too_many, "over the configured max_keys");
}

// A served block is sealed: served again as one chunk, its recorded checksum is the chunk's, so a
// byte that changes in the node's memory afterwards fails the receiver's check whichever way the
// block is cut into chunks.
TEST(KvtierdGrpc, GetBlocksSealsWhatItServesSoLaterCorruptionShows) {
  GrpcNode n;
  const auto keys = n.client->keys(*n.ns, testing::tokens(4 * 16, 9));
  testing::put_chain(*n.client, *n.ns, keys);
  const size_t block_bytes = n.ns->ns.bytes_per_block();
  ASSERT_EQ(n.client->checksum(n.client->acquire(keys).value().at(2)), 0u) << "puts do not hash";

  const Received first = get_blocks(n.channel, keys, false, 0);  // default chunks: one per block
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.chunks, keys.size());
  EXPECT_TRUE(first.checksums_ok);
  EXPECT_EQ(first.unsealed_blocks, 0u);
  EXPECT_TRUE(bytes_match(first, block_bytes));
  {
    auto held = n.client->acquire(keys).value();
    ASSERT_EQ(held.size(), keys.size());
    for (const HostBlock& b : held) EXPECT_NE(n.client->checksum(b), 0u) << "sealed by the first GetBlocks";
    // Fault injection: one byte of block 2 changes in the arena after it was sealed.
    auto* byte = const_cast<uint8_t*>(held[2].data()) + block_bytes / 3;
    *byte = static_cast<uint8_t>(*byte ^ 0x40);
  }
  const Received whole = get_blocks(n.channel, keys, false, 0);
  ASSERT_TRUE(whole.status.ok());
  EXPECT_EQ(whole.bad_chunks, 1u) << "the recorded checksum went out as the chunk's";
  EXPECT_EQ(whole.bad_blocks, 1u);
  const Received chunked = get_blocks(n.channel, keys, false, 16384);
  ASSERT_TRUE(chunked.status.ok());
  EXPECT_EQ(chunked.bad_chunks, 0u) << "chunks are hashed as sent";
  EXPECT_EQ(chunked.bad_blocks, 1u) << "the block's sealed checksum still catches it";
}

TEST(KvtierdGrpc, GetBlocksLoadsTheSsdPartWhenAsked) {
  GrpcNode n;
  const auto keys = n.client->keys(*n.ns, testing::tokens(8 * 16, 6));
  testing::put_chain(*n.client, *n.ns, keys);
  const size_t block_bytes = n.ns->ns.bytes_per_block();
  // Push everything out of host memory: admitted blocks (min_accesses 1 here) go to SSD.
  auto admin = v1::Admin::NewStub(n.channel);
  grpc::ClientContext ec;
  v1::EvictRequest evict;
  evict.set_tier(v1::TIER_HOST);
  evict.set_bytes(64ULL << 20);
  v1::EvictResponse evicted;
  ASSERT_TRUE(admin->Evict(&ec, evict, &evicted).ok());
  EXPECT_EQ(evicted.blocks_demoted(), keys.size());
  EXPECT_GE(evicted.bytes_freed(), keys.size() * block_bytes);
  EXPECT_EQ(n.client->match(keys).in(Tier::kHost), 0u);
  EXPECT_EQ(n.client->match(keys).in(Tier::kSsd), keys.size());

  EXPECT_EQ(get_blocks(n.channel, keys, false, 0).chunks, 0u) << "host only: nothing";
  const Received got = get_blocks(n.channel, keys, true, 0);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  ASSERT_EQ(got.keys.size(), keys.size());
  EXPECT_TRUE(got.checksums_ok);
  EXPECT_TRUE(bytes_match(got, block_bytes));
  for (v1::Tier t : got.tiers) EXPECT_EQ(t, v1::TIER_SSD);
  EXPECT_EQ(n.client->match(keys).in(Tier::kHost), keys.size()) << "loaded into host memory on the way";

  // Clearing takes the blocks from both tiers (they are in host memory and on SSD now).
  grpc::ClientContext cc;
  v1::ClearNamespaceRequest clear;
  clear.mutable_namespace_()->set_model_id("node-test/model");
  v1::ClearNamespaceResponse cleared;
  ASSERT_TRUE(admin->ClearNamespace(&cc, clear, &cleared).ok());
  for (const BlockKey& k : keys) {
    const auto info = n.client->index().lookup(k);
    EXPECT_FALSE(info.has_value()) << "tiers " << int(info ? info->tiers : 0) << " pins " << (info ? info->pins : 0);
  }
  EXPECT_EQ(cleared.removed(), keys.size());
  EXPECT_EQ(cleared.busy(), 0u);
}

v1::PutBlocksRequest put_chunk(const BlockKey& key, const BlockKey* parent, const std::vector<uint8_t>& bytes,
                               size_t offset, size_t len, bool with_namespace) {
  v1::PutBlocksRequest req;
  if (with_namespace) req.mutable_namespace_()->set_model_id("node-test/model");
  v1::BlockChunk* c = req.mutable_chunk();
  c->set_key(key_bytes(key));
  if (parent != nullptr && offset == 0) c->set_parent(key_bytes(*parent));
  c->set_block_bytes(static_cast<uint32_t>(bytes.size()));
  c->set_offset(static_cast<uint32_t>(offset));
  c->set_data(bytes.data() + offset, len);
  c->set_chunk_xxh3(XXH3_64bits(bytes.data() + offset, len));
  c->set_last(offset + len == bytes.size());
  if (c->last()) c->set_block_xxh3(XXH3_64bits(bytes.data(), bytes.size()));
  return req;
}

TEST(KvtierdGrpc, PutBlocksStoresWholeCheckedBlocksAndRefusesBrokenOnes) {
  GrpcNode n;
  const auto keys = n.client->keys(*n.ns, testing::tokens(4 * 16, 8));
  const size_t block_bytes = n.ns->ns.bytes_per_block();
  auto stub = v1::Blocks::NewStub(n.channel);
  {
    grpc::ClientContext c;
    v1::PutBlocksResponse r;
    auto writer = stub->PutBlocks(&c, &r);
    for (size_t i = 0; i < 3; ++i) {
      const auto bytes = ssd::testing::block_bytes(keys[i], block_bytes);
      for (size_t off = 0; off < block_bytes; off += 20000) {
        const size_t len = std::min<size_t>(20000, block_bytes - off);
        ASSERT_TRUE(writer->Write(put_chunk(keys[i], i == 0 ? nullptr : &keys[i - 1], bytes, off, len, i == 0)));
      }
    }
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(r.stored(), 3u);
    EXPECT_EQ(r.existed(), 0u);
  }
  EXPECT_EQ(n.client->match(keys).overall, 3u);
  EXPECT_EQ(testing::verify_host_prefix(*n.client, keys), 3u) << "the bytes arrived intact";

  const auto expect_refused = [&](const std::vector<v1::PutBlocksRequest>& msgs, grpc::StatusCode code,
                                  const char* what) {
    grpc::ClientContext c;
    v1::PutBlocksResponse r;
    auto writer = stub->PutBlocks(&c, &r);
    for (const auto& m : msgs) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), code) << what << ": " << s.error_message();
    EXPECT_FALSE(s.error_message().empty()) << what;
  };
  const auto b3 = ssd::testing::block_bytes(keys[3], block_bytes);
  auto corrupt = put_chunk(keys[3], &keys[2], b3, 0, block_bytes, true);
  corrupt.mutable_chunk()->mutable_data()->at(100) ^= 1;
  expect_refused({corrupt}, grpc::StatusCode::DATA_LOSS, "a flipped byte");
  auto short_block = put_chunk(keys[3], &keys[2], b3, 0, block_bytes / 2, true);
  short_block.mutable_chunk()->set_last(true);
  expect_refused({short_block}, grpc::StatusCode::INVALID_ARGUMENT, "a block that ends early");
  auto no_ns = put_chunk(keys[3], &keys[2], b3, 0, block_bytes, false);
  expect_refused({no_ns}, grpc::StatusCode::INVALID_ARGUMENT, "no namespace");
  auto other_ns = put_chunk(keys[3], &keys[2], b3, 0, block_bytes, true);
  other_ns.mutable_namespace_()->set_model_id("not/configured");
  expect_refused({other_ns}, grpc::StatusCode::INVALID_ARGUMENT, "unknown namespace");
  expect_refused({put_chunk(keys[3], &keys[2], b3, 0, 1000, true)}, grpc::StatusCode::INVALID_ARGUMENT,
                 "a stream that stops inside a block");
  expect_refused({put_chunk(BlockKey{42, 0}, nullptr, b3, 0, block_bytes, true)}, grpc::StatusCode::INVALID_ARGUMENT,
                 "a key whose low half is 0");
  auto gap = put_chunk(keys[3], &keys[2], b3, 1000, 1000, false);
  expect_refused({put_chunk(keys[3], &keys[2], b3, 0, 500, true), gap}, grpc::StatusCode::INVALID_ARGUMENT,
                 "a gap between chunks");
  EXPECT_EQ(n.client->match(keys).overall, 3u) << "nothing broken was stored; nothing stored was lost";
}

TEST(KvtierdGrpc, AdminStatsClearAndEvict) {
  GrpcNode n;
  const auto keys = n.client->keys(*n.ns, testing::tokens(5 * 16, 9));
  testing::put_chain(*n.client, *n.ns, keys);
  auto admin = v1::Admin::NewStub(n.channel);
  auto locality = v1::Locality::NewStub(n.channel);
  {
    grpc::ClientContext c;
    v1::MatchPrefixResponse r;
    ASSERT_TRUE(locality->MatchPrefix(&c, by_tokens(testing::tokens(5 * 16, 9)), &r).ok());
  }
  grpc::ClientContext sc;
  v1::GetStatsResponse stats;
  ASSERT_TRUE(admin->GetStats(&sc, v1::GetStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.node_id(), n.node);
  EXPECT_NE(stats.epoch(), 0u);
  EXPECT_EQ(stats.blocks_asked(), 5u);
  std::map<v1::Tier, v1::TierStats> tiers;
  for (const auto& t : stats.tiers()) tiers[t.tier()] = t;
  EXPECT_EQ(tiers[v1::TIER_HOST].blocks(), 5u);
  EXPECT_EQ(tiers[v1::TIER_HOST].hits(), 5u);
  EXPECT_EQ(tiers[v1::TIER_HOST].bytes(), 5 * n.ns->ns.bytes_per_block());
  EXPECT_GT(tiers[v1::TIER_HOST].capacity_bytes(), 0u);
  EXPECT_GE(stats.events_next_seq(), 5u);

  grpc::ClientContext bad_evict_ctx;
  v1::EvictRequest bad_evict;
  bad_evict.set_tier(v1::TIER_HBM);
  bad_evict.set_bytes(1);
  v1::EvictResponse er;
  EXPECT_EQ(admin->Evict(&bad_evict_ctx, bad_evict, &er).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext bad_clear_ctx;
  v1::ClearNamespaceRequest bad_clear;
  bad_clear.mutable_namespace_()->set_model_id("not/configured");
  v1::ClearNamespaceResponse cr;
  EXPECT_EQ(admin->ClearNamespace(&bad_clear_ctx, bad_clear, &cr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // One block pinned by an engine stays (busy); the rest go from every tier.
  auto pinned = n.client->acquire({keys.data(), 1});
  ASSERT_TRUE(pinned.ok());
  ASSERT_EQ(pinned->size(), 1u);
  grpc::ClientContext clear_ctx;
  v1::ClearNamespaceRequest clear;
  clear.mutable_namespace_()->set_model_id("node-test/model");
  ASSERT_TRUE(admin->ClearNamespace(&clear_ctx, clear, &cr).ok());
  EXPECT_EQ(cr.removed(), 4u);
  EXPECT_EQ(cr.busy(), 1u);
  EXPECT_TRUE(n.client->index().contains(keys[0]));
  for (size_t i = 1; i < keys.size(); ++i) EXPECT_FALSE(n.client->index().contains(keys[i]));
  pinned->clear();
  grpc::ClientContext again_ctx;
  ASSERT_TRUE(admin->ClearNamespace(&again_ctx, clear, &cr).ok());
  EXPECT_EQ(cr.removed(), 1u);
  EXPECT_EQ(cr.busy(), 0u);
  EXPECT_EQ(n.client->stats().host_used_bytes, 0u) << "the arena space came back";
}

TEST(KvtierdGrpc, MetricsEndpointServesPrometheusText) {
  GrpcNode n;
  const auto tokens = testing::tokens(3 * 16, 10);
  testing::put_chain(*n.client, *n.ns, n.client->keys(*n.ns, tokens));
  auto locality = v1::Locality::NewStub(n.channel);
  grpc::ClientContext c;
  v1::MatchPrefixResponse r;
  ASSERT_TRUE(locality->MatchPrefix(&c, by_tokens(tokens), &r).ok());
  const std::string page = testing::http_get(n.metrics_port, "/metrics");
  EXPECT_NE(page.find("HTTP/1.1 200 OK"), std::string::npos) << page;
  EXPECT_NE(page.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(page.find("kvtier_tier_blocks{tier=\"host\"} 3\n"), std::string::npos) << page;
  EXPECT_NE(page.find("kvtier_tier_hits_total{tier=\"host\"} 3\n"), std::string::npos);
  EXPECT_NE(page.find("kvtier_hit_ratio{tier=\"host\"} 1\n"), std::string::npos);
  EXPECT_NE(page.find("kvtier_requests_total{rpc=\"MatchPrefix\",outcome=\"ok\"} 1\n"), std::string::npos);
  EXPECT_NE(page.find("kvtier_request_duration_seconds_count{rpc=\"MatchPrefix\"} 1\n"), std::string::npos);
  EXPECT_NE(page.find("# TYPE kvtier_request_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(page.find("kvtier_node_info{node=\"" + n.node + "\""), std::string::npos);
  // The tiers' and the mover's own counters, through their visitors.
  EXPECT_NE(page.find("# TYPE kvtier_host_arena_used_bytes gauge\nkvtier_host_arena_used_bytes "), std::string::npos);
  EXPECT_NE(page.find("# TYPE kvtier_ssd_bytes_written_total counter\n"), std::string::npos);
  EXPECT_NE(page.find("kvtier_demotions_total 0\n"), std::string::npos);
  EXPECT_NE(page.find("kvtier_load_requests_total 0\n"), std::string::npos);
  EXPECT_NE(page.find("kvtier_events_total "), std::string::npos);
  // The process's heap (glibc's figures; zero under a sanitizer's allocator).
  EXPECT_NE(page.find("# TYPE kvtier_heap_allocated_bytes gauge\nkvtier_heap_allocated_bytes "), std::string::npos);
  EXPECT_NE(page.find("# TYPE kvtier_heap_trims_total counter\n"), std::string::npos);
  // Families come from many components' visitors: each is declared once.
  std::set<std::string> families;
  for (size_t at = page.find("# TYPE "); at != std::string::npos; at = page.find("# TYPE ", at + 1)) {
    const size_t name_at = at + 7;
    const std::string name = page.substr(name_at, page.find(' ', name_at) - name_at);
    EXPECT_TRUE(families.insert(name).second) << "family declared twice: " << name;
  }
  EXPECT_GE(families.size(), 40U);
  EXPECT_NE(testing::http_get(n.metrics_port, "/nothing").find("404"), std::string::npos);
}

}  // namespace
}  // namespace kvtier::node
