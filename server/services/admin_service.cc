#include "server/services/admin_service.h"

#include <fmt/format.h>
#include <unistd.h>

#include "server/services/grpc_status.h"
#include "server/services/request_checks.h"

namespace kvtier::services {
grpc::Status AdminService::GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* /*request*/,
                                    v1::GetStatsResponse* r) {
  RpcTimer timer(metrics_, Rpc::kGetStats);
  if (auto s = access_.check(*context, config::Role::kRead, "GetStats"); !s.ok()) return timer.done(s);
  const node::NodeTiersStats s = tiers_.stats();
  const events::EventLogStats e = log_.stats();
  r->set_node_id(log_.node_id());
  r->set_epoch(log_.epoch());
  r->set_pid(static_cast<uint64_t>(::getpid()));
  r->set_uptime_s(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()));
  for (Tier t : kAllTiers) {
    v1::TierStats* ts = r->add_tiers();
    const size_t i = tier_index(t);
    ts->set_tier(static_cast<v1::Tier>(i + 1));
    ts->set_blocks(s.index.tier_entries[i]);
    ts->set_bytes(s.index.tier_bytes[i]);
    ts->set_capacity_bytes(s.index.tier_capacity[i]);
    ts->set_hits(metrics_.tier_hits[i].load(std::memory_order_relaxed));
  }
  r->set_index_entries(s.index.entries);
  r->set_index_capacity(s.index.capacity);
  r->set_blocks_asked(metrics_.blocks_asked.load(std::memory_order_relaxed));
  r->set_evictions(s.index.evictions);
  r->set_puts_not_admitted(s.index.puts_not_admitted);
  r->set_demotions(s.demoted);
  r->set_promotions(s.promoted);
  r->set_ssd_bytes_written(s.ssd.bytes_written);
  r->set_ssd_bytes_read(s.ssd.bytes_read);
  r->set_ssd_corrupt_blocks(s.ssd.corrupt_blocks);
  r->set_ssd_full(s.ssd.full);
  r->set_events_next_seq(e.next_seq);
  r->set_events_oldest_seq(e.oldest_seq);
  r->set_subscribers(static_cast<uint32_t>(std::max<int64_t>(0, metrics_.subscribers.load())));
  r->set_blocks_served(metrics_.blocks_served.load(std::memory_order_relaxed));
  r->set_bytes_served(metrics_.bytes_served.load(std::memory_order_relaxed));
  r->set_blocks_received(metrics_.blocks_received.load(std::memory_order_relaxed));
  r->set_bytes_received(metrics_.bytes_received.load(std::memory_order_relaxed));
  return timer.done(grpc::Status::OK);
}

grpc::Status AdminService::ClearNamespace(grpc::ServerContext* context, const v1::ClearNamespaceRequest* request,
                                          v1::ClearNamespaceResponse* response) {
  RpcTimer timer(metrics_, Rpc::kClearNamespace);
  if (auto s = access_.check(*context, config::Role::kAdmin, "ClearNamespace"); !s.ok()) return timer.done(s);
  if (!request->has_namespace_()) return timer.done(invalid_argument("ClearNamespace needs a namespace"));
  std::optional<Namespace> ns;
  if (grpc::Status s = resolve_namespace(catalog_, request->namespace_(), ns); !s.ok()) return timer.done(s);
  const node::ClearReport report = tiers_.clear_namespace(ns->index_id());
  response->set_removed(report.removed);
  response->set_busy(report.busy);
  return timer.done(grpc::Status::OK);
}

grpc::Status AdminService::Evict(grpc::ServerContext* context, const v1::EvictRequest* request,
                                 v1::EvictResponse* response) {
  RpcTimer timer(metrics_, Rpc::kEvict);
  if (auto s = access_.check(*context, config::Role::kAdmin, "Evict"); !s.ok()) return timer.done(s);
  Tier tier;
  switch (request->tier()) {
    case v1::TIER_HOST: tier = Tier::kHost; break;
    case v1::TIER_SSD: tier = Tier::kSsd; break;
    default: return timer.done(invalid_argument("evict works on TIER_HOST or TIER_SSD"));
  }
  if (request->bytes() == 0) return timer.done(invalid_argument("evict needs bytes > 0"));
  auto report = tiers_.evict(tier, request->bytes());
  if (!report.ok()) return timer.done(to_grpc(report.status()));
  response->set_bytes_freed(report->bytes_freed);
  response->set_blocks_demoted(report->blocks_demoted);
  response->set_blocks_dropped(report->blocks_dropped);
  return timer.done(grpc::Status::OK);
}

}  // namespace kvtier::services
