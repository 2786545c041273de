// Fuzz target: every kvtier.v1 request handler fed protobuf bytes from the network. The first byte
// picks the method; the rest is the request as gRPC would hand it over (PutBlocks: a stream of
// messages, each behind a 2-byte length). Handlers run against a real node in this process (index,
// host arena and SSD tier in segments and files of their own, the node's client, the event log)
// and a scheduler over an empty cluster index. Each call must end in a status, never a crash, and
// leave the index consistent; blocks a valid PutBlocks stores must hold the bytes it sent.
// Subscribe, a server stream, goes through an in-process gRPC server (no port): its batches must be
// resync markers or gap-free events of the node's epoch.
#include <absl/synchronization/mutex.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include <chrono>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "events/event_log.h"
#include "server/indexer/follower_set.h"
#include "server/indexer/scheduler_service.h"
#include "server/node/node_tiers.h"
#include "server/security/access_policy.h"
#include "server/services/admin_service.h"
#include "server/services/events_service.h"
#include "server/services/locality_service.h"
#include "server/services/put_blocks_receiver.h"
#include "server/services/request_checks.h"

namespace {

using namespace kvtier;  // NOLINT(google-build-using-namespace): a test's fixture

NamespaceSpec fuzz_namespace() {
  NamespaceSpec s;
  s.model_id = "fuzz/model";
  s.layout = {KvDType::kBFloat16, 16, 1, 1, 64, 2};  // 4 KiB blocks: quick to put and check
  return s;
}

struct Node {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kvtier-fuzz-grpc-" + std::to_string(::getpid()));
  node::NodeTiersOptions options;
  std::unique_ptr<node::NodeTiers> tiers;
  std::unique_ptr<Client> client;
  std::optional<NamespaceHandle> ns;
  std::vector<BlockKey> chain;
  services::NamespaceCatalog catalog{{Namespace::create(fuzz_namespace()).value()}};
  services::RequestLimits limits{4096, 256, 16, 64, 64 << 10};
  services::ServiceMetrics metrics;
  std::unique_ptr<security::AccessPolicy> access = security::AccessPolicy::open({}).value();
  std::unique_ptr<events::EventLog> log;
  std::unique_ptr<services::LocalityService> locality;
  std::unique_ptr<services::EventsService> events;
  std::unique_ptr<services::AdminService> admin;
  cluster::ClusterIndex cluster;
  indexer::FollowerSet followers{cluster, indexer::FollowerOptions{}};
  std::vector<std::unique_ptr<indexer::VllmEngineFollower>> engines;
  std::unique_ptr<indexer::SchedulerService> scheduler;
  std::unique_ptr<grpc::Server> server;  // Subscribe's stream, in process
  std::shared_ptr<grpc::Channel> channel;

