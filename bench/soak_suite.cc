// `kvtier-bench soak --minutes N`: kvtierd under mixed load for N minutes, watched for leaks.
//   Load: engine processes (`kvtier-bench soak-engine`, real client processes) matching,
//   acquiring or loading and verifying, and putting chains of a shared set of conversations;
//   one is SIGKILLed every few seconds, mid-operation, and another started. MatchPrefix and
//   GetBlocks clients over gRPC (every block served checked against the bytes its key implies);
//   a subscriber that reads everything and one that stalls (reads a batch, then nothing for
//   20 s). Host memory is small, so the mover demotes all the time; the SSD tier is small, so it
//   fills and reclaims regions.
//   Sampled every 2 s: the daemon's private memory (RssAnon: the heap; the shared arena and index
//   are RssShmem, reported apart), open descriptors, threads, shared-memory bytes, MatchPrefix p99,
//   and from its /metrics its private RSS right after its last heap trim, its live heap
//   allocations and the SSD catalogue's RocksDB memory.
//   rss_growth_after_warmup: the median private RSS after trims (between them it swings ±10 % with
//   what threads allocate and free), less the catalogue's RocksDB memory (memtables that fill and
//   flush, bounded by their options), of the last fifth of the run over that of a fifth after the
//   warm-up (a fifth of the run, at least 90 s, at most half), minus one; rss_growth_with_catalog the same for
//   RSS as sampled, the catalogue's in. fd_growth: the least
//   number of descriptors in the last fifth minus the least in that early window, the SSD
//   catalogue's RocksDB table files (bounded by its max_open_files) counted apart. errors: failed
//   calls and operations that should not fail. bad_bytes_served: blocks whose bytes were not their
//   key's, from GetBlocks or an engine's acquire.
// The baseline is the daemon itself at the start of the measured window (growth is a ratio to it).
#include <fcntl.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "bench_node.h"
#include "bench_report.h"
#include "bench_timer.h"
#include "kvtier/client.h"
#include "kvtier/v1/blocks.grpc.pb.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "metrics_scrape.h"
#include "suites.h"

