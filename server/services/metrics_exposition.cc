#include "server/services/metrics_exposition.h"

#include <fmt/format.h>

#include <iterator>

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

// A tier's (or the mover's) counters as metric families of their own.
class ExpositionVisitor final : public tiers::CounterVisitor {
 public:
  explicit ExpositionVisitor(Exposition& x) : x_(x) {}
  void counter(std::string_view name, std::string_view help, uint64_t value) override {
    x_.single(name, "counter", help, value);
  }
  void gauge(std::string_view name, std::string_view help, double value) override {
    x_.single(name, "gauge", help, value);
  }

 private:
  Exposition& x_;
};

std::string tier_label(Tier t) { return fmt::format("tier=\"{}\"", tier_name(t)); }

double ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

std::string render_metrics(const node::NodeTiers& tiers, const events::EventLogStats& e, const ServiceMetrics& m,
                           const std::string& node_id, uint64_t epoch, const publisher::VllmPublisherStats* vllm) {
  const node::NodeTiersStats t = tiers.stats();
  Exposition x;
  x.family("node_info", "gauge", "The node's identity; the epoch changes on every daemon start.")
      .sample("node_info", fmt::format(R"(node="{}",epoch="{}")", node_id, epoch), 1);

  x.family("tier_blocks", "gauge", "Blocks resident per tier.");
  for (Tier tr : kAllTiers) x.sample("tier_blocks", tier_label(tr), t.index.tier_entries[tier_index(tr)]);
  x.family("tier_bytes", "gauge", "Payload bytes resident per tier.");
  for (Tier tr : kAllTiers) x.sample("tier_bytes", tier_label(tr), t.index.tier_bytes[tier_index(tr)]);
  x.family("tier_capacity_bytes", "gauge", "Bytes each tier may hold (0: not limited by the node).");
  for (Tier tr : kAllTiers) x.sample("tier_capacity_bytes", tier_label(tr), t.index.tier_capacity[tier_index(tr)]);
  x.family("tier_occupancy_ratio", "gauge", "Resident bytes over capacity, per tier.");
  for (Tier tr : kAllTiers) {
    const size_t i = tier_index(tr);
    x.sample("tier_occupancy_ratio", tier_label(tr), ratio(t.index.tier_bytes[i], t.index.tier_capacity[i]));
  }
  x.single("index_entries", "gauge", "Blocks in the node's index.", t.index.entries);
  x.single("index_capacity", "gauge", "Blocks the node's index can hold.", t.index.capacity);

  const uint64_t asked = m.blocks_asked.load(std::memory_order_relaxed);
  x.single("blocks_asked_total", "counter", "Blocks asked by MatchPrefix and GetBlocks requests.", asked);
  x.family("tier_hits_total", "counter", "Blocks of asked chains found, as part of the matched prefix, per tier.");
  for (Tier tr : kAllTiers) x.sample("tier_hits_total", tier_label(tr), m.tier_hits[tier_index(tr)].load());
  x.family("hit_ratio", "gauge", "tier_hits_total / blocks_asked_total since the daemon started, per tier.");
  for (Tier tr : kAllTiers) x.sample("hit_ratio", tier_label(tr), ratio(m.tier_hits[tier_index(tr)].load(), asked));

  x.single("evictions_total", "counter", "Blocks evicted from a tier by the index.", t.index.evictions);
  ExpositionVisitor visitor(x);
  tiers.visit_counters(visitor);

  x.single("bytes_served_total", "counter", "Block bytes streamed to other nodes by GetBlocks.", m.bytes_served.load());
  x.single("blocks_served_total", "counter", "Blocks streamed to other nodes by GetBlocks.", m.blocks_served.load());
  x.single("bytes_received_total", "counter", "Block bytes received by PutBlocks.", m.bytes_received.load());
  x.single("blocks_received_total", "counter", "Blocks received whole by PutBlocks.", m.blocks_received.load());

  x.single("events_total", "counter", "Residency events logged in this epoch.", e.events);
  x.single("events_sent_total", "counter", "Events streamed to subscribers (all of them together).",
           m.events_sent.load());
  x.single("event_resyncs_total", "counter", "Resync markers sent to subscribers that fell behind.",
           m.resyncs_sent.load());
  x.single("event_subscribers", "gauge", "Open Subscribe streams.", m.subscribers.load());
  x.single("event_next_seq", "gauge", "The sequence number the next event gets.", e.next_seq);

  x.family("requests_total", "counter", "gRPC requests by method and outcome (ok, invalid, failed).");
  for (size_t r = 0; r < kNumRpcs; ++r) {
    const std::string_view name = rpc_name(static_cast<Rpc>(r));
    const RpcCounters& c = m.rpcs[r];
    x.sample("requests_total", fmt::format(R"(rpc="{}",outcome="ok")", name), c.ok.load());
    x.sample("requests_total", fmt::format(R"(rpc="{}",outcome="invalid")", name), c.invalid.load());
    x.sample("requests_total", fmt::format(R"(rpc="{}",outcome="failed")", name), c.failed.load());
  }
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
  if (vllm != nullptr) {
    x.single("vllm_messages_total", "counter", "Messages the vLLM-format publisher sent (one per pod per batch).",
             vllm->messages);
    x.single("vllm_events_total", "counter", "vLLM events in those messages.", vllm->events);
    x.family("vllm_blocks_total", "counter", "Block hashes published, by event and whether token ids went with them.");
    x.sample("vllm_blocks_total", R"(event="stored",tokens="yes")", vllm->with_tokens);
    x.sample("vllm_blocks_total", R"(event="stored",tokens="no")", vllm->without_tokens);
    x.sample("vllm_blocks_total", R"(event="removed",tokens="no")", vllm->blocks_removed);
    x.single("vllm_tokens_lost_total", "counter",
             "Token records overwritten or torn before the publisher read them (raise events.vllm.token_ring).",
             vllm->tokens_lost);
    x.single("vllm_unknown_namespace_total", "counter",
             "Node events of namespaces the daemon's configuration does not name (not published).",
             vllm->unknown_namespace);
    x.single("vllm_snapshots_total", "counter",
             "Times the publisher announced every resident block again (start, lost events).", vllm->snapshots);
    x.single("vllm_withdrawn_total", "counter",
             "Block removals the publisher computed itself: blocks gone across a restart or lost events, and the "
             "node's blocks under the topic of an engine that left.",
             vllm->withdrawn);
    x.single("vllm_replay_requests_total", "counter", "Requests answered on the replay socket.", vllm->replay_requests);
  }
  return x.take();
}

}  // namespace kvtier::services
