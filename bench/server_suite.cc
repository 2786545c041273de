// `kvtier-bench server`: kvtierd's gRPC services under load, the daemon and the load generator
// sharing this machine's cores.
//   match_qps: MatchPrefix with 64 keys per request, as many as a closed loop of in-flight
//     requests gets answered (async client, several channels).
//   match_p99_us_at_20k_qps: an open loop sending 20k requests/s on a fixed schedule; latency
//     from each request's scheduled time (no coordinated omission).
//   getblocks_vs_tcp: GetBlocks of a 64 MiB chain of 256 KiB host blocks, every chunk's checksum
//     verified by the receiver, against a plain loopback TCP stream of the same bytes measured in
//     the same run (send() from one buffer, recv() into another).
//   events_per_s_one_subscriber / events_per_s_each_of_8: events already in the node's replay
//     ring (inserted and removed HBM records), streamed to one subscriber, then to 8 at once.
#include <absl/synchronization/mutex.h>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>
#include <thread>
#include <vector>

#include "bench_node.h"
#include "bench_report.h"
#include "bench_timer.h"
#include "kvtier/checksum.h"
#include "kvtier/client.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/blocks.grpc.pb.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "loopback_tcp.h"
#include "suites.h"

namespace kvtier::bench {
namespace {

constexpr size_t kMatchKeys = 64;
constexpr uint64_t kBlockBytes = 256 << 10;
constexpr const char* kModel = "bench/server";

NamespaceSpec bench_model() {
  NamespaceSpec s;
  s.model_id = kModel;
  s.layout = {KvDType::kBFloat16, 16, 8, 4, 128, 2};  // 256 KiB blocks
  return s;
}

std::string key_bytes(const BlockKey& k) {
  const auto b = k.to_bytes();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// --- MatchPrefix ---------------------------------------------------------------------------

// An asynchronous unary call in flight: what the receiving side of a load loop reads.
struct PendingRpc {
  virtual ~PendingRpc() = default;
  grpc::ClientContext ctx;
  grpc::Status status;
  double scheduled = 0;
};

struct MatchCall final : PendingRpc {
  v1::MatchPrefixResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::MatchPrefixResponse>> rpc;
};

using Sender = std::function<void(size_t i, grpc::CompletionQueue& cq, double scheduled)>;

MatchCall* send_match(v1::Locality::Stub& stub, const v1::MatchPrefixRequest& req, grpc::CompletionQueue& cq,
                      double scheduled) {
  auto* call = new MatchCall;
  call->scheduled = scheduled;
  call->rpc = stub.PrepareAsyncMatchPrefix(&call->ctx, req, &cq);
  call->rpc->StartCall();
  call->rpc->Finish(&call->response, &call->status, call);
  return call;
}

struct MatchLoad {
  double qps = 0;
  uint64_t errors = 0;
  uint64_t wrong = 0;  // answers with an unexpected match length
};

// Closed loop: `in_flight` requests outstanding per thread, for `seconds`.
MatchLoad closed_loop(const std::vector<std::unique_ptr<v1::Locality::Stub>>& stubs, const v1::MatchPrefixRequest& req,
                      uint32_t expect, int threads, int in_flight, double seconds) {
  std::atomic<uint64_t> done{0}, errors{0}, wrong{0};
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads));
  const double start = now_seconds();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      grpc::CompletionQueue cq;
      auto& stub = *stubs[static_cast<size_t>(t) % stubs.size()];
      for (int i = 0; i < in_flight; ++i) send_match(stub, req, cq, 0);
      uint64_t mine = 0, outstanding = static_cast<uint64_t>(in_flight);
      void* tag = nullptr;
      bool ok = false;
      while (outstanding > 0 && cq.Next(&tag, &ok)) {
        auto* call = static_cast<MatchCall*>(tag);
        --outstanding;
        if (!call->status.ok()) errors.fetch_add(1);
        if (call->response.matched_blocks() != expect) wrong.fetch_add(1);
        delete call;
        ++mine;
        if (now_seconds() - start < seconds) {
          send_match(stub, req, cq, 0);
          ++outstanding;
        }
      }
      done.fetch_add(mine);
      cq.Shutdown();
      while (cq.Next(&tag, &ok)) {
      }
    });
  }
  for (auto& w : workers) w.join();
  return {static_cast<double>(done.load()) / (now_seconds() - start), errors.load(), wrong.load()};
}

struct OpenLoopResult {
  double p50_us = 0, p99_us = 0, p999_us = 0, achieved_qps = 0;
  uint64_t errors = 0;
};

