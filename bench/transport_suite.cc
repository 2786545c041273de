// `kvtier-bench transport`: remote reads of a 64-block chain (256 KiB blocks, 16 MiB) out of a
// kvtierd's host arena, once per UCX transport this machine has (UCX_TLS=tcp, then sm,self), each
// against baselines measured in the same run:
//   kvtier over UCX: RemoteReader::fetch (lease RPC, one ucp_get per block, every block's checksum
//     checked, release) into one destination buffer, back to back;
//   ucx_perftest: its ucp_get test between two processes over the same transport and UCX settings,
//     one block per message, 64 outstanding (the chain's blocks are all posted at once), the best
//     of several runs (it re-reads one cache-resident buffer; kvtier reads 16 MiB of distinct blocks);
//   gRPC GetBlocks: the same RemoteReader with use_ucx off (chunks checked, copied into place);
//   loopback TCP: a plain stream of the chain's bytes.
//   lease_rpc_p99_us: RemoteReader::lease of the chain (the round trip that pins 64 blocks and
//     answers where they are), 99th percentile; each lease released before the next.
// The headline fields (ucx_vs_perftest, ucx_vs_getblocks, ..._gbps) are TCP's: the transport a
// remote reader uses between machines without an RDMA NIC; shared memory's follow with `_sm`.
#include <fmt/format.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_node.h"
#include "bench_report.h"
#include "bench_timer.h"
#include "kvtier/client.h"
#include "kvtier/remote_reader.h"
#include "loopback_tcp.h"
#include "server/transport/ucx_worker.h"
#include "suites.h"

namespace kvtier::bench {
namespace {

constexpr uint64_t kBlockBytes = 256 << 10;
constexpr size_t kChainBlocks = 64;
constexpr const char* kModel = "bench/transport";

NamespaceSpec bench_model() {
  NamespaceSpec s;
  s.model_id = kModel;
  s.layout = {KvDType::kBFloat16, 16, 8, 4, 128, 2};  // 256 KiB blocks
  return s;
}

struct TransportFigures {
  std::string tls;
  double ucx = 0, perftest = 0, getblocks = 0, tcp = 0;  // bytes/s
  double held_reads = 0;      // reads of one held lease (no RPC): what the lease round trip costs a fetch
  double perftest_chain = 0;  // ucx_perftest moving the chain's 16 MiB as one get at a time
  double lease_p50_us = 0, lease_p99_us = 0;
  uint64_t bad = 0;     // fetches that came back short, corrupt or on the wrong path
  std::string why_not;  // set when the transport could not be measured
};

// Bytes per second of `fetches` fetches of the chain, the best of `rounds`.
double fetch_rate(RemoteReader& reader, const std::vector<BlockKey>& chain, std::vector<uint8_t>& dest, int rounds,
                  int fetches, RemotePath want, uint64_t* bad) {
  double best = 0;
  for (int r = 0; r < rounds; ++r) {
    const double start = now_seconds();
    uint64_t bytes = 0;
    for (int f = 0; f < fetches; ++f) {
      auto got = reader.fetch(chain, dest);
      if (!got.ok() || got->blocks != chain.size() || got->path != want) {
        ++*bad;
        continue;
      }
      bytes += got->bytes;
    }
    best = std::max(best, static_cast<double>(bytes) / (now_seconds() - start));
  }
  return best;
}

// ucx_perftest's ucp_get bandwidth (bytes/s) between a server and a client process, both under
// the UCX_TLS now set; 0 with *why when it cannot run.
double perftest_rate(uint64_t message_bytes, int outstanding, int iterations, std::string* why) {
  const int port = free_loopback_port();
  // Under the settings kvtier gives UCX (the same transport, tuned the same way) unless set already.
  for (const transport::UcxSetting& d : transport::kUcxDefaults) {
    ::setenv(fmt::format("UCX_{}", d.name).c_str(), d.value, 0);  // NOLINT(concurrency-mt-unsafe): one thread
  }
  const pid_t server = ::fork();
  if (server == 0) {
    const std::string p = std::to_string(port);
    (void)std::freopen("/dev/null", "w", stdout);
    // The responder on the second core, as kvtierd is (pinned()): the same placement for both.
    ::execlp("ucx_perftest", "ucx_perftest", "-p", p.c_str(), "-c", "1", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server is listening by then
  const std::string cmd = fmt::format("ucx_perftest 127.0.0.1 -p {} -c 0 -t ucp_get -s {} -n {} -w {} -O {} -f 2>&1",
                                      port, message_bytes, iterations, std::max(1, iterations / 10), outstanding);
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r"); p != nullptr) {
    char line[512];
    while (std::fgets(line, sizeof(line), p) != nullptr) out += line;
    ::pclose(p);
  }
  ::kill(server, SIGTERM);
  ::waitpid(server, nullptr, 0);
  // With -f the last numeric line is: iterations, latency p50/avg/overall, bandwidth avg/overall
  // (MB/s of 2^20 bytes), message rate avg/overall.
  std::istringstream lines(out);
  double overall_mib = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::vector<double> v;
    for (double x; fields >> x;) v.push_back(x);
    if (v.size() == 8 && fields.eof()) overall_mib = v[5];
  }
  if (overall_mib <= 0) *why = "ucx_perftest printed no result: " + out.substr(0, 300);
  return overall_mib * 1048576.0;
}

// The reader (this process's threads from here on) on the first core, the node on the other: on a
// machine this small the scheduler otherwise moves them onto one core now and then, which halves
// either side's rate from run to run (ucx_perftest's two processes are placed the same way).
class PinnedToFirstCore {
 public:
  explicit PinnedToFirstCore(pid_t node) {
    (void)::sched_getaffinity(0, sizeof(saved_), &saved_);
    if (CPU_COUNT(&saved_) < 2) return;
    cpu_set_t first, second;
    CPU_ZERO(&first);
    CPU_ZERO(&second);
    CPU_SET(0, &first);
    CPU_SET(1, &second);
    (void)::sched_setaffinity(0, sizeof(first), &first);
    // Every thread of the node: its task directory lists them.
    for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", node))) {
      (void)::sched_setaffinity(std::stoi(task.path().filename().string()), sizeof(second), &second);
    }
  }
  ~PinnedToFirstCore() { (void)::sched_setaffinity(0, sizeof(saved_), &saved_); }
  PinnedToFirstCore(const PinnedToFirstCore&) = delete;
  PinnedToFirstCore& operator=(const PinnedToFirstCore&) = delete;

