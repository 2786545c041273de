// `kvtier-bench host`: the host tier through the client library, 256 KiB blocks, against memcpy
// of the same bytes between the same memory in the same run: the baseline copies into (or out of)
// the very arena blocks the client uses, so the ratio is the client's overhead alone. (On a VM,
// copy bandwidth differs several-fold between regions of memory, so another buffer would measure
// page placement, not kvtier.)
//   put: reserve arena space, copy the block in, publish it in the index, commit.
//   get_copy: pin a chain's blocks and copy them out.
//   acquire + release: zero-copy reads of a cached chain (pin and unpin only).
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "bench_report.h"
#include "bench_timer.h"
#include "kvtier/client.h"
#include "suites.h"

namespace kvtier::bench {
namespace {

constexpr uint64_t kBlockBytes = 256 << 10;
constexpr size_t kChain = 64;

NamespaceSpec bench_model() {
  NamespaceSpec s;
  s.model_id = "bench/host";
  s.layout = {KvDType::kBFloat16, 16, 8, 4, 128, 2};  // 2 × 8 × 4 × 128 × 16 × 2 B = 256 KiB
  return s;
}

}  // namespace

int run_host_suite(const SuiteOptions& opt) {
  const uint64_t arena_bytes = opt.quick ? (256ULL << 20) : (1ULL << 30);
  const size_t blocks_per_round = arena_bytes / kBlockBytes / 2;  // half the arena per timed round
  const int rounds = opt.quick ? 2 : 5;
  ClientOptions co;
  co.node_name = fmt::format("bench-{}", ::getpid());
  co.create_if_missing = true;
  co.index_capacity = 1 << 20;
  co.host_bytes = arena_bytes;
  (void)Client::destroy_node(co);
  auto client_r = Client::open(co);
  if (!client_r.ok()) {
    fmt::print(stderr, "kvtier-bench host: {}\n", client_r.status().to_string());
    return 1;
  }
  Client& client = **client_r;
  // Whatever happens below, the node's segments go when the suite ends.
  struct NodeRemover {
    const ClientOptions& options;
    ~NodeRemover() { (void)Client::destroy_node(options); }
  } remover{co};
  const NamespaceHandle ns = client.register_namespace(bench_model()).value();

  std::vector<uint8_t> src(kBlockBytes);
  std::iota(src.begin(), src.end(), 0);
  uint32_t next_chain = 0;
  const auto fresh_keys = [&](size_t n) {
    std::vector<TokenId> t(n * 16);
    std::iota(t.begin(), t.end(), (next_chain++) * 1'000'000u);
    return client.keys(ns, t);
  };
  const auto clear_host = [&] { (void)client.evict(Tier::kHost, UINT64_MAX, *make_lru_policy()); };
  // The arena's pages are mapped into this process on first touch; touch them all once, as a
  // long-running engine would have, so puts are timed against warm memory like memcpy is.
  {
    const auto warm = fresh_keys(arena_bytes / kBlockBytes - 8);
    BlockKey parent = ns.ns.root();
    for (const auto& k : warm) {
      (void)client.put(ns, k, parent, src);
      parent = k;
    }
    clear_host();
  }

  // Puts vs memcpy into the same arena blocks: reserve them, copy in, drop the reservations; then
  // put fresh keys, which the allocator places in those same blocks.
  double put_best = 0, memcpy_best = 0;
  for (int r = 0; r < rounds; ++r) {
    {
      std::vector<PutReservation> held;
      const auto scratch = fresh_keys(blocks_per_round);
      held.reserve(scratch.size());
      for (const auto& k : scratch) held.push_back(std::move(client.reserve(ns, k, ns.ns.root()).value()));
      const double t0 = now_seconds();
      for (auto& h : held) std::memcpy(h.data(), src.data(), kBlockBytes);
      clobber_memory();
      memcpy_best = std::max(memcpy_best, static_cast<double>(blocks_per_round * kBlockBytes) / (now_seconds() - t0));
    }
    const auto keys = fresh_keys(blocks_per_round);
    BlockKey parent = ns.ns.root();
    const double t0 = now_seconds();
    for (const auto& k : keys) {
      if (const Status st = client.put(ns, k, parent, src); !st.ok()) {
        fmt::print(stderr, "kvtier-bench host: put failed: {}\n", st.to_string());
        return 1;
      }
      parent = k;
    }
    put_best = std::max(put_best, static_cast<double>(blocks_per_round * kBlockBytes) / (now_seconds() - t0));
    clear_host();
  }

  // A cached working set of chains for the read paths.
  std::vector<std::vector<BlockKey>> chains;
  for (size_t c = 0; c < blocks_per_round / kChain; ++c) {
    chains.push_back(fresh_keys(kChain));
    BlockKey parent = ns.ns.root();
    for (const auto& k : chains.back()) {
      (void)client.put(ns, k, parent, src);
      parent = k;
    }
  }
  std::vector<uint8_t> out(kChain * kBlockBytes);
  // The baseline reads the same arena blocks through views pinned once up front.
  std::vector<std::vector<HostBlock>> pinned;
  pinned.reserve(chains.size());
  for (const auto& chain : chains) pinned.push_back(std::move(client.acquire(chain).value()));
  size_t chain_i = 0;
  bool short_read = false;
  const PairedRates copy = best_paired_rates(
      [&](uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) {
          auto got = client.get_copy(ns, chains[chain_i++ % chains.size()], out);
          if (!got.ok() || *got != kChain) short_read = true;
        }
      },
      [&](uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) {
          const auto& blocks = pinned[chain_i++ % pinned.size()];
          for (size_t b = 0; b < blocks.size(); ++b)
            std::memcpy(out.data() + b * kBlockBytes, blocks[b].data(), kBlockBytes);
          clobber_memory();
        }
      },
      rounds, opt.quick ? 0.1 : 0.3);
  const auto chain_bytes = static_cast<double>(kChain * kBlockBytes);
  const double get_copy_bps = copy.subject * chain_bytes;
  const double get_memcpy_bps = copy.baseline * chain_bytes;

  double acquire_rate = 0;
  for (int r = 0; r < rounds; ++r) {
    acquire_rate = std::max(acquire_rate, rate_per_second(
                                              [&](uint64_t n) {
                                                for (uint64_t i = 0; i < n; ++i) {
                                                  auto blocks = client.acquire(chains[chain_i++ % chains.size()]);
                                                  if (!blocks.ok() || blocks->size() != kChain) short_read = true;
                                                }
                                              },
                                              opt.quick ? 0.1 : 0.3) *
                                              kChain);
  }
  pinned.clear();

  const double put_vs = memcpy_best > 0 ? put_best / memcpy_best : 0;
  const double get_vs = get_memcpy_bps > 0 ? get_copy_bps / get_memcpy_bps : 0;
  Table table({"operation (256 KiB blocks)", "GB/s or blocks/s", "memcpy GB/s", "ratio"});
  table.add_row(
      {"put (reserve, copy in, publish)", fixed(put_best / 1e9, 2), fixed(memcpy_best / 1e9, 2), fixed(put_vs, 3)});
  table.add_row({"get_copy (pin, copy out, unpin)", fixed(get_copy_bps / 1e9, 2), fixed(get_memcpy_bps / 1e9, 2),
                 fixed(get_vs, 3)});
  table.add_row({"acquire + release (zero copy)", fmt::format("{:.3g}", acquire_rate), "-", "-"});
  fmt::print("kvtier-bench host: {} arena, {} blocks per round{}\n", fmt::format("{} MiB", arena_bytes >> 20),
             blocks_per_round, opt.quick ? " (quick)" : "");
  fmt::print("{}", table.render());
  if (short_read) fmt::print("ERROR: a read returned fewer blocks than were cached\n");
  fmt::print("targets: put >= 0.8 x memcpy {}, get_copy >= 0.8 x memcpy {}, acquire+release >= 2M/s {}\n",
             put_vs >= 0.8 ? "met" : "MISSED", get_vs >= 0.8 ? "met" : "MISSED",
             acquire_rate >= 2e6 ? "met" : "MISSED");
  if (opt.json) {
    JsonObject j;
    j.add("suite", "host")
        .add("block_bytes", static_cast<long long>(kBlockBytes))
        .add("put_gbytes_per_s", put_best / 1e9)
        .add("put_vs_memcpy", put_vs)
        .add("get_copy_vs_memcpy", get_vs)
        .add("acquire_release_per_s", acquire_rate)
        .add("memcpy_gbytes_per_s", memcpy_best / 1e9)
        .add("get_copy_gbytes_per_s", get_copy_bps / 1e9)
        .add("reads_complete", !short_read)
        .add("quick", opt.quick);
    fmt::print("{}\n", j.str());
  }
  return short_read ? 1 : 0;
}

}  // namespace kvtier::bench