// Open loop at `qps` for `seconds`: a sender thread issues each request at its scheduled time
// (sleeping in between, so it leaves the cores to the server), alternating between connections;
// a receiver thread blocks on the completion queue, so an answer is timed the moment it lands.
// Latency counts from the scheduled time, so a late sender shows up in the figures.
OpenLoopResult open_loop(const Sender& send, double qps, double seconds) {
  grpc::CompletionQueue cq;
  const auto total = static_cast<uint64_t>(qps * seconds);
  std::vector<double> latencies;
  latencies.reserve(total);
  uint64_t errors = 0;
  double finished = 0;
  std::thread receiver([&] {
    void* tag = nullptr;
    bool ok = false;
    while (latencies.size() < total && cq.Next(&tag, &ok)) {
      auto* call = static_cast<PendingRpc*>(tag);
      latencies.push_back((now_seconds() - call->scheduled) * 1e6);
      if (!call->status.ok()) ++errors;
      delete call;
    }
    finished = now_seconds();
  });
  const double start = now_seconds() + 0.01;
  const double interval = 1.0 / qps;
  for (uint64_t sent = 0; sent < total;) {
    const double now = now_seconds();
    for (; sent < total && start + static_cast<double>(sent) * interval <= now; ++sent) {
      send(sent, cq, start + static_cast<double>(sent) * interval);
    }
    const double wait = start + static_cast<double>(sent) * interval - now_seconds();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(static_cast<int64_t>(wait * 1e9)));
  }
  receiver.join();
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  std::sort(latencies.begin(), latencies.end());
  const auto pct = [&](double p) {
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * static_cast<double>(latencies.size())))];
  };
  return {pct(0.50), pct(0.99), pct(0.999), static_cast<double>(latencies.size()) / (finished - start), errors};
}

// The latency floor of this machine, measured like the open loop above: 64-byte messages sent on
// the same schedule over a loopback TCP connection to a thread that echoes them, a receiver
// thread timing each echo from its scheduled time. What is left above it is gRPC's and kvtier's.
OpenLoopResult tcp_echo_open_loop(double qps, double seconds) {
  constexpr size_t kMessage = 64;
  sockaddr_in addr{};
  const int listener = listen_on_loopback(&addr);
  if (listener < 0) return {};
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  if (::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(client);
    ::close(listener);
    return {};
  }
  const int server = ::accept(listener, nullptr, nullptr);
  (void)::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  (void)::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const auto read_full = [](int fd, void* buf, size_t n) {
    for (size_t got = 0; got < n;) {
      const ssize_t r = ::recv(fd, static_cast<char*>(buf) + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  };
  std::thread echo([&] {
    char msg[kMessage];
    while (read_full(server, msg, sizeof(msg))) {
      if (::send(server, msg, sizeof(msg), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(msg))) break;
    }
  });
  const auto total = static_cast<uint64_t>(qps * seconds);
  std::vector<double> latencies;
  latencies.reserve(total);
  double finished = 0;
  std::thread receiver([&] {
    char msg[kMessage];
    while (latencies.size() < total && read_full(client, msg, sizeof(msg))) {
      double scheduled = 0;
      std::memcpy(&scheduled, msg, sizeof(scheduled));
      latencies.push_back((now_seconds() - scheduled) * 1e6);
    }
    finished = now_seconds();
  });
  const double start = now_seconds() + 0.01;
  const double interval = 1.0 / qps;
  char msg[kMessage] = {};
  for (uint64_t sent = 0; sent < total;) {
    for (; sent < total && start + static_cast<double>(sent) * interval <= now_seconds(); ++sent) {
      const double scheduled = start + static_cast<double>(sent) * interval;
      std::memcpy(msg, &scheduled, sizeof(scheduled));
      if (::send(client, msg, sizeof(msg), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(msg))) sent = total;
    }
    const double wait = start + static_cast<double>(sent) * interval - now_seconds();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(static_cast<int64_t>(wait * 1e9)));
  }
  receiver.join();
  ::shutdown(client, SHUT_RDWR);
  echo.join();
  ::close(client);
  ::close(server);
  ::close(listener);
  if (latencies.empty()) return {};
  std::sort(latencies.begin(), latencies.end());
  const auto pct = [&](double p) {
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * static_cast<double>(latencies.size())))];
  };
  return {pct(0.50), pct(0.99), pct(0.999), static_cast<double>(latencies.size()) / (finished - start), 0};
}

// --- GetBlocks vs TCP ------------------------------------------------------------------------