namespace kvtier::bench {
namespace {

constexpr const char* kModel = "bench/soak";
constexpr uint32_t kConversations = 48;        // the hot set: most requests
constexpr uint32_t kColdConversations = 4000;  // one request in five: more than host and SSD hold together
constexpr uint32_t kConversationBlocks = 24;   // 384 tokens each
constexpr int kEngines = 3;
constexpr double kSampleSeconds = 2;

NamespaceSpec soak_model() {
  NamespaceSpec s;
  s.model_id = kModel;
  s.layout = {KvDType::kBFloat16, 16, 8, 2, 64, 2};  // 64 KiB blocks: one arena unit each
  return s;
}

// What every process counts, in a shared-memory page the engines map by name.
struct SharedCounts {
  std::atomic<uint64_t> engine_ops{0};
  std::atomic<uint64_t> engine_puts{0};
  std::atomic<uint64_t> engine_errors{0};
  std::atomic<uint64_t> engine_bad_blocks{0};
  std::atomic<uint64_t> engine_loads{0};
  std::atomic<uint64_t> engine_puts_refused{0};  // full or a parent gone: a busy node's answers
  std::atomic<uint8_t> last_refusal{0};          // its StatusCode, for the report
};

std::string counts_name(pid_t parent) { return fmt::format("/kvtierbench-soak-{}", parent); }

// The bytes a block of key `k` holds: every writer writes them, every reader checks them.
void fill_block(const BlockKey& k, std::span<uint8_t> out) {
  uint64_t x = k.hi ^ (k.lo * 0x9E3779B97F4A7C15ULL);
  for (size_t i = 0; i < out.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + i, &x, std::min<size_t>(8, out.size() - i));
  }
}

bool holds_its_bytes(const BlockKey& k, std::span<const uint8_t> bytes, std::vector<uint8_t>& scratch) {
  scratch.resize(bytes.size());
  fill_block(k, scratch);
  return std::memcmp(scratch.data(), bytes.data(), bytes.size()) == 0;
}

// A conversation to ask for: mostly the hot set, sometimes a cold one (which pushes blocks down
// to SSD and the SSD to reclaim).
uint32_t pick_conversation(std::mt19937& rng) {
  return rng() % 5 == 0 ? kConversations + rng() % kColdConversations : rng() % kConversations;
}

std::vector<TokenId> conversation(uint32_t c, uint32_t blocks) {
  std::vector<TokenId> t(static_cast<size_t>(blocks) * 16);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<TokenId>(size_t{c} * 100000 + i);
  return t;
}

// --- the daemon, read from /proc ---------------------------------------------------------------

struct Sample {
  double t = 0;
  uint64_t rss_anon = 0, rss_shmem = 0;
  uint64_t fds = 0, threads = 0;
  uint64_t table_files = 0;  // the SSD catalogue's RocksDB table files held open: not in fds
  double match_p99_us = 0;
  // What the daemon's /metrics says of its private memory: malloc's live allocations, and of
  // those the SSD catalogue's RocksDB memory (memtables that fill and flush).
  double heap_allocated = 0, catalog_memory = 0;
  double resident_after_trim = 0;  // RssAnon as the daemon read it right after its last heap trim
};

uint64_t status_kib(const std::string& status, std::string_view field) {
  const size_t at = status.find(field);
  if (at == std::string::npos) return 0;
  return std::strtoull(status.c_str() + at + field.size(), nullptr, 10);
}

Sample sample_process(pid_t pid) {
  Sample s;
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::stringstream text;
  text << in.rdbuf();
  const std::string status = text.str();
  s.rss_anon = status_kib(status, "RssAnon:") << 10;
  s.rss_shmem = status_kib(status, "RssShmem:") << 10;
  s.threads = status_kib(status, "Threads:");
  std::error_code ec;
  // RocksDB keeps its live table files open (at most max_open_files), and their number rises and
  // falls with flushes and compactions: counted apart, so a compaction in flight is not a leak.
  for (auto it = std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code link_ec;
    const std::filesystem::path target = std::filesystem::read_symlink(it->path(), link_ec);
    if (!link_ec && target.extension() == ".sst") {
      ++s.table_files;
    } else {
      ++s.fds;
    }
  }
  return s;
}

template <typename T>
double median_of(std::vector<T> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[v.size() / 2]);
}

// --- gRPC load -------------------------------------------------------------------------------

struct GrpcLoad {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> matches{0}, gets{0}, blocks_served{0}, events{0}, stalls{0};
  std::atomic<uint64_t> errors{0}, bad_bytes{0};
  std::mutex latency_mu;
  std::vector<double> latencies_us;  // since the last sample

  double take_p99_us() {
    std::lock_guard lock(latency_mu);
    if (latencies_us.empty()) return 0;
    std::sort(latencies_us.begin(), latencies_us.end());
    const double p99 = latencies_us[std::min(latencies_us.size() - 1, latencies_us.size() * 99 / 100)];
    latencies_us.clear();
    return p99;
  }
};

std::unique_ptr<grpc::ClientContext> deadline_context(int seconds) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

void match_loop(const std::shared_ptr<grpc::Channel>& channel, GrpcLoad& load) {
  auto stub = v1::Locality::NewStub(channel);
  std::mt19937 rng(1);
  while (!load.stop.load()) {
    v1::MatchPrefixRequest req;
    req.mutable_namespace_()->set_model_id(kModel);
    for (TokenId t : conversation(pick_conversation(rng), 1 + rng() % kConversationBlocks)) req.add_token_ids(t);
    v1::MatchPrefixResponse resp;
    const double start = now_seconds();
    const grpc::Status s = stub->MatchPrefix(deadline_context(10).get(), req, &resp);
    const double us = (now_seconds() - start) * 1e6;
    if (!s.ok()) {
      load.errors.fetch_add(1);
      continue;
    }
    load.matches.fetch_add(1);
    std::lock_guard lock(load.latency_mu);
    load.latencies_us.push_back(us);
  }
}

