#include "server/node/node_tiers.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "common/node_segments.h"
#include "events/token_ring.h"
#include "index/index_counters.h"
#include "server/node/node_tiers_impl.h"

namespace kvtier::node {

std::string NodeTiers::index_segment(const NodeTiersOptions& o) {
  return node_index_segment(o.shm_prefix, o.node_name);
}
std::string NodeTiers::host_segment(const NodeTiersOptions& o) { return node_host_segment(o.shm_prefix, o.node_name); }
std::string NodeTiers::load_queue_segment(const NodeTiersOptions& o) {
  return node_loads_segment(o.shm_prefix, o.node_name);
}

Status NodeTiers::destroy_segments(const NodeTiersOptions& o) {
  Status a = BlockIndex::destroy(index_segment(o));
  Status b = host::HostArena::destroy(host_segment(o));
  Status c = LoadQueue::destroy(load_queue_segment(o));
  Status d = TokenRing::destroy(node_tokens_segment(o.shm_prefix, o.node_name));  // a publishing daemon's
  for (Status* s : {&a, &b, &c, &d}) {
    if (!s->ok() && s->code() != StatusCode::kNotFound) return *s;
  }
  return {};
}

Result<std::unique_ptr<NodeTiers>> NodeTiers::open(const NodeTiersOptions& o) {
  if (o.node_name.empty()) return Status::invalid_argument("node name must be set");
  const auto phase = [&o](std::string_view what) {
    if (o.on_phase) o.on_phase(what);
  };
  phase("attaching or creating the index and host arena");
  IndexOptions io;
  io.segment_name = index_segment(o);
  io.capacity = o.index_capacity;
  io.node_name = o.node_name;
  auto index = BlockIndex::open_or_create(io);
  if (!index.ok()) return index.status().with_context("opening the node's index");
  auto arena = host::HostArena::attach(host_segment(o));
  if (!arena.ok() && arena.status().code() == StatusCode::kNotFound) {
    arena = host::HostArena::create({host_segment(o), o.host_bytes, o.slab_bytes});
  }
  if (!arena.ok()) return arena.status().with_context("opening the node's host arena");
  auto impl = std::make_unique<Impl>(o, std::move(index).value(), std::move(arena).value());
  // Recorded in the segment: engines that evict (a put finding the arena full) use it too.
  KVTIER_RETURN_IF_ERROR(impl->index.record_eviction_policy(o.eviction_policy));
  impl->index.record_put_admission(o.put_admission);
  KVTIER_RETURN_IF_ERROR(impl->index.set_tier_capacity(Tier::kHost, impl->host_store.capacity_bytes(),
                                                       o.host_high_watermark, o.host_low_watermark));
  if (o.ssd_enabled) {
    phase("recovering the SSD tier from its catalogue");
    ssd::SsdStoreOptions ssd_options = o.ssd;
    if (ssd_options.clock == nullptr) ssd_options.clock = o.clock;
    auto store = ssd::SsdStore::open(ssd_options, o.ssd_device_factory);
    if (!store.ok()) return store.status().with_context("opening the SSD tier");
    impl->ssd = std::move(store).value();
    impl->ssd_store = std::make_unique<ssd::SsdTierStore>(*impl->ssd, o.codecs);
    KVTIER_RETURN_IF_ERROR(impl->index.set_tier_capacity(Tier::kSsd, impl->ssd_store->capacity_bytes()));
  } else {
    KVTIER_RETURN_IF_ERROR(impl->index.set_tier_capacity(Tier::kSsd, 0));
  }
  impl->mover = std::make_unique<TierMover>(impl->index, impl->host_store, impl->ssd_store.get(), o.admission, o.clock);
  auto loads = LoadQueue::open_or_create(load_queue_segment(o), o.load_queue_capacity);
  if (!loads.ok()) return loads.status().with_context("opening the node's load queue");
  impl->loads = std::move(loads).value();
  // Recover whatever a killed predecessor left half done before serving anything.
  phase("reclaiming what dead processes held");
  KVTIER_RETURN_IF_ERROR(host::maintain_index_and_arena(impl->index, *impl->arena));
  phase("reconciling the index with the SSD tier");
  impl->mover->reconcile();
  if (impl->ssd) {
    Impl* raw = impl.get();
    impl->ssd->set_drop_listener([raw](const BlockKey& key) { raw->mover->forget_ssd_block(key); });
  }
  if (o.background) {
    Impl* raw = impl.get();
    impl->upkeep_thread = std::thread([raw] { raw->upkeep_loop(); });
    if (impl->ssd) {
      // Serving loads from the moment open() returns: clients told the daemon is up can load.
      std::promise<Status> started;
      std::future<Status> serving = started.get_future();
      impl->promote_thread = std::thread([raw, p = std::move(started)]() mutable { raw->promote_loop(std::move(p)); });
      if (Status s = serving.get(); !s.ok()) {
        impl->stopping = true;
        impl->loads->request_room();
        impl->upkeep_thread.join();
        impl->promote_thread.join();
        return s.with_context("serving the node's load queue");
      }
    }
  }
  return std::unique_ptr<NodeTiers>(new NodeTiers(std::move(impl)));
}

NodeTiers::NodeTiers(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NodeTiers::~NodeTiers() {
  impl_->stopping = true;
  impl_->loads->request_room();  // wakes the upkeep thread
  if (impl_->upkeep_thread.joinable()) impl_->upkeep_thread.join();
  if (impl_->promote_thread.joinable()) impl_->promote_thread.join();
  if (impl_->ssd) {
    (void)impl_->ssd->flush();
    impl_->ssd->set_drop_listener({});
  }
}

void NodeTiers::Impl::upkeep_loop() {
  uint32_t room_seen = loads->room_requests();
  const Clock& clock = clock_or_steady(options.clock);
  auto next_reclaim = clock.now();
  while (!stopping.load()) {
    // Reclaiming scans the arena under its allocation lock: every few hundred ms, not every pass.
    if (clock.now() >= next_reclaim) {
      if (Status s = host::maintain_index_and_arena(index, *arena); !s.ok()) spdlog::warn("upkeep: {}", s.message());
      next_reclaim = clock.now() + std::chrono::milliseconds(options.reclaim_interval_ms);
    }
    mover->retry_ssd_drops();
    if (ssd) ssd->check_health();
    // An engine found the arena full (a size class can fill below the watermark): free a slice.
    const uint32_t room_now = loads->room_requests();
    // The destructor sets `stopping` and then wakes this thread through the room counter: read
    // after the counter, `stopping` tells that wake-up from an engine's request (taking it for
    // one demoted a slice of the arena at every shutdown).
    if (stopping.load()) break;
    const bool asked = room_now != room_seen;
    room_seen = room_now;
    if (asked || mover->host_bytes_over_watermark() > 0) {
      const uint64_t used_before = index.stats().tier_bytes[tier_index(Tier::kHost)];
      if (auto r = asked ? mover->make_room() : mover->demote(0); !r.ok()) {
        spdlog::warn("demotion: {}", r.status().message());
      }
      loads->room_made();
      // Still over and getting somewhere: engines are writing fast, keep going without a pause.
      if (mover->host_bytes_over_watermark() > 0 && index.stats().tier_bytes[tier_index(Tier::kHost)] < used_before) {
        continue;
      }
    }
    loads->wait_for_room_request(room_seen, std::chrono::milliseconds(options.upkeep_interval_ms));
  }
}

void NodeTiers::Impl::promote_loop(std::promise<Status> started) {
  // The serving mark is a robust mutex: held by this thread, released by the kernel if it dies.
  Status serving = loads->start_serving();
  const bool ok = serving.ok();
  started.set_value(std::move(serving));
  if (!ok) return;
  std::vector<BlockKey> batch(options.promote_batch);
  while (!stopping.load()) {
    const uint32_t seen = loads->requests();
    uint64_t end = 0;
    const size_t n = loads->pop(batch, &end);
    if (n == 0) {
      loads->wait_for_requests(seen, std::chrono::milliseconds(50));
      continue;
    }
    load_requests.fetch_add(n, std::memory_order_relaxed);
    mover->promote({batch.data(), n});
    loads->complete(end);
  }
  loads->stop_serving();
}

Result<size_t> NodeTiers::demote(uint64_t bytes) { return impl_->mover->demote(bytes); }
size_t NodeTiers::promote(std::span<const BlockKey> keys) { return impl_->mover->promote(keys); }
ClearReport NodeTiers::clear_namespace(uint16_t namespace_id) { return impl_->mover->clear_namespace(namespace_id); }
Result<EvictionReport> NodeTiers::evict(Tier tier, uint64_t bytes) { return impl_->mover->evict(tier, bytes); }
Status NodeTiers::flush() { return impl_->ssd ? impl_->ssd->flush() : Status(); }
BlockIndex& NodeTiers::index() { return impl_->index; }
ssd::SsdStore* NodeTiers::ssd() { return impl_->ssd.get(); }

void NodeTiers::visit_counters(tiers::CounterVisitor& v) const {
  const Impl& im = *impl_;
  index::visit_counters(im.index.stats(), v);
  im.host_store.visit_counters(v);
  if (im.ssd_store) im.ssd_store->visit_counters(v);
  im.mover->visit_counters(v);
  v.counter("load_requests_total", "Blocks engines asked the daemon to load from SSD.", im.load_requests.load());
}

NodeTiersStats NodeTiers::stats() const {
  const Impl& im = *impl_;
  NodeTiersStats s;
  s.index = im.index.stats();
  const host::ArenaStats a = im.arena->stats();
  s.host_bytes = a.data_bytes;
  s.host_used_bytes = a.used_bytes;
  if (im.ssd) s.ssd = im.ssd->stats();
  const TierMoverStats m = im.mover->stats();
  s.admission = m.admission;
  s.demoted = m.demoted;
  s.demote_refused = m.demote_refused;
  s.load_requests = im.load_requests.load();
  s.promoted = m.promoted;
  s.promote_misses = m.promote_misses;
  s.promote_failed = m.promote_failed;
  s.reconcile_forgotten = m.reconcile_forgotten;
  s.reconcile_restored = m.reconcile_restored;
  s.ssd_drops = m.ssd_drops;
  return s;
}

}  // namespace kvtier::node
