#include "index/index_counters.h"

#include <array>

namespace kvtier::index {
namespace {

double ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

void visit_counters(const IndexStats& s, CounterVisitor& v) {
  const auto per_tier = [&](std::string_view name, std::string_view help, auto value_of) {
    std::array<LabelledLevel, kNumTiers> samples;
    for (Tier t : kAllTiers) {
      samples[tier_index(t)] = {tier_label(t), static_cast<double>(value_of(tier_index(t)))};
    }
    v.gauges(name, help, samples);
  };
  per_tier("tier_blocks", "Blocks resident per tier.", [&](size_t i) { return s.tier_entries[i]; });
  per_tier("tier_bytes", "Payload bytes resident per tier.", [&](size_t i) { return s.tier_bytes[i]; });
  per_tier("tier_capacity_bytes", "Bytes each tier may hold (0: not limited by the node).",
           [&](size_t i) { return s.tier_capacity[i]; });
  per_tier("tier_occupancy_ratio", "Resident bytes over capacity, per tier.",
           [&](size_t i) { return ratio(s.tier_bytes[i], s.tier_capacity[i]); });
  v.gauge("index_entries", "Blocks in the node's index.", static_cast<double>(s.entries));
  v.gauge("index_capacity", "Blocks the node's index can hold.", static_cast<double>(s.capacity));
  v.counter("evictions_total", "Blocks evicted from a tier by the index.", s.evictions);
  v.counter("puts_not_admitted_total", "Engines' puts the node's put admission refused (host.put_admission).",
            s.puts_not_admitted);
}

}  // namespace kvtier::index
