// Reads figures from a kvtierd's Prometheus endpoint on loopback: what the daemon alone knows
// (demotions, its heap) and a benchmark reports.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kvtier::bench {

// One GET of http://127.0.0.1:<port>/metrics, read for as many figures as a sample needs: each
// GET renders the whole page and walks malloc's arenas in the daemon, so a sample asks once.
class MetricsPage {
 public:
  // An empty page (every figure missing) when nothing answers on the port.
  static MetricsPage scrape(int port);
  explicit MetricsPage(std::string text) : text_(std::move(text)) {}

  // The value of the unlabelled sample `name` (e.g. "kvtier_demotions_total"), or nothing if the
  // page lacks it. A longer name that starts with `name` is another sample.
  std::optional<double> value(std::string_view name) const;

 private:
  std::string text_;
};

// One figure, one GET.
inline std::optional<double> scrape_metric(int port, std::string_view name) {
  return MetricsPage::scrape(port).value(name);
}

}  // namespace kvtier::bench