 private:
  cpu_set_t saved_{};
};

TransportFigures measure(const std::string& tls, const SuiteOptions& opt) {
  TransportFigures f;
  f.tls = tls;
  // The daemon started below, this process and ucx_perftest. NOLINTNEXTLINE(concurrency-mt-unsafe): one thread
  ::setenv("UCX_TLS", tls.c_str(), 1);
  namespace fs = std::filesystem;
  const std::string dir = fs::absolute(fmt::format("kvtier-bench-transport-{}", ::getpid())).string();
  const std::string node = fmt::format("bench-transport-{}", ::getpid());
  const std::string address = fmt::format("127.0.0.1:{}", free_loopback_port());
  const std::string config = fmt::format(R"(node: {{name: {}, shm_prefix: {}}}
index: {{capacity: 65536}}
host: {{bytes: 128MiB, slab_bytes: 4MiB}}
ssd: {{enabled: false}}
server: {{grpc_address: "{}", metrics_address: ""}}
log: {{level: info}}
namespaces:
  - model_id: {}
    layout: {{dtype: bf16, block_tokens: 16, num_layers: 8, num_kv_heads: 4, head_dim: 128, kv_planes: 2}}
)",
                                         node, kBenchShmPrefix, address, kModel);
  auto bench_node = BenchNode::start(dir, node, config, &f.why_not);
  if (!bench_node) return f;
  const PinnedToFirstCore pinned(bench_node->daemon_pid());
  Client& client = bench_node->client();
  const NamespaceHandle ns = client.register_namespace(bench_model()).value();
  std::vector<TokenId> tokens(kChainBlocks * 16);
  std::iota(tokens.begin(), tokens.end(), 5000u);
  const std::vector<BlockKey> chain = client.keys(ns, tokens);
  std::vector<uint8_t> bytes(kBlockBytes);
  for (size_t i = 0; i < chain.size(); ++i) {
    for (size_t j = 0; j < bytes.size(); j += 64) bytes[j] = static_cast<uint8_t>(i * 7 + j);
    if (Status s = client.put(ns, chain[i], i == 0 ? ns.ns.root() : chain[i - 1], bytes); !s.ok()) {
      f.why_not = "put: " + s.to_string();
      return f;
    }
  }
  (void)client.seal(chain);  // what a node does before serving; not part of any path measured

