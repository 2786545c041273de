// kvtier-bench replay: a trace through the real client library against a live kvtierd (started
// here, with the capacities asked for), as an engine would run it: per request, acquire the host
// prefix and load its SSD continuation, then write every block it lacks. Block payloads are
// scaled down to fit this machine; hit ratios are those of the logical capacities. Prefill time
// saved comes from the TTFT model in docs/benchmarks.md.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "bench_node.h"
#include "bench_report.h"
#include "kvtier/client.h"
#include "kvtier/eviction_policy.h"
#include "metrics_scrape.h"
#include "suites.h"
#include "tiers/host/arena_layout.h"
#include "workload/synthetic_workload.h"
#include "workload/trace.h"

namespace kvtier::bench {
namespace {

using workload::kTraceBlockTokens;

// A 512-token block of 64 KiB (one layer, one head of 32 dims, K and V in bf16): exactly one
// host-arena unit, so the arena holds the blocks the capacity names and the index's occupancy,
// which the daemon's watermarks read, is the arena's. (Blocks of 16 KiB took a 64 KiB unit each:
// the arena held a quarter of the blocks asked for, and the replay hit 0.048 of blocks where the
// policy study, at the capacity asked for, hit 0.080.)
NamespaceSpec replay_namespace() {
  NamespaceSpec s;
  s.model_id = "kvtier-bench/replay";
  s.layout.dtype = KvDType::kBFloat16;
  s.layout.block_tokens = kTraceBlockTokens;
  s.layout.num_layers = 1;
  s.layout.num_kv_heads = 1;
  s.layout.head_dim = 32;
  s.layout.kv_planes = 2;
  return s;
}

// Redraws one stderr line: every 1 % on a terminal, every 10 % otherwise.
class Progress {
 public:
  explicit Progress(size_t total) : total_(total), tty_(::isatty(STDERR_FILENO) != 0) {}
  void update(size_t done, double hit) {
    const size_t step = tty_ ? 100 : 10;
    const size_t now = total_ == 0 ? step : done * step / total_;
    if (now == shown_ && done != total_) return;
    shown_ = now;
    const size_t width = 30, filled = total_ == 0 ? width : done * width / total_;
    fmt::print(stderr, "{}[{}{}] {:3}% {}/{} requests, block hit {:.3f}{}", tty_ ? "\r" : "", std::string(filled, '#'),
               std::string(width - filled, ' '), total_ == 0 ? 100 : done * 100 / total_, done, total_, hit,
               tty_ && done != total_ ? "" : "\n");
  }

