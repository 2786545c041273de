// The policy study's report: a markdown page with the tables, the data behind the plots, and the
// plots themselves (PNG, drawn by gnuplot from Debian's gnuplot-nox).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kvtier/status.h"
#include "policy/policy_simulator.h"
#include "workload/trace.h"

namespace kvtier::bench {

struct PolicyReport {
  std::string source;
  workload::TraceStats stats;
  std::vector<std::string> policies;
  std::string default_policy;
  uint64_t ssd_multiple = 0;
  std::string host_table, tier_table;  // as printed
};

// Writes <dir>/policy.md, policy_host.dat, policy_tiers.dat, policy.gp and, when gnuplot runs,
// hit_ratio_vs_capacity.png and per_tier_hit_ratio.png. `host` is keyed by (policy, host blocks);
// `tiered` holds the two-tier runs with their SSD admission rule's label.
Status write_policy_report(const std::string& dir, const PolicyReport& report,
                           const std::map<std::pair<std::string, uint64_t>, policy::SimulationResult>& host,
                           const std::vector<std::pair<std::string, policy::SimulationResult>>& tiered);

}  // namespace kvtier::bench
