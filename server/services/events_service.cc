#include "server/services/events_service.h"

#include <algorithm>
#include <chrono>

namespace kvtier::services {
namespace {

void to_proto(const events::Event& e, v1::Event* out) {
  out->set_seq(e.seq);
  out->set_kind(static_cast<v1::Event::Kind>(e.kind));
  const auto key = e.key.to_bytes();
  out->set_key(key.data(), key.size());
  out->set_parent_lo(e.parent_lo);
  out->set_namespace_id(e.namespace_id);
  out->set_payload_bytes(e.payload_bytes);
  out->set_tiers_before(e.tiers_before);
  out->set_tiers_after(e.tiers_after);
  out->set_timestamp_us(e.timestamp_us);
}

}  // namespace

grpc::Status EventsService::Subscribe(grpc::ServerContext* context, const v1::SubscribeRequest* request,
                                      grpc::ServerWriter<v1::EventBatch>* writer) {
  RpcTimer timer(metrics_, Rpc::kSubscribe);
  if (auto s = access_.check(*context, config::Role::kRead, "Subscribe"); !s.ok()) return timer.done(s);
  metrics_.subscribers.fetch_add(1);
  struct Leaving {
    std::atomic<int64_t>& n;
    ~Leaving() { n.fetch_sub(1); }
  } leaving{metrics_.subscribers};
  const uint32_t max_events = request->max_batch_events() == 0
                                  ? limits_.max_batch_events
                                  : std::min(request->max_batch_events(), limits_.max_batch_events);
  uint64_t seq = request->from_now() ? log_.next_seq() : request->from_seq();
  bool resync = !request->from_now() && request->epoch() != log_.epoch();
  v1::EventBatch batch;
  while (!context->IsCancelled()) {
    events::EventRead r;
    if (!resync) r = log_.read(seq, max_events);
    if (resync || r.resync) {
      batch.Clear();
      batch.set_node_id(log_.node_id());
      batch.set_epoch(log_.epoch());
      batch.set_resync(true);
      seq = log_.next_seq();
      batch.set_next_seq(seq);
      if (!writer->Write(batch)) return timer.done(grpc::Status::OK);  // the subscriber went away
      metrics_.resyncs_sent.fetch_add(1, std::memory_order_relaxed);
      resync = false;
      continue;
    }
    if (r.events.empty()) {
      (void)log_.wait_for(seq, std::chrono::milliseconds(100));  // bounded, to notice cancellation
      continue;
    }
    batch.Clear();
    batch.set_node_id(log_.node_id());
    batch.set_epoch(log_.epoch());
    for (const events::Event& e : r.events) to_proto(e, batch.add_events());
    batch.set_next_seq(r.next_seq);
    seq = r.next_seq;
    if (!writer->Write(batch)) return timer.done(grpc::Status::OK);
    metrics_.events_sent.fetch_add(r.events.size(), std::memory_order_relaxed);
  }
  return timer.done(grpc::Status::OK);
}

grpc::Status EventsService::Snapshot(grpc::ServerContext* context, const v1::SnapshotRequest* /*request*/,
                                     v1::SnapshotResponse* response) {
  RpcTimer timer(metrics_, Rpc::kSnapshot);
  if (auto s = access_.check(*context, config::Role::kRead, "Snapshot"); !s.ok()) return timer.done(s);
  const events::Snapshot snap = log_.snapshot();
  response->set_node_id(log_.node_id());
  response->set_epoch(snap.epoch);
  response->set_as_of_seq(snap.as_of_seq);
  for (Tier t : kAllTiers) {
    v1::TierKeys* tk = response->add_tiers();
    tk->set_tier(static_cast<v1::Tier>(tier_index(t) + 1));
    for (const BlockKey& k : snap.keys[tier_index(t)]) {
      const auto bytes = k.to_bytes();
      tk->add_keys(bytes.data(), bytes.size());
    }
  }
  return timer.done(grpc::Status::OK);
}

}  // namespace kvtier::services