  Node() {
    google::protobuf::SetLogHandler(nullptr);  // its complaints about fuzzed strings are not news
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    options.node_name = "fuzz-" + std::to_string(::getpid());
    options.shm_prefix = "kvtierfuzz";
    options.index_capacity = 1024;
    options.host_bytes = 2ULL << 20;
    options.slab_bytes = 1ULL << 20;
    options.ssd.files = {(dir / "data-0.kvt").string()};
    options.ssd.region_bytes = 1ULL << 20;
    options.ssd.bytes = 8ULL << 20;
    options.ssd.metadata_dir = (dir / "catalog").string();
    options.ssd.io_bytes = 256 << 10;
    options.ssd.queue_depth = 4;
    options.ssd.write_buffers = 2;
    options.ssd.direct_io = false;
    options.admission.min_accesses = 1;
    options.background = false;
    (void)node::NodeTiers::destroy_segments(options);
    tiers = node::NodeTiers::open(options).value();
    ClientOptions co;
    co.node_name = options.node_name;
    co.shm_prefix = options.shm_prefix;
    client = Client::open(co).value();
    ns = client->register_namespace(fuzz_namespace()).value();
    std::vector<TokenId> tokens(8 * 16);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<TokenId>(i);
    chain = client->keys(*ns, tokens);
    log = std::make_unique<events::EventLog>(tiers->index(), events::EventLogOptions{options.node_name, 1024});
    locality = std::make_unique<services::LocalityService>(tiers->index(), catalog, limits, metrics, *access);
    events = std::make_unique<services::EventsService>(*log, limits, metrics, *access);
    admin = std::make_unique<services::AdminService>(*tiers, *log, catalog, metrics, *access);
    // As kvtierd does (grpc_frontend.cc): Debian's Abseil keeps absl::Mutex deadlock detection on,
    // and its graph, shared by gRPC's threads, is itself a data race under TSan.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    grpc::ServerBuilder builder;
    builder.RegisterService(events.get());
    server = builder.BuildAndStart();
    if (!server) std::abort();
    channel = server->InProcessChannel(grpc::ChannelArguments());
    indexer::EngineNamespace engine;
    engine.model_id = "fuzz/engine";
    engine.profile.kind = KeyProfileKind::kVllmSha256Cbor;
    engine.profile.model_name = engine.model_id;
    engine.profile.hash_seed = "0";
    scheduler = std::make_unique<indexer::SchedulerService>(
        cluster, followers, engines, catalog, std::vector<indexer::EngineNamespace>{engine}, cluster::TierWeights{},
        indexer::SchedulerLimits{4096, 256, 16}, *access);
    restock();
  }
  ~Node() {
    server->Shutdown(std::chrono::system_clock::now());
    scheduler.reset();
    admin.reset();
    events.reset();
    locality.reset();
    log.reset();
    client.reset();
    tiers.reset();
    (void)node::NodeTiers::destroy_segments(options);
    std::filesystem::remove_all(dir);
  }

  // The chain every lookup can hit: put back after a clear or an eviction took it.
  void restock() {
    std::vector<uint8_t> bytes(ns->ns.bytes_per_block());
    for (size_t i = 0; i < chain.size(); ++i) {
      std::memset(bytes.data(), static_cast<int>(i + 1), bytes.size());
      (void)client->put(*ns, chain[i], i == 0 ? ns->ns.root() : chain[i - 1], bytes);
    }
  }
};

Node& the_node() {
  static Node n;
  return n;
}

template <typename Message>
bool parse(Message& m, const uint8_t* data, size_t size) {
  return m.ParseFromArray(data, static_cast<int>(size));
}

void put_blocks(Node& n, const uint8_t* data, size_t size) {
  v1::PutBlocksResponse response;
  services::PutBlocksReceiver receiver(
      *n.client, n.catalog, n.limits, n.metrics,
      [&n](const Namespace& ns) { return n.client->register_namespace(ns.spec()); }, response);
  // Messages behind 2-byte lengths, as many as the input holds.
  std::vector<v1::PutBlocksRequest> sent;
  while (size >= 2) {
    const size_t len = std::min<size_t>(size - 2, data[0] | (size_t{data[1]} << 8));
    v1::PutBlocksRequest msg;
    const bool ok = parse(msg, data + 2, len);
    data += 2 + len;
    size -= 2 + len;
    if (!ok) break;  // gRPC ends the stream on bytes that are not a message
    if (!receiver.receive(msg).ok()) return;
    sent.push_back(std::move(msg));
  }
  if (!receiver.finish().ok()) return;
  // What a stream that succeeded stored must be what it sent: each whole, single-chunk block's
  // bytes are the ones it carried.
  for (const v1::PutBlocksRequest& m : sent) {
    if (!m.has_chunk() || m.chunk().offset() != 0 || !m.chunk().last()) continue;
    if (m.chunk().key().size() != BlockKey::kBytes) continue;
    const BlockKey key = BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(m.chunk().key().data()));
    auto blocks = n.client->acquire({&key, 1});
    if (!blocks.ok() || blocks->empty()) continue;  // evicted since, or put earlier with other bytes
    const HostBlock& b = blocks->front();
    if (b.size() == m.chunk().data().size() && std::memcmp(b.data(), m.chunk().data().data(), b.size()) != 0) {
      // The same key may hold bytes an earlier input put: only a block this stream stored counts.
      if (response.stored() > 0 && response.existed() == 0 && response.dropped() == 0) __builtin_trap();
    }
  }
}

