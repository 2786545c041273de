// `kvtier-bench indexer`: kvtier-indexer's cluster index.
//   ingest_events_per_s: 16 simulated kvtierd nodes (in-process gRPC Events services streaming
//     prepared batches of 4096 events: blocks stored and removed) followed by the indexer's real
//     NodeFollowers into one ClusterIndex; events applied per second, all nodes together.
//     Baseline: the same events applied to a std::unordered_map under a mutex, in one thread.
//   score_p99_us: ScoreNodes over gRPC (the indexer's service, in process) for a 128k-token prompt
//     (8,192 keys of 16 tokens) across 64 nodes that hold prefixes of it of every length, in all
//     three tiers, beside background blocks of their own.
//   score_vs_redis: the same scoring the way llm-d's Redis backend does it (a hash per key, pod →
//     tier; per request one pipelined HKEYS per key; prefixes read off the replies), against
//     Redis on loopback: median Redis time over median kvtier time.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <absl/synchronization/mutex.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_report.h"
#include "bench_timer.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "kvtier/v1/scheduler.grpc.pb.h"
#include "redis_server.h"
#include "server/indexer/follower_set.h"
#include "server/indexer/scheduler_service.h"
#include "suites.h"

namespace kvtier::bench {
namespace {

constexpr uint32_t kBatchEvents = 4096;
constexpr size_t kScoreKeys = 8192;  // 128k tokens at 16 per block
constexpr size_t kScoreNodes = 64;

std::string key_bytes(const BlockKey& k) {
  const auto b = k.to_bytes();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// --- ingestion --------------------------------------------------------------------------------

// One simulated kvtierd: an empty snapshot, then its prepared batches, then silence.
class SimulatedEvents final : public v1::Events::Service {
 public:
  SimulatedEvents(std::string node, uint64_t events, uint64_t seed) : node_(std::move(node)) {
    std::mt19937_64 rng(seed);
    std::vector<BlockKey> live;
    v1::EventBatch batch;
    for (uint64_t seq = 0; seq < events; ++seq) {
      if (batch.events_size() == 0) {
        batch.set_node_id(node_);
        batch.set_epoch(1);
      }
      v1::Event* e = batch.add_events();
      e->set_seq(seq);
      // Three stores for each removal of an earlier block, as a cache near its watermark.
      if (seq % 4 == 3 && !live.empty()) {
        const size_t i = rng() % live.size();
        e->set_kind(v1::Event::KIND_REMOVED);
        e->set_key(key_bytes(live[i]));
        e->set_tiers_before(2);
        e->set_tiers_after(0);
        live[i] = live.back();
        live.pop_back();
      } else {
        const BlockKey k{rng(), rng() | 1};
        live.push_back(k);
        e->set_kind(v1::Event::KIND_STORED);
        e->set_key(key_bytes(k));
        e->set_tiers_before(0);
        e->set_tiers_after(2);
      }
      e->set_payload_bytes(2 << 20);
      if (static_cast<uint32_t>(batch.events_size()) == kBatchEvents || seq + 1 == events) {
        batch.set_next_seq(seq + 1);
        batches_.push_back(std::move(batch));
        batch.Clear();
      }
    }
  }
  grpc::Status Snapshot(grpc::ServerContext*, const v1::SnapshotRequest*, v1::SnapshotResponse* r) override {
    r->set_node_id(node_);
    r->set_epoch(1);
    r->set_as_of_seq(0);
    return grpc::Status::OK;
  }
  grpc::Status Subscribe(grpc::ServerContext* ctx, const v1::SubscribeRequest* req,
                         grpc::ServerWriter<v1::EventBatch>* w) override {
    for (const v1::EventBatch& b : batches_) {
      if (b.next_seq() <= req->from_seq()) continue;
      if (!w->Write(b)) return grpc::Status::OK;
    }
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return grpc::Status::OK;
  }
  const std::vector<v1::EventBatch>& batches() const { return batches_; }

 private:
  std::string node_;
  std::vector<v1::EventBatch> batches_;
};

struct IngestResult {
  double events_per_s = 0;
  double baseline_per_s = 0;
  uint64_t residency = 0;
};

IngestResult measure_ingest(size_t nodes, uint64_t events_per_node) {
  std::vector<std::unique_ptr<SimulatedEvents>> services;
  std::vector<std::unique_ptr<grpc::Server>> servers;
  std::set<std::string> addresses;
  for (size_t n = 0; n < nodes; ++n) {
    services.push_back(std::make_unique<SimulatedEvents>(fmt::format("sim-{}", n), events_per_node, 1000 + n));
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    b.RegisterService(services.back().get());
    servers.push_back(b.BuildAndStart());
    addresses.insert(fmt::format("127.0.0.1:{}", port));
  }
  IngestResult out;
  {
    cluster::ClusterIndex index;
    indexer::FollowerSet followers(index, {});
    const double start = now_seconds();
    followers.reconcile(addresses);
    const uint64_t total = events_per_node * nodes;
    for (;;) {
      uint64_t applied = 0;
      for (const auto& s : followers.status()) applied += s.events;
      if (applied >= total) break;
      if (now_seconds() - start > 300) break;
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    out.events_per_s = static_cast<double>(total) / (now_seconds() - start);
    out.residency = index.stats().residency;
  }
  for (auto& s : servers) s->Shutdown(std::chrono::system_clock::now());
  // Baseline: the same events into an unordered_map under a mutex, one thread, no transport.
  std::mutex mu;
  std::unordered_map<BlockKey, uint8_t> map;
  const double start = now_seconds();
  uint64_t applied = 0;
  for (const auto& s : services) {
    for (const v1::EventBatch& b : s->batches()) {
      for (const v1::Event& e : b.events()) {
        const BlockKey k = BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(e.key().data()));
        std::lock_guard lock(mu);
        if (e.tiers_after() != 0) {
          map[k] |= static_cast<uint8_t>(e.tiers_after());
        } else {
          map.erase(k);
        }
        ++applied;
      }
    }
  }
  out.baseline_per_s = static_cast<double>(applied) / (now_seconds() - start);
  return out;
}

// --- scoring ----------------------------------------------------------------------------------

struct ScoreWorld {
  std::vector<BlockKey> prompt;
  std::vector<size_t> prefix_len;  // per node
  std::vector<std::vector<BlockKey>> background;
};

// Node n holds the first (n+1)/64 of the prompt: its first third in HBM, the next in host
// memory, the rest on SSD; and `background` blocks of its own in host memory.
ScoreWorld make_world(size_t background) {
  ScoreWorld w;
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < kScoreKeys; ++i) w.prompt.push_back({rng(), rng() | 1});
  w.background.resize(kScoreNodes);
  for (size_t n = 0; n < kScoreNodes; ++n) {
    w.prefix_len.push_back(kScoreKeys * (n + 1) / kScoreNodes);
    for (size_t i = 0; i < background; ++i) w.background[n].push_back({rng(), rng() | 1});
  }
  return w;
}

Tier tier_of(size_t i, size_t len) { return i < len / 3 ? Tier::kHbm : i < 2 * len / 3 ? Tier::kHost : Tier::kSsd; }

// Latencies (µs) of Redis scoring, llm-d's way; empty (why in *why) without Redis.
std::vector<double> redis_scores(const ScoreWorld& w, int calls, std::string* why, bool* wrong) {
  auto server = RedisServer::start(why);
  if (!server) return {};
  redisContext* c = server->connect();
  if (c == nullptr) {
    *why = "could not connect to redis-server";
    return {};
  }
  static constexpr const char* kTierNames[] = {"gpu", "cpu", "disk"};
  size_t pending = 0;
  const auto drain = [&] {
    for (; pending > 0; --pending) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) == REDIS_OK) freeReplyObject(reply);
    }
  };
  for (size_t n = 0; n < kScoreNodes; ++n) {
    const std::string pod = fmt::format("pod-{}", n);
    for (size_t i = 0; i < w.prefix_len[n]; ++i) {
      const std::string key = w.prompt[i].to_hex();
      redisAppendCommand(c, "HSET %b %b %s", key.data(), key.size(), pod.data(), pod.size(),
                         kTierNames[tier_index(tier_of(i, w.prefix_len[n]))]);
      if (++pending == 4096) drain();
    }
    for (const BlockKey& k : w.background[n]) {
      const std::string key = k.to_hex();
      redisAppendCommand(c, "HSET %b %b cpu", key.data(), key.size(), pod.data(), pod.size());
      if (++pending == 4096) drain();
    }
  }
  drain();
  std::vector<double> us;
  std::vector<std::string> keys;
  for (const BlockKey& k : w.prompt) keys.push_back(k.to_hex());
  for (int call = 0; call < calls; ++call) {
    const double start = now_seconds();
    for (const std::string& key : keys) redisAppendCommand(c, "HKEYS %b", key.data(), key.size());
    // Per pod, the longest run of leading keys it appears in.
    std::unordered_map<std::string, size_t> prefix;
    size_t i = 0;
    for (; i < keys.size(); ++i) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK) break;
      const auto* r = static_cast<redisReply*>(reply);
      if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t e = 0; e < r->elements; ++e) {
          std::string pod(r->element[e]->str, r->element[e]->len);
          auto it = prefix.find(pod);
          if (i == 0 && it == prefix.end()) {
            prefix.emplace(std::move(pod), 1);
          } else if (it != prefix.end() && it->second == i) {
            ++it->second;
          }
        }
      }
      freeReplyObject(reply);
    }
    us.push_back((now_seconds() - start) * 1e6);
    if (prefix["pod-63"] != kScoreKeys || prefix["pod-0"] != w.prefix_len[0]) *wrong = true;
  }
  redisFree(c);
  return us;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int run_indexer_suite(const SuiteOptions& opt) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as the indexer does
  spdlog::set_level(spdlog::level::warn);  // the followers' "following ..." lines are not the report
  const size_t ingest_nodes = 16;
  const uint64_t events_per_node = opt.quick ? (1 << 16) : (1 << 18);
  const size_t background = opt.quick ? 5000 : 20000;
  const int score_calls = opt.quick ? 100 : 400;
  const int redis_calls = opt.quick ? 10 : 30;

  const IngestResult ingest = measure_ingest(ingest_nodes, events_per_node);

  // Scoring: the index filled directly (the events path is measured above), served by the
  // indexer's own service over loopback gRPC.
  const ScoreWorld w = make_world(background);
  cluster::ClusterIndex index;
  for (size_t n = 0; n < kScoreNodes; ++n) {
    const cluster::NodeSlot s = index.add_node(fmt::format("pod-{}", n)).value();
    for (size_t i = 0; i < w.prefix_len[n]; ++i) {
      index.stored(s, tier_of(i, w.prefix_len[n]), std::span(&w.prompt[i], 1));
    }
    index.stored(s, Tier::kHost, w.background[n]);
  }
  indexer::FollowerSet no_followers(index, {});
  const std::vector<std::unique_ptr<indexer::VllmEngineFollower>> no_engines;
  const services::NamespaceCatalog no_namespaces({});
  const auto open_access = security::AccessPolicy::open({}).value();  // the default: every caller holds every role
  indexer::SchedulerService service(index, no_followers, no_engines, no_namespaces, {}, cluster::TierWeights{}, {},
                                    *open_access);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  indexer::configure_scheduler_server(builder);  // as kvtier-indexer serves it
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  auto stub = v1::Scheduler::NewStub(
      grpc::CreateCustomChannel(fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials(), args));
  v1::ScoreNodesRequest req;
  for (const BlockKey& k : w.prompt) req.mutable_packed_keys()->append(key_bytes(k));
  std::vector<double> score_us;
  bool wrong = false;
  for (int call = -10; call < score_calls; ++call) {  // 10 to warm up
    grpc::ClientContext ctx;
    v1::ScoreNodesResponse resp;
    const double start = now_seconds();
    const grpc::Status s = stub->ScoreNodes(&ctx, req, &resp);
    const double us = (now_seconds() - start) * 1e6;
    if (!s.ok() || resp.best_node() != "pod-63" || resp.nodes(0).prefix_blocks() != kScoreKeys) wrong = true;
    if (call >= 0) score_us.push_back(us);
  }
  server->Shutdown(std::chrono::system_clock::now());
  // The same scoring without the transport: what the index walk itself costs.
  std::vector<double> walk_us;
  for (int call = 0; call < score_calls / 4; ++call) {
    const double start = now_seconds();
    const cluster::ScoreResult r = cluster::score_nodes(index, w.prompt, {}, cluster::TierWeights{}, 16);
    walk_us.push_back((now_seconds() - start) * 1e6);
    if (r.nodes.empty() || r.nodes[0].name != "pod-63") wrong = true;
  }

  std::string redis_why;
  bool redis_wrong = false;
  const std::vector<double> redis_us = redis_scores(w, redis_calls, &redis_why, &redis_wrong);
  const double score_p50 = percentile(score_us, 0.5);
  const double score_p99 = percentile(score_us, 0.99);
  const double redis_p50 = percentile(redis_us, 0.5);
  const double vs_redis = redis_us.empty() ? 0 : redis_p50 / score_p50;

  Table table({"figure", "kvtier", "baseline", "ratio", "note"});
  table.add_row({"ingest (events/s)", fmt::format("{:.0f}", ingest.events_per_s),
                 fmt::format("{:.0f}", ingest.baseline_per_s), fixed(ingest.events_per_s / ingest.baseline_per_s, 2),
                 fmt::format("{} simulated nodes × {} events over gRPC, {} per batch; baseline: unordered_map + "
                             "mutex, one thread, no transport",
                             ingest_nodes, events_per_node, kBatchEvents)});
  table.add_row(
      {"ScoreNodes p99 (us)", fmt::format("{:.0f}", score_p99), "-", "-",
       fmt::format("{} keys × {} nodes over gRPC, p50 {:.0f} us ({:.0f} us of it scoring in process), "
                   "{} calls; index {} keys",
                   kScoreKeys, kScoreNodes, score_p50, percentile(walk_us, 0.5), score_us.size(), index.stats().keys)});
  table.add_row({"score vs Redis (x)", fmt::format("{:.0f} us", score_p50),
                 redis_us.empty() ? "n/a" : fmt::format("{:.0f} us", redis_p50), fixed(vs_redis, 1),
                 redis_us.empty() ? redis_why : "medians; llm-d's Redis backend: pipelined HKEYS per key"});
  fmt::print("kvtier-bench indexer: on this machine's {} cores\n{}", std::thread::hardware_concurrency(),
             table.render());
  const bool sound = !wrong && !redis_wrong;
  if (!sound) fmt::print("kvtier-bench indexer: WRONG ANSWERS in the run\n");
  if (opt.json) {
    JsonObject j;
    j.add("suite", "indexer")
        .add("ingest_events_per_s", ingest.events_per_s)
        .add("score_p99_us", score_p99)
        .add("score_vs_redis", vs_redis)
        .add("ingest_baseline_events_per_s", ingest.baseline_per_s)
        .add("score_p50_us", score_p50)
        .add("score_in_process_p50_us", percentile(walk_us, 0.5))
        .add("redis_score_p50_us", redis_p50)
        .add("quick", opt.quick);
    fmt::print("{}\n", j.str());
  }
  return sound ? 0 : 1;
}

}  // namespace kvtier::bench