  const int rounds = opt.quick ? 1 : 3;
  const int fetches = opt.quick ? 20 : 60;
  std::vector<uint8_t> dest(kChainBlocks * kBlockBytes);
  RemoteReaderOptions ro;
  ro.address = address;
  auto ucx = RemoteReader::open(ro);
  ro.use_ucx = false;
  auto grpc = RemoteReader::open(ro);
  if (!ucx.ok() || !grpc.ok()) {
    f.why_not = "RemoteReader: " + (!ucx.ok() ? ucx.status() : grpc.status()).to_string();
    return f;
  }
  if (auto warm = (*ucx)->fetch(chain, dest); !warm.ok() || warm->path != RemotePath::kUcx) {
    f.why_not = "no UCX read over " + tls + ": " + (warm.ok() ? (*ucx)->fallback_reason() : warm.status().to_string());
    return f;
  }
  (void)(*grpc)->fetch(chain, dest);
  f.ucx = fetch_rate(**ucx, chain, dest, rounds, fetches, RemotePath::kUcx, &f.bad);
  f.getblocks = fetch_rate(**grpc, chain, dest, rounds, fetches, RemotePath::kGrpc, &f.bad);

  if (auto held = (*ucx)->lease(chain); held.ok()) {
    for (int r = 0; r < rounds; ++r) {
      const double start = now_seconds();
      uint64_t read = 0;
      for (int i = 0; i < fetches; ++i) {
        auto got = (*ucx)->read(*held, dest);
        read += got.ok() ? got->bytes : 0;
        f.bad += got.ok() && got->blocks == chain.size() ? 0 : 1;
      }
      f.held_reads = std::max(f.held_reads, static_cast<double>(read) / (now_seconds() - start));
    }
  }
  const int leases = opt.quick ? 300 : 2000;
  std::vector<double> us;
  us.reserve(leases);
  for (int i = 0; i < leases; ++i) {
    const double start = now_seconds();
    auto lease = (*ucx)->lease(chain);
    us.push_back((now_seconds() - start) * 1e6);
    if (!lease.ok() || lease->blocks().size() != chain.size()) ++f.bad;
  }
  std::sort(us.begin(), us.end());
  f.lease_p50_us = us[us.size() / 2];
  f.lease_p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];

  // ucx_perftest's figure swings by 2x from run to run here (where its one buffer sits in the
  // caches); its best of several runs is the baseline, which only makes the ratio harder to meet.
  for (int r = 0; r < rounds + 1; ++r) {
    f.perftest = std::max(f.perftest, perftest_rate(kBlockBytes, kChainBlocks, opt.quick ? 2000 : 6000, &f.why_not));
  }
  // Not the target's baseline: the same bytes per operation as a fetch, out of memory instead of
  // one cache-resident 256 KiB buffer (context for the ratio above).
  f.perftest_chain = perftest_rate(kChainBlocks * kBlockBytes, 1, opt.quick ? 40 : 120, &f.why_not);
  if (f.perftest > 0) f.why_not.clear();
  f.tcp = loopback_tcp_rate(kChainBlocks * kBlockBytes * 16);
  return f;
}

}  // namespace