 private:
  size_t total_, shown_ = SIZE_MAX;
  bool tty_;
};

}  // namespace

int run_replay_command(const ReplayCommandOptions& o) {
  auto synthetic = workload::synthetic_family(o.family);
  if (!synthetic.ok()) {
    fmt::print(stderr, "kvtier-bench replay: {}\n", synthetic.status().to_string());
    return 2;
  }
  if (auto admission = parse_put_admission(o.put_admission); !admission.ok()) {
    fmt::print(stderr, "kvtier-bench replay: {}\n", admission.status().to_string());
    return 2;
  }
  if (auto policy = make_eviction_policy(o.policy); !policy.ok()) {
    fmt::print(stderr, "kvtier-bench replay: {}\n", policy.status().to_string());
    return 2;
  }
  auto input = workload::load_workload(o.trace, *synthetic);
  if (!input.ok()) {
    fmt::print(stderr, "kvtier-bench replay: {}\n", input.status().to_string());
    return 2;
  }
  std::vector<workload::TraceRequest>& trace = input->requests;
  if (o.trace.empty())
    input->source = fmt::format("the synthetic workload, family {} (seed {})", o.family, synthetic->seed);
  const std::string& source = input->source;
  if (o.requests > 0 && trace.size() > o.requests) trace.resize(o.requests);
  if (o.host_tokens < kTraceBlockTokens) {
    fmt::print(stderr, "kvtier-bench replay: --host-tokens must hold at least one block of {}\n", kTraceBlockTokens);
    return 2;
  }
  const NamespaceSpec spec = replay_namespace();
  const uint64_t block_bytes = spec.layout.bytes_per_block();
  if (block_bytes != host::kUnitBytes) {
    fmt::print(stderr, "kvtier-bench replay: a block of {} bytes is not one host-arena unit\n", block_bytes);
    return 2;
  }
  const uint64_t host_blocks = o.host_tokens / kTraceBlockTokens, ssd_blocks = o.ssd_tokens / kTraceBlockTokens;
  const uint64_t slab = 1ULL << 20;
  // Whole slabs of whole blocks: the capacity asked for, rounded up to a slab (16 blocks).
  const uint64_t host_bytes = (host_blocks * block_bytes + slab - 1) / slab * slab;

  const std::string dir = fmt::format("/tmp/kvtier-bench-replay-{}", ::getpid());
  const std::string node = fmt::format("bench-replay-{}", ::getpid());
  const int metrics_port = free_loopback_port();
  std::string ssd = "ssd: {enabled: false}";
  if (ssd_blocks > 0) {
    // A quarter more than the blocks, for regions being reclaimed, and the tier's 64 MiB minimum.
    const uint64_t ssd_bytes = (ssd_blocks * block_bytes * 5 / 4 + slab - 1) / slab * slab + 8 * slab;
    if (ssd_bytes < (64ULL << 20)) {
      fmt::print(stderr, "kvtier-bench replay: --ssd-tokens must be 0 or at least {} (the SSD tier's 64 MiB)\n",
                 ((64ULL << 20) - 8 * slab) * 4 / 5 / block_bytes * kTraceBlockTokens + kTraceBlockTokens);
      return 2;
    }
    ssd = fmt::format(
        "ssd: {{dir: {}/ssd, bytes: {}, region_bytes: 1MiB, admission: {{min_accesses: {}, ancestor_hops: {}}}}}", dir,
        ssd_bytes, o.ssd_min_accesses, o.ssd_ancestor_hops);
  }
  const std::string config = fmt::format(
      "node: {{name: {}, shm_prefix: {}}}\nindex: {{capacity: {}}}\n"
      "host: {{bytes: {}, slab_bytes: 1MiB, eviction_policy: {}, put_admission: {}}}\n"
      "{}\nserver: {{grpc_address: \"127.0.0.1:{}\", metrics_address: \"127.0.0.1:{}\"}}\nlog: {{level: info}}\n"
      "namespaces:\n  - model_id: {}\n    layout: {{dtype: bf16, block_tokens: {}, num_layers: 1, num_kv_heads: 1, "
      "head_dim: {}, kv_planes: 2}}\n",
      node, kBenchShmPrefix, (host_blocks + ssd_blocks) * 2 + 65536, host_bytes, o.policy, o.put_admission, ssd,
      free_loopback_port(), metrics_port, spec.model_id, kTraceBlockTokens, spec.layout.head_dim);
  std::string why;
  auto bench_node = BenchNode::start(dir, node, config, &why);
  if (!bench_node) {
    fmt::print(stderr, "kvtier-bench replay: {}\n", why);
    return 1;
  }
  Client& client = bench_node->client();
  auto ns = client.register_namespace(spec);
  if (!ns.ok()) {
    fmt::print(stderr, "kvtier-bench replay: {}\n", ns.status().to_string());
    return 1;
  }

  const auto started = std::chrono::steady_clock::now();
  const ClientStats before_client = client.stats();
  const IndexStats& before = before_client.index;
  const double demoted_before = scrape_metric(metrics_port, "kvtier_demotions_total").value_or(0);
  std::vector<uint8_t> payload(block_bytes, 0x5a);
  uint64_t block_refs = 0, input_tokens = 0, host_hit = 0, ssd_hit = 0, host_hit_tokens = 0, ssd_hit_tokens = 0;
  uint64_t puts = 0, loaded = 0, put_failures = 0, not_admitted = 0;
  double saved_s = 0, prefill_s = 0, host_saved_s = 0;  // the SSD's share is the rest
  const double per_token_s = 1.0 / o.prefill_tokens_per_s;
  const double host_token_s = o.kv_bytes_per_token / (o.host_gb_per_s * 1e9);
  const double ssd_token_s = o.kv_bytes_per_token / (o.ssd_gb_per_s * 1e9);
  Progress progress(trace.size());
  std::vector<BlockKey> keys;
  for (size_t q = 0; q < trace.size(); ++q) {
    const workload::TraceRequest& r = trace[q];
    keys.clear();
    for (uint64_t id : r.hash_ids) keys.push_back(workload::trace_block_key(id));
    block_refs += keys.size();
    input_tokens += r.input_length;
    prefill_s += double(r.input_length) * per_token_s;
    const auto tokens_of = [&](size_t i) {
      return std::min<uint64_t>(kTraceBlockTokens, r.input_length - i * uint64_t{kTraceBlockTokens});
    };
    auto acq = client.acquire_or_load(keys);
    if (!acq.ok()) {
      fmt::print(stderr, "kvtier-bench replay: {}\n", acq.status().to_string());
      return 1;
    }
    const size_t in_host = acq->host.size();
    size_t from_ssd = 0;
    if (acq->load.size() > 0) {
      (void)acq->load.wait(std::chrono::seconds(5));
      // What the load brought: the prefix now held in host memory past what already was.
      auto again = client.acquire(keys);
      if (again.ok() && again->size() > in_host) from_ssd = again->size() - in_host;
      if (again.ok()) acq->host = std::move(again).value();
      loaded += acq->load.size();
    }
    for (size_t i = 0; i < in_host + from_ssd; ++i) {
      const uint64_t t = tokens_of(i);
      (i < in_host ? host_hit_tokens : ssd_hit_tokens) += t;
      const double saved = double(t) * (per_token_s - (i < in_host ? host_token_s : ssd_token_s));
      saved_s += saved;
      if (i < in_host) host_saved_s += saved;
    }
    host_hit += in_host;
    ssd_hit += from_ssd;
    // The engine computes the rest and writes it back; the held prefix stays pinned meanwhile.
    for (size_t i = in_host + from_ssd; i < keys.size(); ++i) {
      const Status s = client.put(*ns, keys[i], i == 0 ? ns->ns.root() : keys[i - 1], payload);
      if (s.ok()) {
        ++puts;
      } else if (s.code() == StatusCode::kNotAdmitted) {
        ++not_admitted;  // refused with the rest of its chain: the engine keeps its own copy
        break;
      } else {
        ++put_failures;  // the arena full of pinned blocks: the engine would simply not cache it
      }
    }
    acq->host.clear();
    progress.update(q + 1, block_refs == 0 ? 0 : double(host_hit + ssd_hit) / double(block_refs));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const ClientStats after_client = client.stats();
  const IndexStats& after = after_client.index;
  // Who made room: the daemon (at its high watermark, or asked by a put that found the arena
  // full) or the engine itself (the daemon too slow to answer a full arena).
  const uint64_t room_waits = after_client.room_waits - before_client.room_waits;
  const uint64_t engine_evictions = after_client.evictions_for_room - before_client.evictions_for_room;
  const auto demoted_after = scrape_metric(metrics_port, "kvtier_demotions_total");
  const long long demotions = demoted_after ? static_cast<long long>(*demoted_after - demoted_before) : -1;
  const auto ratio = [](uint64_t a, uint64_t b) { return b == 0 ? 0.0 : double(a) / double(b); };

  Table table({"figure", "value"});
  table.add_row({"requests", fmt::format("{}", trace.size())});
  table.add_row({"host capacity", fmt::format("{} tokens ({} blocks)", host_blocks * kTraceBlockTokens, host_blocks)});
  table.add_row({"SSD capacity", fmt::format("{} tokens ({} blocks)", ssd_blocks * kTraceBlockTokens, ssd_blocks)});
  table.add_row(
      {"block hit (host + SSD)", fmt::format("{:.3f} ({:.3f} + {:.3f})", ratio(host_hit + ssd_hit, block_refs),
                                             ratio(host_hit, block_refs), ratio(ssd_hit, block_refs))});
  table.add_row({"token hit (host + SSD)",
                 fmt::format("{:.3f} ({:.3f} + {:.3f})", ratio(host_hit_tokens + ssd_hit_tokens, input_tokens),
                             ratio(host_hit_tokens, input_tokens), ratio(ssd_hit_tokens, input_tokens))});
  table.add_row({"blocks written / loaded from SSD", fmt::format("{} / {}", puts, loaded)});
  table.add_row(
      {"bytes written / loaded (scaled)", fmt::format("{:.1f} MiB / {:.1f} MiB", double(puts * block_bytes) / (1 << 20),
                                                      double(loaded * block_bytes) / (1 << 20))});
  table.add_row(
      {"host evictions / demotions to SSD", fmt::format("{} / {}", after.evictions - before.evictions, demotions)});
  table.add_row({"puts that waited for room / evicted for room", fmt::format("{} / {}", room_waits, engine_evictions)});
  table.add_row({"puts not admitted (chains refused)", fmt::format("{} ({})", not_admitted, o.put_admission)});
  const auto share = [&](double s) { return prefill_s > 0 ? s / prefill_s : 0.0; };
  table.add_row({"prefill time saved (model)",
                 fmt::format("{:.1f} s of {:.1f} s ({:.1f} %: host {:.1f} %, SSD {:.1f} %)", saved_s, prefill_s,
                             100 * share(saved_s), 100 * share(host_saved_s), 100 * share(saved_s - host_saved_s))});
  table.add_row({"replay time", fmt::format("{:.1f} s", seconds)});
  fmt::print("kvtier-bench replay: {} against a live kvtierd, {} eviction\n{}", source,
             client.index().eviction_policy()->name(), table.render());
  if (put_failures > 0) fmt::print("{} blocks could not be written (arena full of pinned blocks)\n", put_failures);
  if (o.json) {
    JsonObject j;
    j.add("suite", "replay");
    j.add("requests", static_cast<long long>(trace.size()));
    j.add("block_hit", ratio(host_hit + ssd_hit, block_refs));
    j.add("token_hit", ratio(host_hit_tokens + ssd_hit_tokens, input_tokens));
    j.add("host_block_hit", ratio(host_hit, block_refs));
    j.add("ssd_block_hit", ratio(ssd_hit, block_refs));
    j.add("host_token_hit", ratio(host_hit_tokens, input_tokens));
    j.add("ssd_token_hit", ratio(ssd_hit_tokens, input_tokens));
    j.add("blocks_written", static_cast<long long>(puts));
    j.add("blocks_loaded", static_cast<long long>(loaded));
    j.add("evictions", static_cast<long long>(after.evictions - before.evictions));
    j.add("demotions", demotions);
    j.add("room_waits", static_cast<long long>(room_waits));
    j.add("engine_evictions_for_room", static_cast<long long>(engine_evictions));
    j.add("not_admitted", static_cast<long long>(not_admitted));
    j.add("put_admission", o.put_admission);
    j.add("prefill_saved_s", saved_s);
    j.add("prefill_saved_fraction", share(saved_s));
    j.add("host_prefill_saved_fraction", share(host_saved_s));
    j.add("ssd_prefill_saved_fraction", share(saved_s - host_saved_s));
    j.add("policy", client.index().eviction_policy()->name());
    j.add("seconds", seconds);
    fmt::print("{}\n", j.str());
  }
  return 0;
}

}  // namespace kvtier::bench
