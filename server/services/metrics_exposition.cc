#include "server/services/metrics_exposition.h"

#include <fmt/format.h>

#include <iterator>

#include "common/process_heap.h"

namespace kvtier::services {
namespace {

class Exposition {
 public:
  // One metric family: its HELP and TYPE lines, then samples.
  Exposition& family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP kvtier_{} {}\n# TYPE kvtier_{} {}\n", name, help, name, type);
    return *this;
  }
  template <typename V>
  Exposition& sample(std::string_view name, std::string_view labels, V value) {
    fmt::format_to(std::back_inserter(out_), "kvtier_{}{}{}{} {}\n", name, labels.empty() ? "" : "{", labels,
                   labels.empty() ? "" : "}", value);
    return *this;
  }
  template <typename V>
  Exposition& single(std::string_view name, std::string_view type, std::string_view help, V value) {
    return family(name, type, help).sample(name, "", value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Every component's counters (CounterVisitor) as metric families.
class ExpositionVisitor final : public CounterVisitor {
 public:
  explicit ExpositionVisitor(Exposition& x) : x_(x) {}
  void counter(std::string_view name, std::string_view help, uint64_t value) override {
    x_.single(name, "counter", help, value);
  }
  void gauge(std::string_view name, std::string_view help, double value) override {
    x_.single(name, "gauge", help, value);
  }
  void counters(std::string_view name, std::string_view help, std::span<const LabelledCount> samples) override {
    x_.family(name, "counter", help);
    for (const LabelledCount& s : samples) x_.sample(name, s.labels, s.value);
  }
  void gauges(std::string_view name, std::string_view help, std::span<const LabelledLevel> samples) override {
    x_.family(name, "gauge", help);
    for (const LabelledLevel& s : samples) x_.sample(name, s.labels, s.value);
  }

 private:
  Exposition& x_;
};

double ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

void latency_histograms(Exposition& x, const ServiceMetrics& m) {
  x.family("request_duration_seconds", "histogram", "gRPC request latency by method (streams: until the stream ends).");
  for (size_t r = 0; r < kNumRpcs; ++r) {
    const std::string_view name = rpc_name(static_cast<Rpc>(r));
    const LatencyHistogram& h = m.rpcs[r].latency;
    uint64_t cumulative = 0;
    for (size_t b = 0; b < LatencyHistogram::kBoundsUs.size(); ++b) {
      cumulative += h.count(b);
      x.sample("request_duration_seconds_bucket",
               fmt::format(R"(rpc="{}",le="{}")", name, static_cast<double>(LatencyHistogram::kBoundsUs[b]) * 1e-6),
               cumulative);
    }
    cumulative += h.count(LatencyHistogram::kBoundsUs.size());
    x.sample("request_duration_seconds_bucket", fmt::format(R"(rpc="{}",le="+Inf")", name), cumulative);
    x.sample("request_duration_seconds_sum", fmt::format("rpc=\"{}\"", name), h.sum_seconds());
    x.sample("request_duration_seconds_count", fmt::format("rpc=\"{}\"", name), cumulative);
  }
}

}  // namespace

std::string render_metrics(const node::NodeTiers& tiers, const events::EventLog& events, const ServiceMetrics& m,
                           const security::AccessPolicy& access, const publisher::VllmEventPublisher* vllm) {
  Exposition x;
  x.family("node_info", "gauge", "The node's identity; the epoch changes on every daemon start.")
      .sample("node_info", fmt::format(R"(node="{}",epoch="{}")", label_value(events.node_id()), events.epoch()), 1);
  ExpositionVisitor visitor(x);
  tiers.visit_counters(visitor);  // the index's, the tiers' and the mover's
  m.visit_counters(visitor);
  access.visit_counters(visitor);
  // Derived from two counters, for dashboards without PromQL at hand.
  const uint64_t asked = m.blocks_asked.load(std::memory_order_relaxed);
  x.family("hit_ratio", "gauge", "tier_hits_total / blocks_asked_total since the daemon started, per tier.");
  for (Tier tr : kAllTiers) {
    x.sample("hit_ratio", tier_label(tr), ratio(m.tier_hits[tier_index(tr)].load(), asked));
  }
  events.visit_counters(visitor);
  latency_histograms(x, m);
  if (vllm != nullptr) vllm->visit_counters(visitor);
  visit_heap_counters(visitor);
  return x.take();
}

std::string render_counters(const std::function<void(CounterVisitor&)>& visit) {
  Exposition x;
  ExpositionVisitor visitor(x);
  visit(visitor);
  return x.take();
}

std::string label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace kvtier::services