// Bytes per second of one GetBlocks stream of the chain, chunks checked as they arrive.
double getblocks_rate(v1::Blocks::Stub& stub, const std::vector<BlockKey>& keys, uint64_t* bad) {
  v1::GetBlocksRequest req;
  for (const BlockKey& k : keys) req.add_keys(key_bytes(k));
  grpc::ClientContext ctx;
  const double start = now_seconds();
  auto stream = stub.GetBlocks(&ctx, req);
  v1::BlockChunk chunk;
  uint64_t bytes = 0;
  while (stream->Read(&chunk)) {
    if (xxh3_64(chunk.data().data(), chunk.data().size()) != chunk.chunk_xxh3()) ++*bad;
    bytes += chunk.data().size();
  }
  if (!stream->Finish().ok() || bytes != keys.size() * kBlockBytes) ++*bad;
  return static_cast<double>(bytes) / (now_seconds() - start);
}

// --- Events ----------------------------------------------------------------------------------

// Reads events [from, to) of the epoch as one subscriber; returns events per second.
double subscribe_rate(const std::shared_ptr<grpc::Channel>& channel, uint64_t epoch, uint64_t from, uint64_t to,
                      std::atomic<uint64_t>* bad) {
  auto stub = v1::Events::NewStub(channel);
  v1::SubscribeRequest req;
  req.set_epoch(epoch);
  req.set_from_seq(from);
  grpc::ClientContext ctx;
  const double start = now_seconds();
  auto stream = stub->Subscribe(&ctx, req);
  v1::EventBatch batch;
  uint64_t next = from;
  while (next < to && stream->Read(&batch)) {
    if (batch.resync() || (batch.events_size() > 0 && batch.events(0).seq() != next)) bad->fetch_add(1);
    next = batch.next_seq();
  }
  const double elapsed = now_seconds() - start;
  ctx.TryCancel();
  (void)stream->Finish();
  return static_cast<double>(next - from) / elapsed;
}

uint64_t next_event_seq(v1::Admin::Stub& admin) {
  grpc::ClientContext ctx;
  v1::GetStatsResponse s;
  return admin.GetStats(&ctx, v1::GetStatsRequest(), &s).ok() ? s.events_next_seq() : 0;
}

// Puts `n` residency events into the node's log: HBM records of made-up engine blocks, inserted
// and removed in turn (so the index stays small), in steps the log's poller keeps up with.
Status make_events(BlockIndex& index, v1::Admin::Stub& admin, uint64_t n, uint64_t* first, uint64_t* epoch) {
  grpc::ClientContext ctx;
  v1::GetStatsResponse s;
  if (!admin.GetStats(&ctx, v1::GetStatsRequest(), &s).ok()) return Status::unavailable("GetStats failed");
  *first = s.events_next_seq();
  *epoch = s.epoch();
  constexpr uint64_t kStep = 16384;  // well inside the index's change ring
  for (uint64_t made = 0; made < n;) {
    for (uint64_t i = 0; i < kStep / 2 && made < n; ++i, made += 2) {
      const BlockKey k{0x6576656e74730000ULL + made, made * 0x9e3779b97f4a7c15ULL | 1};
      KVTIER_RETURN_IF_ERROR(index.insert({k, BlockKey{}, 7, 4096, Tier::kHbm, made & 0xffffff}));
      KVTIER_RETURN_IF_ERROR(index.remove(k));
    }
    while (next_event_seq(admin) < *first + made) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return {};
}

}  // namespace

