#include "server/services/service_metrics.h"

#include <fmt/format.h>

#include <string>
#include <vector>

namespace kvtier::services {

std::string_view rpc_name(Rpc rpc) {
  switch (rpc) {
    case Rpc::kMatchPrefix: return "MatchPrefix";
    case Rpc::kMatchPrefixBatch: return "MatchPrefixBatch";
    case Rpc::kSubscribe: return "Subscribe";
    case Rpc::kSnapshot: return "Snapshot";
    case Rpc::kGetBlocks: return "GetBlocks";
    case Rpc::kPutBlocks: return "PutBlocks";
    case Rpc::kGetStats: return "GetStats";
    case Rpc::kClearNamespace: return "ClearNamespace";
    case Rpc::kEvict: return "Evict";
    case Rpc::kReadBlocks: return "ReadBlocks";
  }
  return "unknown";
}

void ServiceMetrics::visit_counters(CounterVisitor& v) const {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  v.counter("blocks_asked_total", "Blocks asked by MatchPrefix and GetBlocks requests.", blocks_asked.load(kRelaxed));
  std::array<LabelledCount, kNumTiers> hits;
  for (Tier t : kAllTiers) hits[tier_index(t)] = {tier_label(t), tier_hits[tier_index(t)].load(kRelaxed)};
  v.counters("tier_hits_total", "Blocks of asked chains found, as part of the matched prefix, per tier.", hits);
  v.counter("bytes_served_total", "Block bytes streamed to other nodes by GetBlocks.", bytes_served.load(kRelaxed));
  v.counter("blocks_served_total", "Blocks streamed to other nodes by GetBlocks.", blocks_served.load(kRelaxed));
  v.counter("blocks_leased_total", "Blocks leased to remote readers by ReadBlocks (read over UCX).",
            blocks_leased.load(kRelaxed));
  v.counter("bytes_leased_total", "Block bytes leased to remote readers by ReadBlocks.", bytes_leased.load(kRelaxed));
  v.counter("bytes_received_total", "Block bytes received by PutBlocks.", bytes_received.load(kRelaxed));
  v.counter("blocks_received_total", "Blocks received whole by PutBlocks.", blocks_received.load(kRelaxed));
  v.counter("events_sent_total", "Events streamed to subscribers (all of them together).", events_sent.load(kRelaxed));
  v.counter("event_resyncs_total", "Resync markers sent to subscribers that fell behind.", resyncs_sent.load(kRelaxed));
  v.gauge("event_subscribers", "Open Subscribe streams.", static_cast<double>(subscribers.load(kRelaxed)));

  std::array<NamedRpcCounters, kNumRpcs> named;
  for (size_t r = 0; r < kNumRpcs; ++r) named[r] = {rpc_name(static_cast<Rpc>(r)), &rpcs[r]};
  visit_request_counters(v, named);
}

void visit_request_counters(CounterVisitor& v, std::span<const NamedRpcCounters> rpcs) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  constexpr std::array<std::string_view, 4> kOutcomes = {"ok", "invalid", "denied", "failed"};
  std::vector<std::string> labels;
  std::vector<LabelledCount> requests;
  labels.reserve(rpcs.size() * kOutcomes.size());
  requests.reserve(labels.capacity());
  for (const NamedRpcCounters& r : rpcs) {
    const RpcCounters& c = *r.counters;
    const std::array<uint64_t, 4> counts = {c.ok.load(kRelaxed), c.invalid.load(kRelaxed), c.denied.load(kRelaxed),
                                            c.failed.load(kRelaxed)};
    for (size_t o = 0; o < kOutcomes.size(); ++o) {
      labels.push_back(fmt::format(R"(rpc="{}",outcome="{}")", r.rpc, kOutcomes[o]));
      requests.push_back({labels.back(), counts[o]});  // reserved: no reallocation moves the strings
    }
  }
  v.counters("requests_total", "gRPC requests by method and outcome (ok, invalid, denied, failed).", requests);
}

}  // namespace kvtier::services
