#include "server/indexer/indexer_metrics.h"

#include <fmt/format.h>

#include <array>
#include <string>
#include <vector>

#include "server/services/metrics_exposition.h"

namespace kvtier::indexer {
namespace {

std::string_view state_name(FollowerState s) {
  switch (s) {
    case FollowerState::kConnecting: return "connecting";
    case FollowerState::kSyncing: return "syncing";
    case FollowerState::kFollowing: return "following";
    case FollowerState::kDown: return "down";
  }
  return "unknown";
}

// One label set per follower, in the order of `all`.
template <typename Status, typename Label>
std::vector<std::string> labels_of(const std::vector<Status>& all, Label label) {
  std::vector<std::string> out;
  out.reserve(all.size());
  for (const Status& s : all) out.push_back(label(s));
  return out;
}

// One family's samples (LabelledCount or LabelledLevel), the i-th labelled labels[i]; the samples
// view the strings.
template <typename Sample, typename Status, typename Value>
std::vector<Sample> samples(const std::vector<std::string>& labels, const std::vector<Status>& all, Value value) {
  std::vector<Sample> out;
  out.reserve(all.size());
  for (size_t i = 0; i < all.size(); ++i) out.push_back({labels[i], value(all[i])});
  return out;
}

}  // namespace

void visit_indexer_counters(CounterVisitor& v, const cluster::ClusterIndex& index, const FollowerSet& followers,
                            std::span<const std::unique_ptr<VllmEngineFollower>> engines) {
  const cluster::ClusterIndexStats s = index.stats();
  v.gauge("indexer_keys", "Distinct block keys some node or engine holds, in the cluster index.",
          static_cast<double>(s.keys));
  v.gauge("indexer_residency", "(key, node, tier) entries in the cluster index.", static_cast<double>(s.residency));

  // kvtierd nodes, labelled by the name they give themselves (from the network: escaped) and the
  // address they are followed at.
  const std::vector<FollowerStatus> nodes = followers.status();
  constexpr std::array kStates = {FollowerState::kConnecting, FollowerState::kSyncing, FollowerState::kFollowing,
                                  FollowerState::kDown};
  std::array<std::string, kStates.size()> state_labels;
  std::array<LabelledLevel, kStates.size()> by_state;
  for (size_t i = 0; i < kStates.size(); ++i) {
    state_labels[i] = fmt::format(R"(state="{}")", state_name(kStates[i]));
    double n = 0;
    for (const FollowerStatus& f : nodes) n += f.state == kStates[i] ? 1 : 0;
    by_state[i] = {state_labels[i], n};
  }
  v.gauges("indexer_followed_nodes", "kvtierd nodes followed, by the state of their event stream.", by_state);
  const std::vector<std::string> node_labels = labels_of(nodes, [](const FollowerStatus& f) {
    return fmt::format(R"(node="{}",address="{}")", services::label_value(f.node), services::label_value(f.address));
  });
  const auto up = samples<LabelledLevel>(
      node_labels, nodes, [](const FollowerStatus& f) { return f.state == FollowerState::kFollowing ? 1.0 : 0.0; });
  v.gauges("indexer_node_following", "1 while the node's event stream is followed live, else 0.", up);
  v.counters("indexer_node_events_total", "Events applied from the node's stream.",
             samples<LabelledCount>(node_labels, nodes, [](const FollowerStatus& f) { return f.events; }));
  v.counters("indexer_node_snapshots_total", "Snapshots of the node loaded (at first contact and after a gap).",
             samples<LabelledCount>(node_labels, nodes, [](const FollowerStatus& f) { return f.snapshots; }));
  v.counters("indexer_node_restarts_total", "Times the node came back with a new epoch (a daemon restart).",
             samples<LabelledCount>(node_labels, nodes, [](const FollowerStatus& f) { return f.restarts; }));

  // vLLM engines publishing KV events, labelled by their configured name.
  std::vector<VllmFollowerStatus> vllm;
  vllm.reserve(engines.size());
  for (const auto& e : engines) vllm.push_back(e->status());
  const std::vector<std::string> engine_labels = labels_of(
      vllm, [](const VllmFollowerStatus& e) { return fmt::format(R"(engine="{}")", services::label_value(e.name)); });
  const auto receiving =
      samples<LabelledLevel>(engine_labels, vllm, [](const VllmFollowerStatus& e) { return e.receiving ? 1.0 : 0.0; });
  v.gauges("indexer_engine_receiving", "1 while the vLLM engine's event batches arrive (one in the last 10 s).",
           receiving);
  v.counters("indexer_engine_events_total", "KV events applied from the vLLM engine.",
             samples<LabelledCount>(engine_labels, vllm, [](const VllmFollowerStatus& e) { return e.events; }));
  v.counters("indexer_engine_malformed_total", "vLLM event payloads or events that could not be read (skipped).",
             samples<LabelledCount>(engine_labels, vllm, [](const VllmFollowerStatus& e) { return e.malformed; }));
  v.counters("indexer_engine_gaps_total", "Sequence gaps in the vLLM engine's batches.",
             samples<LabelledCount>(engine_labels, vllm, [](const VllmFollowerStatus& e) { return e.gaps; }));
  v.counters("indexer_engine_replayed_total", "Batches recovered from the vLLM engine's replay socket.",
             samples<LabelledCount>(engine_labels, vllm, [](const VllmFollowerStatus& e) { return e.replayed; }));
}

}  // namespace kvtier::indexer