int run_transport_suite(const SuiteOptions& opt) {
  const char* was = std::getenv("UCX_TLS");  // NOLINT(concurrency-mt-unsafe): the suite runs on one thread
  const std::string saved = was != nullptr ? was : "";
  std::vector<TransportFigures> all;
  for (const char* tls : {"tcp", "sm,self"}) all.push_back(measure(tls, opt));
  if (was != nullptr) {
    ::setenv("UCX_TLS", saved.c_str(), 1);  // NOLINT(concurrency-mt-unsafe): one thread
  } else {
    ::unsetenv("UCX_TLS");  // NOLINT(concurrency-mt-unsafe): one thread
  }

  Table t({"UCX_TLS", "kvtier UCX (GB/s)", "held lease (GB/s)", "ucx_perftest (GB/s)", "vs perftest",
           "perftest 16 MiB gets (GB/s)", "GetBlocks (GB/s)", "vs GetBlocks", "loopback TCP (GB/s)",
           "lease p50/p99 (us)", "note"});
  const auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (const TransportFigures& f : all) {
    t.add_row({f.tls, fixed(f.ucx / 1e9, 2), fixed(f.held_reads / 1e9, 2), fixed(f.perftest / 1e9, 2),
               fixed(ratio(f.ucx, f.perftest), 2), fixed(f.perftest_chain / 1e9, 2), fixed(f.getblocks / 1e9, 2),
               fixed(ratio(f.ucx, f.getblocks), 2), fixed(f.tcp / 1e9, 2),
               fmt::format("{:.0f} / {:.0f}", f.lease_p50_us, f.lease_p99_us),
               !f.why_not.empty() ? f.why_not
               : f.bad != 0       ? fmt::format("{} bad fetches", f.bad)
                                  : ""});
  }
  fmt::print(
      "kvtier-bench transport: a 64-block chain of 256 KiB blocks read out of a kvtierd's arena, per UCX "
      "transport, against ucx_perftest (ucp_get, same transport and message size, 64 outstanding), gRPC "
      "GetBlocks and a loopback TCP stream, all in this run\n{}",
      t.render());
  const TransportFigures& tcp = all[0];
  const TransportFigures& sm = all[1];
  uint64_t bad = 0;
  for (const TransportFigures& f : all) bad += f.bad + (f.why_not.empty() ? 0 : 1);
  const double vs_perftest = ratio(tcp.ucx, tcp.perftest), vs_getblocks = ratio(tcp.ucx, tcp.getblocks);
  const bool met = bad == 0 && vs_perftest >= 0.85 && vs_getblocks >= 1.5 && tcp.lease_p99_us <= 500;
  if (opt.json) {
    JsonObject j;
    j.add("suite", "transport")
        .add("transport", "tcp")
        .add("ucx_vs_perftest", vs_perftest)
        .add("ucx_vs_getblocks", vs_getblocks)
        .add("lease_rpc_p99_us", tcp.lease_p99_us)
        .add("ucx_gbps", tcp.ucx / 1e9)
        .add("held_lease_read_gbps", tcp.held_reads / 1e9)
        .add("perftest_gbps", tcp.perftest / 1e9)
        .add("perftest_chain_gbps", tcp.perftest_chain / 1e9)
        .add("ucx_vs_perftest_chain", ratio(tcp.ucx, tcp.perftest_chain))
        .add("getblocks_gbps", tcp.getblocks / 1e9)
        .add("tcp_gbps", tcp.tcp / 1e9)
        .add("lease_rpc_p50_us", tcp.lease_p50_us)
        .add("ucx_vs_perftest_sm", ratio(sm.ucx, sm.perftest))
        .add("ucx_vs_getblocks_sm", ratio(sm.ucx, sm.getblocks))
        .add("lease_rpc_p99_us_sm", sm.lease_p99_us)
        .add("ucx_gbps_sm", sm.ucx / 1e9)
        .add("perftest_gbps_sm", sm.perftest / 1e9)
        .add("block_bytes", static_cast<long long>(kBlockBytes))
        .add("chain_blocks", static_cast<long long>(kChainBlocks))
        .add("errors", static_cast<long long>(bad))
        .add("targets_met", met);
    fmt::print("{}\n", j.str());
  }
  return bad == 0 ? 0 : 1;
}

}  // namespace kvtier::bench
