#include "policy_report.h"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <system_error>
#include <vector>

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawnp passes it on

namespace kvtier::bench {
namespace {

Status write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f.flush()) return Status::unavailable(fmt::format("cannot write {}", path.string()));
  return {};
}

// Runs gnuplot on the script; an error says why no plot was drawn.
Status run_gnuplot(const std::filesystem::path& script) {
  const std::string path = script.string();
  char arg0[] = "gnuplot";
  std::vector<char> arg1(path.begin(), path.end());
  arg1.push_back('\0');
  char* argv[] = {arg0, arg1.data(), nullptr};
  pid_t pid = 0;
  if (int e = ::posix_spawnp(&pid, "gnuplot", nullptr, nullptr, argv, environ); e != 0) {
    return Status::unavailable(fmt::format("cannot run gnuplot ({}); install gnuplot-nox",
                                           std::error_code(e, std::generic_category()).message()));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::internal(fmt::format("gnuplot failed on {}", path));
  }
  return {};
}

}  // namespace

Status write_policy_report(const std::string& dir, const PolicyReport& report,
                           const std::map<std::pair<std::string, uint64_t>, policy::SimulationResult>& host,
                           const std::vector<std::pair<std::string, policy::SimulationResult>>& tiered) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::unavailable(fmt::format("cannot create {}: {}", dir, ec.message()));
  const fs::path out = fs::absolute(dir);

  // Hit ratio against host capacity, one column per policy (the references last).
  std::vector<std::string> columns = report.policies;
  columns.emplace_back("lru-exact");
  columns.emplace_back("belady");
  std::set<uint64_t> sizes;
  for (const auto& [k, r] : host) sizes.insert(k.second);
  std::string host_dat = "tokens";
  for (const std::string& c : columns) host_dat += " \"" + c + "\"";
  host_dat += "\n";
  for (uint64_t blocks : sizes) {
    host_dat += fmt::format("{}", blocks * workload::kTraceBlockTokens);
    for (const std::string& c : columns) {
      auto it = host.find({c, blocks});
      host_dat += it == host.end() ? " NaN" : fmt::format(" {:.5f}", it->second.block_hit());
    }
    host_dat += "\n";
  }
  KVTIER_RETURN_IF_ERROR(write_file(out / "policy_host.dat", host_dat));

  // Per tier, for each SSD admission rule of the two-tier runs (in the order they ran).
  std::vector<std::string> rules;
  for (const auto& [rule, r] : tiered) {
    if (std::find(rules.begin(), rules.end(), rule) == rules.end()) rules.push_back(rule);
  }
  std::string tiers_dat = "tokens";
  for (const std::string& rule : rules) {
    tiers_dat += fmt::format(R"( "host: {0}" "SSD: {0}" "total: {0}")", rule);
  }
  tiers_dat += "\n";
  for (uint64_t blocks : sizes) {
    std::string row = fmt::format("{}", blocks * workload::kTraceBlockTokens);
    bool any = false;
    for (const std::string& rule : rules) {
      auto it = std::find_if(tiered.begin(), tiered.end(),
                             [&](const auto& t) { return t.first == rule && t.second.host_blocks == blocks; });
      if (it == tiered.end()) {
        row += " NaN NaN NaN";
        continue;
      }
      any = true;
      row += fmt::format(" {:.5f} {:.5f} {:.5f}", it->second.host_block_hit(), it->second.ssd_block_hit(),
                         it->second.block_hit());
    }
    if (any) tiers_dat += row + "\n";
  }
  KVTIER_RETURN_IF_ERROR(write_file(out / "policy_tiers.dat", tiers_dat));

  // Titles go into single-quoted gnuplot strings.
  std::string title = report.source;
  std::replace(title.begin(), title.end(), '\'', '`');
  std::string gp = fmt::format(
      "set terminal pngcairo size 960,600 noenhanced\n"
      "set key autotitle columnhead left top\nset grid\nset logscale x 2\nset autoscale xfix\n"
      "set format x '%.0s%c'\n"
      "set xlabel 'host capacity (tokens)'\nset yrange [0:*]\n"
      "set output '{0}/hit_ratio_vs_capacity.png'\n"
      "set title 'Block hit ratio by eviction policy: {1}'\nset ylabel 'block hit ratio'\n"
      "plot for [i=2:{2}] '{0}/policy_host.dat' using 1:i with linespoints lw 2\n",
      out.string(), title, columns.size() + 1);
  if (!rules.empty()) {
    gp += fmt::format(
        "set output '{0}/per_tier_hit_ratio.png'\nset key below maxrows 3\n"
        "set title 'Hit ratio per tier, {1}, SSD {2}x host: {3}'\nset ylabel 'block hit ratio'\n"
        "plot for [i=2:{4}] '{0}/policy_tiers.dat' using 1:i with linespoints lw 2\n",
        out.string(), report.default_policy, report.ssd_multiple, title, 1 + 3 * rules.size());
  }
  KVTIER_RETURN_IF_ERROR(write_file(out / "policy.gp", gp));
  const Status plotted = run_gnuplot(out / "policy.gp");

  std::string md = fmt::format(
      "# Eviction-policy study\n\n"
      "Trace: {}: {} requests, {} block references, {} distinct blocks; an infinite cache hits {:.3f} of "
      "blocks ({:.3f} of tokens). Produced by `kvtier-bench policy --report`; docs/benchmarks.md describes the "
      "method.\n\n",
      report.source, report.stats.requests, report.stats.block_refs, report.stats.unique_ids,
      report.stats.ideal_block_hit(), report.stats.ideal_token_hit());
  md += "## Host memory alone\n\n```\n" + report.host_table + "```\n\n";
  md += plotted.ok() ? "![block hit ratio vs host capacity](hit_ratio_vs_capacity.png)\n\n"
                     : fmt::format("(no plot: {})\n\n", plotted.message());
  md += fmt::format("## {} over host memory and an SSD tier {}x its size\n\n```\n", report.default_policy,
                    report.ssd_multiple) +
        report.tier_table + "```\n\n";
  if (plotted.ok() && !rules.empty()) md += "![hit ratio per tier](per_tier_hit_ratio.png)\n";
  KVTIER_RETURN_IF_ERROR(write_file(out / "policy.md", md));
  fmt::print(
      "\nReport: {}{}\n", (out / "policy.md").string(),
      plotted.ok() ? ", with hit_ratio_vs_capacity.png and per_tier_hit_ratio.png" : " (" + plotted.message() + ")");
  return {};
}

}  // namespace kvtier::bench