int run_server_suite(const SuiteOptions& opt) {
  const double match_seconds = opt.quick ? 1.0 : 3.0;
  const int rounds = opt.quick ? 1 : 3;
  const uint64_t chain_blocks = opt.quick ? 64 : 256;  // 16 MiB / 64 MiB
  const uint64_t events = opt.quick ? (1ULL << 18) : (1ULL << 20);

  // As kvtierd does (grpc_frontend.cc): Debian's Abseil checks every lock for deadlock cycles.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  namespace fs = std::filesystem;
  const std::string dir = fs::absolute(fmt::format("kvtier-bench-server-{}", ::getpid())).string();
  const std::string node = fmt::format("bench-server-{}", ::getpid());
  const std::string address = fmt::format("127.0.0.1:{}", free_loopback_port());
  const std::string config = fmt::format(R"(node: {{name: {}, shm_prefix: {}}}
index: {{capacity: 262144}}
host: {{bytes: 256MiB, slab_bytes: 4MiB}}
ssd: {{enabled: false}}
server: {{grpc_address: "{}", metrics_address: "127.0.0.1:{}"}}
events: {{ring: 2097152}}
log: {{level: info}}
namespaces:
  - model_id: {}
    layout: {{dtype: bf16, block_tokens: 16, num_layers: 8, num_kv_heads: 4, head_dim: 128, kv_planes: 2}}
)",
                                         node, kBenchShmPrefix, address, free_loopback_port(), kModel);
  std::string why;
  auto bench_node = BenchNode::start(dir, node, config, &why);
  if (!bench_node) {
    fmt::print(stderr, "kvtier-bench server: {}\n", why);
    return 1;
  }
  Client& client = bench_node->client();
  const NamespaceHandle ns = client.register_namespace(bench_model()).value();
  // One chain: its first 64 blocks answer MatchPrefix; all of it is what GetBlocks streams.
  std::vector<TokenId> tokens(chain_blocks * 16);
  std::iota(tokens.begin(), tokens.end(), 1000u);
  const std::vector<BlockKey> chain = client.keys(ns, tokens);
  {
    std::vector<uint8_t> bytes(kBlockBytes);
    for (size_t i = 0; i < chain.size(); ++i) {
      for (size_t j = 0; j < bytes.size(); j += 64) bytes[j] = static_cast<uint8_t>(i + j);
      if (Status s = client.put(ns, chain[i], i == 0 ? ns.ns.root() : chain[i - 1], bytes); !s.ok()) {
        fmt::print(stderr, "kvtier-bench server: put: {}\n", s.to_string());
        return 1;
      }
    }
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::Locality::Stub>> stubs;
  for (int i = 0; i < 4; ++i) {
    args.SetInt("kvtier.bench.channel", i);  // a distinct argument: a separate connection each
    channels.push_back(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(v1::Locality::NewStub(channels.back()));
  }
  auto admin = v1::Admin::NewStub(channels[0]);
  // The same 64 keys as packed_keys (one field) and as repeated keys (a string each).
  v1::MatchPrefixRequest match_req, repeated_req;
  for (size_t i = 0; i < kMatchKeys; ++i) {
    match_req.mutable_packed_keys()->append(key_bytes(chain[i]));
    repeated_req.add_keys(key_bytes(chain[i]));
  }
  (void)closed_loop(stubs, match_req, kMatchKeys, 2, 16, 0.3);  // connections up, caches warm

  Table table({"figure", "kvtier", "baseline", "ratio", "note"});
  MatchLoad best_match, best_repeated;
  for (int r = 0; r < rounds; ++r) {
    const MatchLoad m = closed_loop(stubs, match_req, kMatchKeys, 2, 32, match_seconds);
    if (m.qps > best_match.qps) best_match = m;
    const MatchLoad k = closed_loop(stubs, repeated_req, kMatchKeys, 2, 32, match_seconds);
    if (k.qps > best_repeated.qps) best_repeated = k;
  }
  table.add_row({"MatchPrefix, 64 packed keys (req/s)", fmt::format("{:.0f}", best_match.qps), "-", "-",
                 fmt::format("closed loop, 2×32 in flight; errors {}, wrong {}", best_match.errors, best_match.wrong)});
  table.add_row(
      {"MatchPrefix, 64 repeated keys (req/s)", fmt::format("{:.0f}", best_repeated.qps), "-", "-",
       fmt::format("the same keys, one string each; errors {}, wrong {}", best_repeated.errors, best_repeated.wrong)});
  const Sender send_matches = [&](size_t i, grpc::CompletionQueue& cq, double scheduled) {
    send_match(*stubs[i % stubs.size()], match_req, cq, scheduled);
  };
  OpenLoopResult open, floor;
  for (int r = 0; r < rounds; ++r) {
    const OpenLoopResult f = tcp_echo_open_loop(20000, match_seconds);
    if (r == 0 || f.p99_us < floor.p99_us) floor = f;
    const OpenLoopResult o = open_loop(send_matches, 20000, match_seconds);
    if (r == 0 || o.p99_us < open.p99_us) open = o;
  }
  table.add_row({"MatchPrefix p99 at 20k req/s (us)", fmt::format("{:.0f}", open.p99_us),
                 fmt::format("{:.0f}", floor.p99_us), fixed(open.p99_us / floor.p99_us, 2),
                 fmt::format("baseline: 64-byte TCP echo, same schedule; p50 {:.0f} us (echo {:.0f}), p99.9 {:.0f} us, "
                             "achieved {:.0f} req/s",
                             open.p50_us, floor.p50_us, open.p999_us, open.achieved_qps)});

  // Block streams get a connection of their own, set up as docs/api.md advises a decode worker:
  // an 8 MiB HTTP/2 receive window, so the sender is not held to gRPC's default window.
  grpc::ChannelArguments bulk;
  bulk.SetMaxReceiveMessageSize(8 << 20);
  bulk.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  bulk.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  auto blocks = v1::Blocks::NewStub(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), bulk));
  uint64_t bad_chunks = 0;
  (void)getblocks_rate(*blocks, chain, &bad_chunks);  // warm
  // Streams of tens of milliseconds on a shared 2-core machine scatter by 2x from one to the
  // next, so each side gets many interleaved tries and is taken at its best (medians noted).
  std::vector<double> gets, tcps;
  for (int r = 0; r < (opt.quick ? 4 : 12); ++r) {
    tcps.push_back(loopback_tcp_rate(chain.size() * kBlockBytes));
    gets.push_back(getblocks_rate(*blocks, chain, &bad_chunks));
  }
  const double best_get = *std::max_element(gets.begin(), gets.end());
  const double best_tcp = *std::max_element(tcps.begin(), tcps.end());
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  table.add_row(
      {"GetBlocks (GB/s)", fixed(best_get / 1e9, 2), fixed(best_tcp / 1e9, 2), fixed(best_get / best_tcp, 2),
       fmt::format("{} MiB chain of 256 KiB blocks vs loopback TCP, best of {}; medians {:.2f} vs {:.2f}; "
                   "bad chunks {}",
                   chain.size() * kBlockBytes >> 20, gets.size(), median(gets) / 1e9, median(tcps) / 1e9, bad_chunks)});

  uint64_t first = 0, epoch = 0;
  auto index = bench_node->attach_index();
  if (!index.ok()) {
    fmt::print(stderr, "kvtier-bench server: the node's index: {}\n", index.status().to_string());
    return 1;
  }
  if (Status s = make_events(*index, *admin, events, &first, &epoch); !s.ok()) {
    fmt::print(stderr, "kvtier-bench server: events: {}\n", s.to_string());
    return 1;
  }
  std::atomic<uint64_t> bad_batches{0};
  double one = 0;
  for (int r = 0; r < rounds; ++r)
    one = std::max(one, subscribe_rate(channels[1], epoch, first, first + events, &bad_batches));
  table.add_row({"events to 1 subscriber (events/s)", fmt::format("{:.0f}", one), "-", "-",
                 fmt::format("{} events from the replay ring", events)});
  double each_of_8 = 0;
  for (int r = 0; r < rounds; ++r) {
    std::vector<double> rates(8);
    std::vector<std::thread> subs;
    for (size_t i = 0; i < rates.size(); ++i) {
      subs.emplace_back([&, i] {
        rates[i] = subscribe_rate(channels[i % channels.size()], epoch, first, first + events, &bad_batches);
      });
    }
    for (auto& t : subs) t.join();
    each_of_8 = std::max(each_of_8, *std::min_element(rates.begin(), rates.end()));
  }
  table.add_row({"events to each of 8 (events/s)", fmt::format("{:.0f}", each_of_8), "-", "-",
                 fmt::format("the slowest of 8 concurrent subscribers; bad batches {}", bad_batches.load())});

  fmt::print("kvtier-bench server: kvtierd (pid {}) and the load on this machine's {} cores\n{}",
             bench_node->daemon_pid(), std::thread::hardware_concurrency(), table.render());
  const bool sound = floor.errors == 0 && best_match.errors == 0 && best_match.wrong == 0 &&
                     best_repeated.errors == 0 && best_repeated.wrong == 0 && open.errors == 0 && bad_chunks == 0 &&
                     bad_batches.load() == 0;
  if (!sound) fmt::print("kvtier-bench server: ERRORS in the run (see the notes above)\n");
  if (opt.json) {
    JsonObject j;
    j.add("suite", "server")
        .add("match_qps", best_match.qps)
        .add("match_qps_repeated_keys", best_repeated.qps)
        .add("match_p99_us_at_20k_qps", open.p99_us)
        .add("getblocks_vs_tcp", best_get / best_tcp)
        .add("events_per_s_one_subscriber", one)
        .add("events_per_s_each_of_8", each_of_8)
        .add("getblocks_gbytes_per_s", best_get / 1e9)
        .add("tcp_gbytes_per_s", best_tcp / 1e9)
        .add("getblocks_vs_tcp_median", median(gets) / median(tcps))
        .add("match_p50_us_at_20k_qps", open.p50_us)
        .add("tcp_echo_p99_us_at_20k_qps", floor.p99_us)
        .add("tcp_echo_p50_us_at_20k_qps", floor.p50_us)
        .add("quick", opt.quick);
    fmt::print("{}\n", j.str());
  }
  return sound ? 0 : 1;
}

}  // namespace kvtier::bench