void get_blocks_loop(const std::shared_ptr<grpc::Channel>& channel, Client& client, const NamespaceHandle& ns,
                     GrpcLoad& load) {
  auto stub = v1::Blocks::NewStub(channel);
  std::mt19937 rng(2);
  std::vector<uint8_t> block, scratch;
  while (!load.stop.load()) {
    const auto keys = client.keys(ns, conversation(pick_conversation(rng), kConversationBlocks));
    v1::GetBlocksRequest req;
    for (const BlockKey& k : keys) {
      const auto b = k.to_bytes();
      req.add_keys(b.data(), b.size());
    }
    req.set_include_ssd(rng() % 2 == 0);
    req.set_chunk_bytes(16384);
    auto ctx = deadline_context(20);
    auto stream = stub->GetBlocks(ctx.get(), req);
    v1::BlockChunk chunk;
    size_t index = 0;
    block.clear();
    while (stream->Read(&chunk)) {
      if (chunk.offset() == 0) block.clear();
      block.insert(block.end(), chunk.data().begin(), chunk.data().end());
      if (!chunk.last()) continue;
      // The blocks come in chain order: the i-th whole block must be keys[i]'s, with its bytes.
      if (index >= keys.size() ||
          chunk.key() != std::string(reinterpret_cast<const char*>(keys[index].to_bytes().data()), BlockKey::kBytes) ||
          !holds_its_bytes(keys[index], block, scratch)) {
        load.bad_bytes.fetch_add(1);
      }
      ++index;
      load.blocks_served.fetch_add(1);
    }
    const grpc::Status s = stream->Finish();
    if (!s.ok()) {
      load.errors.fetch_add(1);
      continue;
    }
    load.gets.fetch_add(1);
  }
}

std::unique_ptr<grpc::ClientReader<v1::EventBatch>> subscribe_from_now(v1::Events::Stub& stub,
                                                                       grpc::ClientContext& ctx) {
  v1::SubscribeRequest req;
  req.set_from_now(true);
  return stub.Subscribe(&ctx, req);
}

// Reads every batch; checks that sequence numbers are gap-free or marked as a resync.
void subscriber_loop(const std::shared_ptr<grpc::Channel>& channel, GrpcLoad& load) {
  auto stub = v1::Events::NewStub(channel);
  while (!load.stop.load()) {
    grpc::ClientContext ctx;
    auto stream = subscribe_from_now(*stub, ctx);
    std::thread canceller([&] {
      while (!load.stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ctx.TryCancel();
    });
    v1::EventBatch batch;
    uint64_t next = 0;
    while (stream->Read(&batch)) {
      if (!batch.resync() && next != 0 && batch.events_size() > 0 && batch.events(0).seq() != next) {
        load.errors.fetch_add(1);  // a gap the node did not announce
      }
      next = batch.next_seq();
      load.events.fetch_add(static_cast<uint64_t>(batch.events_size()));
    }
    canceller.join();
    const grpc::Status s = stream->Finish();
    if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) load.errors.fetch_add(1);
  }
}

