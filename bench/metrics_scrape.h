// Reads one figure from a kvtierd's Prometheus endpoint on loopback: what the daemon alone knows
// (demotions, for one) and a benchmark reports.
#pragma once

#include <optional>
#include <string_view>

namespace kvtier::bench {

// The value of the unlabelled sample `name` (e.g. "kvtier_demotions_total") on
// http://127.0.0.1:<port>/metrics, or nothing if the endpoint or the sample is missing.
std::optional<double> scrape_metric(int port, std::string_view name);

}  // namespace kvtier::bench