// Reads what a Subscribe stream sends for a moment, then cancels it, as a subscriber that goes
// away does. Every batch is a resync marker or this epoch's events, gap-free across batches.
void subscribe(Node& n, const v1::SubscribeRequest& req) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(20));
  auto stream = v1::Events::NewStub(n.channel)->Subscribe(&c, req);
  v1::EventBatch batch;
  uint64_t expected = 0;  // the next sequence, once a batch said it
  for (int i = 0; i < 4 && stream->Read(&batch); ++i) {
    if (batch.resync()) continue;
    if (batch.epoch() != n.log->epoch()) __builtin_trap();
    for (const v1::Event& e : batch.events()) {
      if (expected != 0 && e.seq() != expected) __builtin_trap();  // a gap or a repeat
      expected = e.seq() + 1;
    }
    if (expected != 0 && batch.next_seq() != expected) __builtin_trap();
    expected = batch.next_seq();
  }
  c.TryCancel();
  (void)stream->Finish();
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer names the entry point
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Node& n = the_node();
  const uint8_t method = data[0] % 11;
  ++data;
  --size;
  grpc::ServerContext context;
  (void)n.log->poll();  // the earlier inputs' changes become events, as the daemon's event thread does
  switch (method) {
    case 0: {
      v1::MatchPrefixRequest req;
      v1::MatchPrefixResponse resp;
      if (parse(req, data, size)) (void)n.locality->match(req, &resp);
      break;
    }
    case 1: {
      v1::MatchPrefixBatchRequest req;
      v1::MatchPrefixBatchResponse resp;
      if (parse(req, data, size)) (void)n.locality->match_batch(req, &resp);
      break;
    }
    case 2: {  // GetBlocks: the checks, then the pins the stream would hold
      v1::GetBlocksRequest req;
      services::GetBlocksAsk ask;
      if (parse(req, data, size) && services::check_get_blocks(req, n.limits, ask).ok()) {
        (void)n.client->acquire(ask.keys);
      }
      break;
    }
    case 3: put_blocks(n, data, size); break;
    case 4: {
      v1::SnapshotRequest req;
      v1::SnapshotResponse resp;
      if (parse(req, data, size)) (void)n.events->Snapshot(&context, &req, &resp);
      break;
    }
    case 5: {
      v1::GetStatsRequest req;
      v1::GetStatsResponse resp;
      if (parse(req, data, size)) (void)n.admin->GetStats(&context, &req, &resp);
      break;
    }
    case 6: {
      v1::ClearNamespaceRequest req;
      v1::ClearNamespaceResponse resp;
      if (parse(req, data, size) && n.admin->ClearNamespace(&context, &req, &resp).ok()) n.restock();
      break;
    }
    case 7: {
      v1::EvictRequest req;
      v1::EvictResponse resp;
      if (parse(req, data, size) && n.admin->Evict(&context, &req, &resp).ok()) n.restock();
      break;
    }
    case 8: {
      v1::ScoreNodesRequest req;
      v1::ScoreNodesResponse resp;
      if (parse(req, data, size)) (void)n.scheduler->ScoreNodes(&context, &req, &resp);
      break;
    }
    case 9: {
      v1::ListNodesRequest req;
      v1::ListNodesResponse resp;
      if (parse(req, data, size)) (void)n.scheduler->ListNodes(&context, &req, &resp);
      break;
    }
    default: {
      v1::SubscribeRequest req;
      if (!parse(req, data, size)) break;
      if (req.epoch() == 1) req.set_epoch(n.log->epoch());  // 1 stands for this run's (random) epoch
      subscribe(n, req);
      break;
    }
  }
  if (!n.tiers->index().check_invariants().ok()) __builtin_trap();
  return 0;
}
