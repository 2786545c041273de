// kvtier-bench workload: writes the built-in synthetic workload as a trace, or describes a trace.
#include <fmt/format.h>

#include "bench_report.h"
#include "suites.h"
#include "workload/synthetic_workload.h"
#include "workload/trace.h"

namespace kvtier::bench {

int run_workload_command(const WorkloadCommandOptions& o) {
  workload::SyntheticOptions synthetic = o.synthetic;
  if (!o.family.empty()) {
    // The preset sets the families' shares and tenants; the size and seed asked for stay.
    auto preset = workload::synthetic_family(o.family, o.synthetic);
    if (!preset.ok()) {
      fmt::print(stderr, "kvtier-bench workload: {}\n", preset.status().to_string());
      return 2;
    }
    synthetic = *preset;
  }
  auto input = workload::load_workload(o.trace, synthetic);
  if (!input.ok()) {
    fmt::print(stderr, "kvtier-bench workload: {}\n", input.status().to_string());
    return 2;
  }
  const std::vector<workload::TraceRequest>& requests = input->requests;
  const std::string& source = input->source;
  if (!o.out.empty()) {
    if (auto s = workload::write_trace(o.out, requests); !s.ok()) {
      fmt::print(stderr, "kvtier-bench workload: {}\n", s.to_string());
      return 1;
    }
  }
  const workload::TraceStats s = workload::trace_stats(requests);
  const double span_s = requests.empty() ? 0 : static_cast<double>(requests.back().timestamp_ms) / 1000.0;
  Table table({"figure", "value"});
  table.add_row({"requests", fmt::format("{}", s.requests)});
  table.add_row({"time span", fmt::format("{:.0f} s", span_s)});
  table.add_row(
      {"mean input tokens",
       fmt::format("{:.0f}", s.requests == 0 ? 0.0 : double(s.input_tokens) / static_cast<double>(s.requests))});
  table.add_row({"block references", fmt::format("{}", s.block_refs)});
  table.add_row({"distinct blocks", fmt::format("{}", s.unique_ids)});
  table.add_row({"ideal block hit ratio", fmt::format("{:.3f}", s.ideal_block_hit())});
  table.add_row({"ideal token hit ratio", fmt::format("{:.3f}", s.ideal_token_hit())});
  fmt::print("kvtier-bench workload: {}{}\n{}", source, o.out.empty() ? "" : fmt::format(", written to {}", o.out),
             table.render());
  return 0;
}

}  // namespace kvtier::bench
