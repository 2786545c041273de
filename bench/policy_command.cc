// kvtier-bench policy: the eviction-policy study. Replays a trace through the index's own policy
// code in simulation (bench/policy/policy_simulator.h) at several host capacities, with Belady's
// optimum as the bound, then the default policy over host memory and an SSD tier per tier.
#include <fmt/format.h>

#include <map>

#include "bench_report.h"
#include "policy/policy_simulator.h"
#include "policy_report.h"
#include "suites.h"
#include "workload/synthetic_workload.h"
#include "workload/trace.h"

namespace kvtier::bench {
namespace {

std::string tokens_label(uint64_t blocks) {
  const uint64_t tokens = blocks * workload::kTraceBlockTokens;
  if (tokens % 1000000 == 0 || tokens >= 10000000) return fmt::format("{}M", (tokens + 500000) / 1000000);
  return fmt::format("{:.2g}M", double(tokens) / 1e6);
}

}  // namespace

int run_policy_command(const PolicyCommandOptions& o) {
  auto input = workload::load_workload(o.trace);
  if (!input.ok()) {
    fmt::print(stderr, "kvtier-bench policy: {}\n", input.status().to_string());
    return 2;
  }
  std::vector<workload::TraceRequest>& trace = input->requests;
  const std::string& source = input->source;
  const workload::TraceStats stats = workload::trace_stats(trace);
  fmt::print("kvtier-bench policy: {} ({} requests, {} block references; an infinite cache hits {:.3f})\n", source,
             stats.requests, stats.block_refs, stats.ideal_block_hit());

  // Host memory alone, every policy at every capacity; hit ratios by block and by token.
  std::map<std::pair<std::string, uint64_t>, policy::SimulationResult> host;
  Table table({"policy", "host", "block hit", "token hit", "vs lru", "evicted", "seconds"});
  for (uint64_t blocks : o.host_blocks) {
    std::vector<policy::SimulationResult> row;
    for (const std::string& name : o.policies) {
      policy::SimulationOptions so;
      so.policy = name;
      so.host_blocks = blocks;
      auto r = policy::simulate(trace, so);
      if (!r.ok()) {
        fmt::print(stderr, "kvtier-bench policy: {}: {}\n", name, r.status().to_string());
        return 2;
      }
      row.push_back(std::move(r).value());
    }
    row.push_back(policy::simulate_exact_lru(trace, blocks));
    row.push_back(policy::simulate_belady(trace, blocks));
    for (policy::SimulationResult& r : row) host[{r.policy, blocks}] = r;
    const double lru_hit = host.contains({"lru", blocks}) ? host[{"lru", blocks}].block_hit() : 0;
    for (const policy::SimulationResult& r : row) {
      table.add_row({r.policy, tokens_label(blocks), fixed(r.block_hit(), 3), fixed(r.token_hit(), 3),
                     lru_hit > 0 ? fixed(r.block_hit() / lru_hit, 2) : "-", fmt::format("{}", r.dropped + r.demoted),
                     fixed(r.seconds, 2)});
    }
  }
  fmt::print("\nHost memory alone (capacity in tokens, {} per block):\n{}", workload::kTraceBlockTokens,
             table.render());

  // The default policy over host memory and an SSD tier, with and without the admission filter.
  std::vector<std::pair<uint32_t, policy::SimulationResult>> tiered;  // (admission, result)
  Table tiers({"host", "ssd", "admission", "host hit", "ssd hit", "block hit", "token hit", "demoted", "refused"});
  for (uint64_t blocks : o.host_blocks) {
    for (uint32_t min_accesses : {1U, 2U}) {
      policy::SimulationOptions so;
      so.policy = o.default_policy;
      so.host_blocks = blocks;
      so.ssd_blocks = blocks * o.ssd_multiple;
      so.ssd_min_accesses = min_accesses;
      auto r = policy::simulate(trace, so);
      if (!r.ok()) {
        fmt::print(stderr, "kvtier-bench policy: {}\n", r.status().to_string());
        return 2;
      }
      tiered.emplace_back(min_accesses, *r);
      tiers.add_row({tokens_label(blocks), tokens_label(so.ssd_blocks),
                     min_accesses == 1 ? "every block" : fmt::format("used {}+ times", min_accesses),
                     fixed(r->host_block_hit(), 3), fixed(r->ssd_block_hit(), 3), fixed(r->block_hit(), 3),
                     fixed(r->token_hit(), 3), fmt::format("{}", r->demoted), fmt::format("{}", r->ssd_refused)});
    }
  }
  fmt::print("\n{} over host memory and an SSD tier {}× its size:\n{}", o.default_policy, o.ssd_multiple,
             tiers.render());

  if (!o.report_dir.empty()) {
    const PolicyReport report{source,         stats,          o.policies,    o.default_policy,
                              o.ssd_multiple, table.render(), tiers.render()};
    if (auto s = write_policy_report(o.report_dir, report, host, tiered); !s.ok()) {
      fmt::print(stderr, "kvtier-bench policy: {}\n", s.to_string());
      return 1;
    }
  }
  if (o.json) {
    JsonObject j;
    j.add("suite", "policy");
    // Against textbook LRU (the reference figures), and against the index's sampled LRU.
    const auto ratio = [&](const char* baseline, uint64_t blocks) -> std::optional<double> {
      auto d = host.find({o.default_policy, blocks});
      auto l = host.find({baseline, blocks});
      if (d == host.end() || l == host.end() || l->second.block_hit() == 0) return std::nullopt;
      return d->second.block_hit() / l->second.block_hit();
    };
    for (const auto& [baseline, prefix] :
         {std::pair{"lru-exact", "default_vs_lru"}, std::pair{"lru", "default_vs_sampled_lru"}}) {
      for (auto [label, blocks] : {std::pair{"1m", 2000ULL}, std::pair{"3m", 6000ULL}, std::pair{"10m", 20000ULL}}) {
        const auto r = ratio(baseline, blocks);
        const std::string key = fmt::format("{}_{}", prefix, label);
        if (r) {
          j.add(key, *r);
        } else {
          j.add_null(key);
        }
      }
    }
    if (auto b = host.find({"belady", 2000}); b != host.end()) {
      j.add("belady_1m", b->second.block_hit());
    } else {
      j.add_null("belady_1m");
    }
    for (const auto& [k, r] : host)
      j.add(fmt::format("{}_{}_block_hit", k.first, tokens_label(k.second)), r.block_hit());
    fmt::print("{}\n", j.str());
  }
  return 0;
}

}  // namespace kvtier::bench
