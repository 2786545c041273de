// kvtier-bench: performance suites. Each measures its baseline in the same run and reports the
// ratio, because absolute figures drift on shared machines. docs/benchmarks.md lists the suites.
#include <CLI/CLI.hpp>

#include <array>
#include <string>
#include <vector>

#include "suites.h"

namespace {

struct SuiteEntry {
  const char* name;
  const char* description;
  int (*run)(const kvtier::bench::SuiteOptions&);
};

constexpr std::array<SuiteEntry, 8> kSuites{{
    {"keys", "prefix-chain key computation throughput vs memcpy", kvtier::bench::run_keys_suite},
    {"index", "shared-memory index lookups vs unordered_map and Redis", kvtier::bench::run_index_suite},
    {"host", "host tier put, get_copy and acquire+release vs memcpy", kvtier::bench::run_host_suite},
    {"ssd", "SSD tier writes and reads vs fio, warm restart, zstd on KV data", kvtier::bench::run_ssd_suite},
    {"server", "kvtierd under load: MatchPrefix QPS and p99, GetBlocks vs TCP, events",
     kvtier::bench::run_server_suite},
    {"transport", "remote reads out of a node's arena over UCX vs ucx_perftest, GetBlocks and loopback TCP",
     kvtier::bench::run_transport_suite},
    {"indexer", "kvtier-indexer: event ingestion, ScoreNodes p99 across 64 nodes, scoring vs Redis",
     kvtier::bench::run_indexer_suite},
    {"hbm", "CUDA copies of paged KV blocks to and from the host arena vs cudaMemcpy (needs a GPU)",
     kvtier::bench::run_hbm_suite},
}};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvtier-bench: kvtier performance suites"};
  app.require_subcommand(1);
  kvtier::bench::SuiteOptions options;
  std::vector<std::pair<CLI::App*, const SuiteEntry*>> commands;
  for (const auto& suite : kSuites) {
    auto* cmd = app.add_subcommand(suite.name, suite.description);
    cmd->add_flag("--quick", options.quick, "Shorter runs (CI smoke); same figures, wider error");
    cmd->add_flag("--json", options.json, "End with one JSON line of the figures");
    commands.emplace_back(cmd, &suite);
  }
  kvtier::bench::WorkloadCommandOptions workload;
  auto* wl = app.add_subcommand("workload", "Write the built-in synthetic workload as a trace, or describe a trace");
  wl->add_option("--out", workload.out, "Write the trace (JSONL, the Mooncake format) to this file");
  wl->add_option("--trace", workload.trace, "Describe this trace instead of generating one");
  wl->add_option("--requests", workload.synthetic.requests, "Requests to generate")->capture_default_str();
  wl->add_option("--seed", workload.synthetic.seed, "Random seed")->capture_default_str();
  wl->add_option("--tenants", workload.synthetic.tenants, "Tenants (disjoint keys)")->capture_default_str();
  wl->add_option("--sessions-per-s", workload.synthetic.sessions_per_s, "Session starts per second")
      ->capture_default_str();
  wl->add_option("--agent-share", workload.synthetic.agent_share, "Share of sessions that are agent loops")
      ->capture_default_str();
  wl->add_option(
      "--family", workload.family,
      "A preset (mixed, chat, agent, shared-prompts, rag, batch, tenants); --requests and --seed still apply");
  kvtier::bench::PolicyCommandOptions policy;
  auto* pc = app.add_subcommand("policy", "Eviction-policy study over a trace: hit ratios vs LRU and Belady's optimum");
  pc->add_option("--trace", policy.traces, "Mooncake-format traces (repeatable)");
  pc->add_option("--family", policy.families,
                 "Synthetic workload families (repeatable): mixed, chat, agent, shared-prompts, rag, batch, tenants; "
                 "with no --trace and no --family: mixed");
  pc->add_option("--family-requests", policy.family_requests, "Requests generated per synthetic family")
      ->capture_default_str();
  pc->add_option("--host-blocks", policy.host_blocks, "Host capacities, in blocks of 512 tokens")
      ->capture_default_str();
  pc->add_option("--policies", policy.policies, "Index policies to compare")->capture_default_str();
  pc->add_option("--put-admission", policy.put_admission, "Engines' put admission in every run: all, by-policy")
      ->capture_default_str();
  pc->add_option("--ssd-multiple", policy.ssd_multiple, "SSD capacity in the two-tier runs, in host capacities")
      ->capture_default_str();
  pc->add_option("--report", policy.report_dir, "Write a markdown report, its data and PNG plots to this directory");
  pc->add_flag("--json", policy.json, "End with one JSON line of the figures");
  kvtier::bench::ReplayCommandOptions replay;
  auto* rc = app.add_subcommand("replay", "Replay a trace through the client library against a live kvtierd");
  rc->add_option("--trace", replay.trace, "Mooncake-format trace (default: the synthetic workload's --family)");
  rc->add_option("--family", replay.family, "Synthetic workload family when no --trace is given")
      ->capture_default_str();
  rc->add_option("--policy", replay.policy, "The node's eviction policy")->capture_default_str();
  rc->add_option("--put-admission", replay.put_admission, "The node's put admission: all, by-policy")
      ->capture_default_str();
  rc->add_option("--requests", replay.requests, "Replay only the first N requests (0: all)")->capture_default_str();
  rc->add_option("--host-tokens", replay.host_tokens, "Host tier capacity, in tokens")->capture_default_str();
  rc->add_option("--ssd-tokens", replay.ssd_tokens, "SSD tier capacity, in tokens (0: none)")->capture_default_str();
  rc->add_option("--ssd-min-accesses", replay.ssd_min_accesses, "SSD admission: uses a block needs")
      ->capture_default_str();
  rc->add_option("--ssd-ancestor-hops", replay.ssd_ancestor_hops,
                 "SSD admission: or one of its nearest this many ancestors")
      ->capture_default_str();
  rc->add_option("--prefill-tokens-per-s", replay.prefill_tokens_per_s, "TTFT model: prefill rate of model and GPU")
      ->capture_default_str();
  rc->add_option("--kv-bytes-per-token", replay.kv_bytes_per_token, "TTFT model: the model's KV bytes per token")
      ->capture_default_str();
  rc->add_option("--host-gb-per-s", replay.host_gb_per_s, "TTFT model: host memory to GPU")->capture_default_str();
  rc->add_option("--ssd-gb-per-s", replay.ssd_gb_per_s, "TTFT model: SSD to GPU")->capture_default_str();
  rc->add_flag("--json", replay.json, "End with one JSON line of the figures");
  kvtier::bench::SoakCommandOptions soak;
  auto* sc = app.add_subcommand("soak", "kvtierd under mixed load with SIGKILLed clients, watched for leaks");
  sc->add_option("--minutes", soak.minutes, "How long (at least 20 s)")->capture_default_str();
  sc->add_option("--samples", soak.samples_file, "Write every sample (2 s apart) to this file, tab-separated");
  sc->add_flag("--json", soak.json, "End with one JSON line of the figures");
  kvtier::bench::SoakEngineOptions engine;
  auto* se = app.add_subcommand("soak-engine", "(started by soak) an engine process putting and acquiring");
  se->group("");  // not for people
  se->add_option("--node", engine.node)->required();
  se->add_option("--parent", engine.parent)->required();
  se->add_option("--seed", engine.seed);
  CLI11_PARSE(app, argc, argv);
  if (sc->parsed()) return kvtier::bench::run_soak_command(soak);
  if (se->parsed()) return kvtier::bench::run_soak_engine(engine);
  if (rc->parsed()) return kvtier::bench::run_replay_command(replay);
  if (wl->parsed()) return kvtier::bench::run_workload_command(workload);
  if (pc->parsed()) return kvtier::bench::run_policy_command(policy);
  for (const auto& [cmd, suite] : commands) {
    if (cmd->parsed()) return suite->run(options);
  }
  return 2;
}
