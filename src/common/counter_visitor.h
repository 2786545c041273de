// CounterVisitor: how a component tells its counters to whoever exposes them (the daemon's
// /metrics, a bench's report), by name, help text and value, so no one maps a stats struct to
// metric names by hand. Names are the exposition's without the "kvtier_" prefix. Counters only
// grow; gauges are levels.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "kvtier/tier.h"

namespace kvtier {

// One sample of a family whose samples are told apart by labels, written as the exposition writes
// them: `rpc="GetBlocks",outcome="ok"`.
struct LabelledCount {
  std::string_view labels;
  uint64_t value = 0;
};
struct LabelledLevel {
  std::string_view labels;
  double value = 0;
};

// The label of a per-tier sample: `tier="host"`.
constexpr std::string_view tier_label(Tier t) {
  switch (t) {
    case Tier::kHbm: return R"(tier="hbm")";
    case Tier::kHost: return R"(tier="host")";
    case Tier::kSsd: return R"(tier="ssd")";
  }
  return R"(tier="unknown")";
}

class CounterVisitor {
 public:
  virtual ~CounterVisitor() = default;
  virtual void counter(std::string_view name, std::string_view help, uint64_t value) = 0;
  virtual void gauge(std::string_view name, std::string_view help, double value) = 0;
  // Families with one sample per label set.
  virtual void counters(std::string_view name, std::string_view help, std::span<const LabelledCount> samples) = 0;
  virtual void gauges(std::string_view name, std::string_view help, std::span<const LabelledLevel> samples) = 0;
};

}  // namespace kvtier
