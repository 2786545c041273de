// kvtier-bench policy: the eviction-policy study. Replays traces through the index's own policy
// code in simulation (bench/policy/policy_simulator.h) at several host capacities, with exact LRU
// as the baseline and Belady's optimum as the bound, then the default policy over host memory and
// an SSD tier per tier. Several traces (files, synthetic families) make one summary table.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <optional>

#include "bench_report.h"
#include "policy/feature_admission.h"
#include "policy/policy_simulator.h"
#include "policy_report.h"
#include "suites.h"
#include "tiers/ssd/admission_filter.h"
#include "workload/synthetic_workload.h"
#include "workload/trace.h"

namespace kvtier::bench {
namespace {

using HostResults = std::map<std::pair<std::string, uint64_t>, policy::SimulationResult>;

// The JSON's capacity labels: the targets are at these host sizes.
constexpr std::pair<const char*, uint64_t> kTargetCapacities[] = {{"1m", 2000}, {"3m", 6000}, {"10m", 20000}};

std::string tokens_label(uint64_t blocks) {
  const uint64_t tokens = blocks * workload::kTraceBlockTokens;
  if (tokens % 1000000 == 0 || tokens >= 10000000) return fmt::format("{}M", (tokens + 500000) / 1000000);
  return fmt::format("{:.2g}M", double(tokens) / 1e6);
}

struct StudyInput {
  std::string label;  // names the trace in the summary, the JSON keys and the report's folder
  std::string source;
  std::vector<workload::TraceRequest> requests;
};

std::string json_label(const std::string& label) {
  std::string out;
  for (char c : label) out += std::isalnum(static_cast<unsigned char>(c)) != 0 ? c : '_';
  return out;
}

Result<std::vector<StudyInput>> study_inputs(const PolicyCommandOptions& o) {
  std::vector<StudyInput> in;
  for (const std::string& path : o.traces) {
    auto read = workload::read_trace(path);
    if (!read.ok()) return read.status();
    in.push_back({std::filesystem::path(path).stem().string(), path, std::move(read).value()});
  }
  std::vector<std::string> families = o.families;
  if (in.empty() && families.empty()) families.emplace_back("mixed");
  for (const std::string& family : families) {
    workload::SyntheticOptions base;
    base.requests = o.family_requests;
    auto options = workload::synthetic_family(family, base);
    if (!options.ok()) return options.status();
    auto made = workload::generate_synthetic_workload(*options);
    if (!made.ok()) return made.status();
    in.push_back({"synthetic-" + family,
                  fmt::format("the synthetic workload, family {} (seed {})", family, options->seed),
                  std::move(made).value()});
  }
  return in;
}

// The share of the gap between exact LRU and Belady's optimum the default policy closes.
std::optional<double> gap_closed(const HostResults& host, const std::string& policy, uint64_t blocks) {
  const auto d = host.find({policy, blocks}), l = host.find({"lru-exact", blocks}), b = host.find({"belady", blocks});
  if (d == host.end() || l == host.end() || b == host.end()) return std::nullopt;
  // Where LRU is already within a fifth of a percent of the optimum (the working set fits) there is
  // no gap to speak of, and a ratio of two tiny differences would only be noise.
  const double gap = b->second.block_hit() - l->second.block_hit();
  if (gap < 0.002) return std::nullopt;
  return (d->second.block_hit() - l->second.block_hit()) / gap;
}

std::optional<double> versus(const HostResults& host, const std::string& policy, const char* baseline,
                             uint64_t blocks) {
  const auto d = host.find({policy, blocks}), l = host.find({baseline, blocks});
  if (d == host.end() || l == host.end() || l->second.block_hit() == 0) return std::nullopt;
  return d->second.block_hit() / l->second.block_hit();
}

std::string maybe(std::optional<double> v, int digits) { return v ? fixed(*v, digits) : "-"; }

// How the two-tier table names an SSD admission rule.
std::string admission_label(const ssd::AdmissionOptions& rule) {
  if (rule.min_accesses <= 1) return "every block";
  if (rule.ancestor_hops == 0) return fmt::format("used {}+ times", rule.min_accesses);
  if (rule.ancestor_hops == 1) return fmt::format("used {}+, or parent", rule.min_accesses);
  return fmt::format("used {}+, or {} up", rule.min_accesses, rule.ancestor_hops);
}

// One trace: every policy at every capacity, then the two-tier runs. Prints both tables.
Result<HostResults> study(const PolicyCommandOptions& o, PutAdmission admission, const StudyInput& input,
                          const std::string& report_dir) {
  const std::vector<workload::TraceRequest>& trace = input.requests;
  const workload::TraceStats stats = workload::trace_stats(trace);
  fmt::print(
      "\nkvtier-bench policy: {} ({} requests, {} block references; an infinite cache hits {:.3f}); put admission: "
      "{}\n",
      input.source, stats.requests, stats.block_refs, stats.ideal_block_hit(), put_admission_name(admission));

  HostResults host;
  Table feature_rules({"host", "best rule", "block hit"});
  Table table({"policy", "host", "block hit", "token hit", "vs lru", "evicted", "not admitted", "seconds"});
  for (uint64_t blocks : o.host_blocks) {
    std::vector<policy::SimulationResult> row;
    for (const std::string& name : o.policies) {
      policy::SimulationOptions so;
      so.policy = name;
      so.host_blocks = blocks;
      so.put_admission = admission;
      auto r = policy::simulate(trace, so);
      if (!r.ok()) return r.status().with_context(name);
      row.push_back(std::move(r).value());
    }
    row.push_back(policy::simulate_exact_lru(trace, blocks));
    row.push_back(policy::simulate_lru_oracle_admission(trace, blocks));
    policy::FeatureAdmissionResult by_features = policy::simulate_lru_feature_admission(trace, blocks);
    feature_rules.add_row(
        {tokens_label(blocks), by_features.rule.describe(), fixed(by_features.result.block_hit(), 3)});
    row.push_back(std::move(by_features.result));
    row.push_back(policy::simulate_belady(trace, blocks));
    for (policy::SimulationResult& r : row) host[{r.policy, blocks}] = r;
    for (const policy::SimulationResult& r : row) {
      table.add_row({r.policy, tokens_label(blocks), fixed(r.block_hit(), 3), fixed(r.token_hit(), 3),
                     maybe(versus(host, r.policy, "lru-exact", blocks), 2), fmt::format("{}", r.dropped + r.demoted),
                     fmt::format("{}", r.not_admitted), fixed(r.seconds, 2)});
    }
  }
  fmt::print("\nHost memory alone (capacity in tokens, {} per block; vs lru: against exact LRU):\n{}",
             workload::kTraceBlockTokens, table.render());
  fmt::print(
      "\nlru-feature-admission: exact LRU admitting a request's new blocks by its conversation's turn and the time "
      "since its previous turn, the best of {} rules chosen with hindsight:\n{}",
      policy::feature_rule_grid().size(), feature_rules.render());

  // The default policy over host memory and an SSD tier, under three SSD admission rules: every
  // block, the wear guard on a block's own uses, and the daemon's default (its own uses or a near
  // ancestor's); on the SSD tier the daemon keeps (regions reclaimed oldest first, blocks read
  // since written rewritten), and on an idealised one the index's policy evicts block by block.
  const ssd::AdmissionOptions daemon;
  std::vector<ssd::AdmissionOptions> rules{{1, 0, 0}, {daemon.min_accesses, 0, 0}};
  if (daemon.ancestor_hops > 0) rules.push_back({daemon.min_accesses, daemon.ancestor_hops, 0});
  std::vector<std::pair<std::string, policy::SimulationResult>> tiered;  // (admission, result), the daemon's tier
  Table tiers({"host", "ssd", "admission", "ssd evicts", "host hit", "ssd hit", "block hit", "token hit", "demoted",
               "declined", "ssd lost"});
  for (uint64_t blocks : o.host_blocks) {
    for (const bool by_policy : {false, true}) {
      for (const ssd::AdmissionOptions& rule : rules) {
        policy::SimulationOptions so;
        so.policy = o.default_policy;
        so.host_blocks = blocks;
        so.put_admission = admission;
        so.ssd_blocks = blocks * o.ssd_multiple;
        so.ssd_min_accesses = rule.min_accesses;
        so.ssd_ancestor_hops = rule.ancestor_hops;
        so.ssd_by_policy = by_policy;
        auto r = policy::simulate(trace, so);
        if (!r.ok()) return r.status();
        const std::string label = admission_label(rule);
        if (!by_policy) tiered.emplace_back(label, *r);
        tiers.add_row({tokens_label(blocks), tokens_label(so.ssd_blocks), label,
                       by_policy ? "by policy" : "oldest region", fixed(r->host_block_hit(), 3),
                       fixed(r->ssd_block_hit(), 3), fixed(r->block_hit(), 3), fixed(r->token_hit(), 3),
                       fmt::format("{}", r->demoted), fmt::format("{}", r->ssd_declined),
                       fmt::format("{}", r->ssd_lost)});
      }
    }
  }
  fmt::print(
      "\n{} over host memory and an SSD tier {}× its size (ssd evicts: the oldest of {} regions, as the daemon's "
      "store, or block by block by the policy):\n{}",
      o.default_policy, o.ssd_multiple, policy::SimulationOptions{}.ssd_regions, tiers.render());

  if (!report_dir.empty()) {
    std::vector<std::string> columns = o.policies;
    columns.emplace_back("lru-oracle-admission");
    columns.emplace_back("lru-feature-admission");
    const PolicyReport report{input.source,   stats,          columns,       o.default_policy,
                              o.ssd_multiple, table.render(), tiers.render()};
    KVTIER_RETURN_IF_ERROR(write_policy_report(report_dir, report, host, tiered));
  }
  return host;
}

}  // namespace

int run_policy_command(const PolicyCommandOptions& asked) {
  // The summary and the JSON's figures are the default's: it is studied whatever --policies names.
  PolicyCommandOptions o = asked;
  if (std::find(o.policies.begin(), o.policies.end(), o.default_policy) == o.policies.end()) {
    o.policies.push_back(o.default_policy);
  }
  const auto admission = parse_put_admission(o.put_admission);
  if (!admission.ok()) {
    fmt::print(stderr, "kvtier-bench policy: {}\n", admission.status().to_string());
    return 2;
  }
  auto inputs = study_inputs(o);
  if (!inputs.ok()) {
    fmt::print(stderr, "kvtier-bench policy: {}\n", inputs.status().to_string());
    return 2;
  }
  const bool several = inputs->size() > 1;
  std::vector<HostResults> results;
  for (const StudyInput& input : *inputs) {
    const std::string dir =
        o.report_dir.empty() || !several ? o.report_dir : (std::filesystem::path(o.report_dir) / input.label).string();
    auto r = study(o, *admission, input, dir);
    if (!r.ok()) {
      fmt::print(stderr, "kvtier-bench policy: {}: {}\n", input.label, r.status().to_string());
      return 2;
    }
    results.push_back(std::move(r).value());
  }

  // Every trace and capacity in one table: the default against exact LRU and the optimum.
  Table summary({"trace", "host", "lru-exact", o.default_policy, "vs lru", "gap closed", "lru+feature admission",
                 "lru+oracle admission", "belady"});
  bool never_below_lru = true;
  std::optional<double> worst_vs_lru;  // and where: how far below (or above) LRU the default's worst case is
  std::string worst_at;
  for (size_t t = 0; t < inputs->size(); ++t) {
    const HostResults& host = results[t];
    for (uint64_t blocks : o.host_blocks) {
      const auto hit = [&](const std::string& p) {
        auto it = host.find({p, blocks});
        return it == host.end() ? std::string("-") : fixed(it->second.block_hit(), 3);
      };
      const auto vs = versus(host, o.default_policy, "lru-exact", blocks);
      if (vs && *vs < 1.0) never_below_lru = false;
      if (vs && (!worst_vs_lru || *vs < *worst_vs_lru)) {
        worst_vs_lru = vs;
        worst_at = fmt::format("{} {}", (*inputs)[t].label, tokens_label(blocks));
      }
      summary.add_row({(*inputs)[t].label, tokens_label(blocks), hit("lru-exact"), hit(o.default_policy), maybe(vs, 2),
                       maybe(gap_closed(host, o.default_policy, blocks), 2), hit("lru-feature-admission"),
                       hit("lru-oracle-admission"), hit("belady")});
    }
  }
  fmt::print("\nSummary (block hit ratios; gap closed: the share of the way from exact LRU to Belady's optimum):\n{}",
             summary.render());
  if (worst_vs_lru) fmt::print("{} at its worst: {:.4f}x exact LRU ({})\n", o.default_policy, *worst_vs_lru, worst_at);

  if (o.json) {
    JsonObject j;
    j.add("suite", "policy");
    j.add("traces", static_cast<long long>(inputs->size()));
    j.add("put_admission", std::string(put_admission_name(*admission)));
    j.add("never_below_lru", never_below_lru);
    if (worst_vs_lru) {
      j.add("worst_vs_lru", *worst_vs_lru);
      j.add("worst_vs_lru_at", worst_at);
    }
    for (size_t t = 0; t < inputs->size(); ++t) {
      const HostResults& host = results[t];
      // One trace: the names as they are; several: each prefixed by its trace's label.
      const std::string prefix = several ? json_label((*inputs)[t].label) + "_" : "";
      const auto add = [&](const std::string& key, std::optional<double> v) {
        if (v) {
          j.add(prefix + key, *v);
        } else {
          j.add_null(prefix + key);
        }
      };
      for (const auto& [label, blocks] : kTargetCapacities) {
        add(fmt::format("default_vs_lru_{}", label), versus(host, o.default_policy, "lru-exact", blocks));
        add(fmt::format("default_vs_sampled_lru_{}", label), versus(host, o.default_policy, "lru", blocks));
        add(fmt::format("gap_closed_{}", label), gap_closed(host, o.default_policy, blocks));
      }
      if (auto b = host.find({"belady", 2000}); b != host.end()) add("belady_1m", b->second.block_hit());
      for (const auto& [k, r] : host)
        add(fmt::format("{}_{}_block_hit", k.first, tokens_label(k.second)), r.block_hit());
    }
    fmt::print("{}\n", j.str());
  }
  return 0;
}

}  // namespace kvtier::bench