// Reads one batch, then nothing for 20 s (its stream backs up in the daemon), then starts over.
void stalled_subscriber_loop(const std::shared_ptr<grpc::Channel>& channel, GrpcLoad& load) {
  auto stub = v1::Events::NewStub(channel);
  while (!load.stop.load()) {
    grpc::ClientContext ctx;
    auto stream = subscribe_from_now(*stub, ctx);
    v1::EventBatch batch;
    (void)stream->Read(&batch);
    load.stalls.fetch_add(1);
    for (int i = 0; i < 400 && !load.stop.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ctx.TryCancel();
    while (stream->Read(&batch)) {
    }
    (void)stream->Finish();
  }
}

// --- engine processes ----------------------------------------------------------------------

pid_t start_engine(const std::string& self, const std::string& node, pid_t parent, uint32_t seed) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string parent_text = std::to_string(parent), seed_text = std::to_string(seed);
    ::execl(self.c_str(), self.c_str(), "soak-engine", "--node", node.c_str(), "--parent", parent_text.c_str(),
            "--seed", seed_text.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

}  // namespace

int run_soak_engine(const SoakEngineOptions& options) {
  const int fd = ::shm_open(counts_name(static_cast<pid_t>(options.parent)).c_str(), O_RDWR, 0);
  if (fd < 0) return 3;
  void* page = ::mmap(nullptr, sizeof(SharedCounts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (page == MAP_FAILED) return 3;
  auto& counts = *static_cast<SharedCounts*>(page);
  ClientOptions co;
  co.node_name = options.node;
  co.shm_prefix = kBenchShmPrefix;
  auto client = Client::open(co);
  if (!client.ok()) {
    counts.engine_errors.fetch_add(1);
    return 1;
  }
  auto ns = (*client)->register_namespace(soak_model());
  if (!ns.ok()) {
    counts.engine_errors.fetch_add(1);
    return 1;
  }
  std::mt19937 rng(options.seed);
  std::vector<uint8_t> bytes(ns->ns.bytes_per_block()), scratch;
  while (true) {  // until the soak kills it
    const auto keys = (*client)->keys(*ns, conversation(pick_conversation(rng), 1 + rng() % kConversationBlocks));
    auto got = (*client)->acquire_or_load(keys);
    if (!got.ok()) {
      counts.engine_errors.fetch_add(1);
      continue;
    }
    if (got->load.size() > 0) {
      counts.engine_loads.fetch_add(1);
      (void)got->load.wait(std::chrono::milliseconds(500));
    }
    for (const HostBlock& b : got->host) {
      if (!holds_its_bytes(b.key(), {b.data(), b.size()}, scratch)) counts.engine_bad_blocks.fetch_add(1);
    }
    const size_t have = got->host.size();
    got->host.clear();  // the pins go before the puts that may need their room
    for (size_t i = have; i < keys.size(); ++i) {
      fill_block(keys[i], bytes);
      const Status s = (*client)->put(*ns, keys[i], i == 0 ? ns->ns.root() : keys[i - 1], bytes);
      // Full (every block pinned), a parent evicted meanwhile and a put the node's admission
      // refused are what a busy node answers; anything else is an error.
      if (!s.ok() && s.code() != StatusCode::kResourceExhausted && s.code() != StatusCode::kFailedPrecondition &&
          s.code() != StatusCode::kNotFound && s.code() != StatusCode::kNotAdmitted) {
        counts.engine_errors.fetch_add(1);
      }
      if (!s.ok()) {
        counts.engine_puts_refused.fetch_add(1);
        counts.last_refusal.store(static_cast<uint8_t>(s.code()));
        break;
      }
      counts.engine_puts.fetch_add(1);
    }
    counts.engine_ops.fetch_add(1);
  }
}

int run_soak_command(const SoakCommandOptions& options) {
  const pid_t me = ::getpid();
  const std::string node = fmt::format("soak{}", me);
  const std::string dir = (std::filesystem::temp_directory_path() / node).string();
  const int port = free_loopback_port();
  const int metrics = free_loopback_port();
  const std::string config = fmt::format(R"(node: {{name: {}, shm_prefix: {}}}
index: {{capacity: 16384}}
host: {{bytes: 24MiB, slab_bytes: 1MiB}}
ssd: {{dir: {}/ssd, bytes: 64MiB, region_bytes: 2MiB, direct_io: false, admission: {{min_accesses: 1}}}}
server: {{grpc_address: "127.0.0.1:{}", metrics_address: "127.0.0.1:{}"}}
events: {{ring: 65536}}
log: {{level: info}}
namespaces:
  - model_id: {}
    layout: {{dtype: bf16, block_tokens: 16, num_layers: 8, num_kv_heads: 2, head_dim: 64, kv_planes: 2}}
)",
                                         node, kBenchShmPrefix, dir, port, metrics, kModel);
  std::filesystem::create_directories(dir);
  std::string why;
  auto bench_node = BenchNode::start(dir, node, config, &why);
  if (!bench_node) {
    fmt::print(stderr, "kvtier-bench soak: {}\n", why);
    return 1;
  }
  // The engines' counters.
  const std::string shm = counts_name(me);
  const int fd = ::shm_open(shm.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ::ftruncate(fd, sizeof(SharedCounts)) != 0) {
    fmt::print(stderr, "kvtier-bench soak: cannot create {}\n", shm);
    return 1;
  }
  void* page = ::mmap(nullptr, sizeof(SharedCounts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  auto& counts = *new (page) SharedCounts();

  Client& client = bench_node->client();
  const NamespaceHandle ns = client.register_namespace(soak_model()).value();
  const std::string self = own_executable();
  std::vector<pid_t> engines;
  engines.reserve(kEngines);
  uint32_t seed = 100;
  for (int i = 0; i < kEngines; ++i) engines.push_back(start_engine(self, node, me, seed++));

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  GrpcLoad load;
  const auto channel = [&] {
    return grpc::CreateCustomChannel(fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials(), args);
  };
  std::array<std::thread, 4> clients = {
      std::thread([&, c = channel()] { match_loop(c, load); }),
      std::thread([&, c = channel()] { get_blocks_loop(c, client, ns, load); }),
      std::thread([&, c = channel()] { subscriber_loop(c, load); }),
      std::thread([&, c = channel()] { stalled_subscriber_loop(c, load); }),
  };

  const double seconds = std::max(20.0, options.minutes * 60);
  const double start = now_seconds();
  std::vector<Sample> samples;
  uint64_t kills = 0;
  std::mt19937 rng(7);
  double next_kill = start + 3;
  Table progress({"t (s)", "private RSS (MiB)", "heap in use", "of it catalogue", "shared RSS (MiB)", "fds", "threads",
                  "match p99 (us)", "engine ops", "GetBlocks", "kills"});
  while (now_seconds() - start < seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(kSampleSeconds * 1000 / 4)));
    const double now = now_seconds();
    if (now >= next_kill) {
      // SIGKILL an engine mid-operation; its pins, reservations and process slot are the node's to
      // reclaim. A new one takes its place.
      const size_t victim = rng() % engines.size();
      ::kill(engines[victim], SIGKILL);
      ::waitpid(engines[victim], nullptr, 0);
      engines[victim] = start_engine(self, node, me, seed++);
      ++kills;
      next_kill = now + 2 + static_cast<double>(rng() % 3000) / 1000;
    }
    if (samples.empty() || now - start - samples.back().t >= kSampleSeconds) {
      Sample s = sample_process(bench_node->daemon_pid());
      s.t = now - start;
      s.match_p99_us = load.take_p99_us();
      const MetricsPage figures = MetricsPage::scrape(metrics);  // one GET for the three
      s.heap_allocated = figures.value("kvtier_heap_allocated_bytes").value_or(0);
      s.catalog_memory = figures.value("kvtier_ssd_catalog_memory_bytes").value_or(0);
      s.resident_after_trim = figures.value("kvtier_private_resident_after_trim_bytes").value_or(0);
      samples.push_back(s);
      if (samples.size() % 5 == 1) {
        progress.add_row({fixed(s.t, 0), fixed(static_cast<double>(s.rss_anon) / (1 << 20), 1),
                          fixed(s.heap_allocated / (1 << 20), 1), fixed(s.catalog_memory / (1 << 20), 1),
                          fixed(static_cast<double>(s.rss_shmem) / (1 << 20), 1), std::to_string(s.fds),
                          std::to_string(s.threads), fixed(s.match_p99_us, 0), std::to_string(counts.engine_ops.load()),
                          std::to_string(load.gets.load()), std::to_string(kills)});
      }
    }
  }
  load.stop = true;
  for (auto& t : clients) t.join();
  for (pid_t p : engines) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  // Windows: a fifth of the run after the warm-up, and the last fifth. The warm-up is a fifth of
  // the run but at least 90 s (half of a short run): the daemon's bounded caches (RocksDB's block
  // cache, the event ring, gRPC's pools) and malloc's per-thread caches and arenas fill first. Its
  // footprint after trims levelled in 80-100 s, while heaptrack found the same live allocations at
  // 45 s and at 150 s (14.68 and 14.69 MiB): a 30 s warm-up judged that settling as growth.
  const double warmup = std::min(std::max(seconds * 0.2, 90.0), seconds * 0.5);
  // RSS by the median of a window; descriptors and threads by its least, since files RocksDB opens
  // for a compaction and gRPC's threads come and go, and a leak raises the floor.
  const auto window = [&](double from, double to) {
    std::vector<uint64_t> fds, threads;
    std::vector<double> rss, rss_less_catalogue, heap;
    for (const Sample& s : samples) {
      if (s.t >= from && s.t < to) {
        rss.push_back(static_cast<double>(s.rss_anon));
        // The footprint after the daemon's last heap trim (server.heap_trim_ms); between trims
        // private memory swings ±10 % with what threads allocate and free.
        const double footprint = s.resident_after_trim > 0 ? s.resident_after_trim : static_cast<double>(s.rss_anon);
        rss_less_catalogue.push_back(footprint - s.catalog_memory);
        heap.push_back(s.heap_allocated);
        fds.push_back(s.fds);
        threads.push_back(s.threads);
      }
    }
    const auto least = [](const std::vector<uint64_t>& v) {
      return v.empty() ? 0.0 : static_cast<double>(*std::min_element(v.begin(), v.end()));
    };
    return std::array<double, 5>{median_of(rss_less_catalogue), least(fds), least(threads), median_of(heap),
                                 median_of(rss)};
  };
  const auto early = window(warmup, warmup + seconds * 0.2);
  const auto late = window(seconds * 0.8, seconds + 1);
  const double rss_growth = early[0] > 0 ? late[0] / early[0] - 1 : 0;
  const double heap_growth = early[3] > 0 ? late[3] / early[3] - 1 : 0;  // none where malloc is not glibc's
  const double rss_growth_with_catalogue = early[4] > 0 ? late[4] / early[4] - 1 : 0;
  const auto fd_growth = static_cast<long long>(late[1] - early[1]);
  const auto thread_growth = static_cast<long long>(late[2] - early[2]);
  std::vector<double> p99s;
  for (const Sample& s : samples) {
    if (s.t >= warmup && s.match_p99_us > 0) p99s.push_back(s.match_p99_us);
  }
  const uint64_t errors = load.errors.load() + counts.engine_errors.load();
  const uint64_t bad = load.bad_bytes.load() + counts.engine_bad_blocks.load();
  const uint64_t shm_bytes = samples.empty() ? 0 : samples.back().rss_shmem;
  // What the daemon says it did: demotions (host → SSD) and reclaimed SSD regions.
  const MetricsPage last_page = MetricsPage::scrape(metrics);
  const auto demoted = last_page.value("kvtier_demotions_total").value_or(-1);
  const auto reclaimed = last_page.value("kvtier_ssd_regions_reclaimed_total").value_or(-1);
  const auto dead = last_page.value("kvtier_host_arena_reclaimed_total").value_or(-1);
  const auto trims = last_page.value("kvtier_heap_trims_total").value_or(-1);
  const auto trim_us = last_page.value("kvtier_heap_trim_microseconds_total").value_or(-1);

  if (!options.samples_file.empty()) {
    std::ofstream out(options.samples_file);
    out << "t_s\trss_anon_bytes\tresident_after_trim_bytes\theap_allocated_bytes\tcatalog_memory_bytes\tfds\ttable_"
           "files\tthreads\tmatch_p99_us\n";
    for (const Sample& s : samples) {
      out << fmt::format("{:.1f}\t{}\t{:.0f}\t{:.0f}\t{:.0f}\t{}\t{}\t{}\t{:.0f}\n", s.t, s.rss_anon,
                         s.resident_after_trim, s.heap_allocated, s.catalog_memory, s.fds, s.table_files, s.threads,
                         s.match_p99_us);
    }
  }
  fmt::print("{}\n", progress.render());
  Table table({"figure", "value", "target"});
  table.add_row({"private RSS growth after warm-up (after heap trims, the catalogue's RocksDB memory apart)",
                 fixed(rss_growth * 100, 2) + " %", "<= 5 %"});
  table.add_row({"private RSS growth after warm-up as sampled (between trims, catalogue in)",
                 fixed(rss_growth_with_catalogue * 100, 2) + " %", ""});
  table.add_row({"heap in use growth after warm-up (live allocations)", fixed(heap_growth * 100, 2) + " %", ""});
  table.add_row({"descriptor growth", std::to_string(fd_growth), "0"});
  uint64_t table_files_max = 0;
  for (const Sample& s : samples) table_files_max = std::max(table_files_max, s.table_files);
  table.add_row({"catalogue table files open (most; not descriptors above)", std::to_string(table_files_max), ""});
  table.add_row({"thread growth", std::to_string(thread_growth), "0"});
  table.add_row({"errors", std::to_string(errors), "0"});
  table.add_row({"bad bytes served (blocks)", std::to_string(bad), "0"});
  table.add_row({"engine processes SIGKILLed", std::to_string(kills), ""});
  table.add_row(
      {"engine operations / puts / refused puts / SSD loads",
       fmt::format("{} / {} / {} ({}) / {}", counts.engine_ops.load(), counts.engine_puts.load(),
                   counts.engine_puts_refused.load(),
                   status_code_name(static_cast<StatusCode>(counts.last_refusal.load())), counts.engine_loads.load()),
       ""});
  table.add_row({"MatchPrefix / GetBlocks (blocks) / events",
                 fmt::format("{} / {} ({}) / {}", load.matches.load(), load.gets.load(), load.blocks_served.load(),
                             load.events.load()),
                 ""});
  table.add_row({"demotions / SSD regions reclaimed / dead processes' reservations freed",
                 fmt::format("{} / {} / {}", demoted, reclaimed, dead), ""});
  table.add_row({"MatchPrefix p99, median of samples (us)", fixed(median_of(p99s), 0), ""});
  table.add_row({"heap trims / time in them (ms)", fmt::format("{} / {:.1f}", trims, trim_us / 1e3), ""});
  fmt::print("kvtier-bench soak: {:.1f} minutes; {} samples\n{}\n", seconds / 60, samples.size(), table.render());

  const bool met = rss_growth <= 0.05 && fd_growth == 0 && errors == 0 && bad == 0;
  if (options.json) {
    JsonObject j;
    j.add("suite", "soak")
        .add("minutes", seconds / 60)
        .add("rss_growth_after_warmup", rss_growth)
        .add("fd_growth", fd_growth)
        .add("catalog_table_files_max", static_cast<double>(table_files_max))
        .add("errors", static_cast<long long>(errors))
        .add("bad_bytes_served", static_cast<long long>(bad))
        .add("thread_growth", thread_growth)
        .add("private_rss_mib", late[4] / (1 << 20))
        .add("rss_growth_with_catalog", rss_growth_with_catalogue)
        .add("heap_growth_after_warmup", heap_growth)
        .add("heap_allocated_mib", late[3] / (1 << 20))
        .add("shared_rss_mib", static_cast<double>(shm_bytes) / (1 << 20))
        .add("engine_kills", static_cast<long long>(kills))
        .add("engine_ops", static_cast<long long>(counts.engine_ops.load()))
        .add("getblocks", static_cast<long long>(load.gets.load()))
        .add("demotions", demoted)
        .add("ssd_regions_reclaimed", reclaimed)
        .add("match_p99_us", median_of(p99s))
        .add("targets_met", met);
    fmt::print("{}\n", j.str());
  }
  ::munmap(page, sizeof(SharedCounts));
  ::shm_unlink(shm.c_str());
  bench_node.reset();
  std::filesystem::remove_all(dir);
  return met ? 0 : 1;
}

}  // namespace kvtier::bench
