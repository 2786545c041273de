#include "server/indexer/node_follower.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "kvtier/v1/events.grpc.pb.h"

namespace kvtier::indexer {
namespace {

constexpr auto kSnapshotDeadline = std::chrono::seconds(30);

std::optional<Tier> tier_from_wire(v1::Tier t) {
  switch (t) {
    case v1::TIER_HBM: return Tier::kHbm;
    case v1::TIER_HOST: return Tier::kHost;
    case v1::TIER_SSD: return Tier::kSsd;
    default: return std::nullopt;
  }
}

}  // namespace

NodeFollower::NodeFollower(cluster::ClusterIndex& index, FollowerOptions options)
    : index_(index), options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  args.SetMaxReceiveMessageSize(256 << 20);  // a snapshot of a large node
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(options_.max_backoff.count()));
  channel_ = options_.credentials
                 ? options_.credentials->channel(options_.address, args)
                 : grpc::CreateCustomChannel(options_.address, grpc::InsecureChannelCredentials(), args);
  status_.address = options_.address;
  thread_ = std::thread([this] { run(); });
}

NodeFollower::~NodeFollower() { stop(false); }

void NodeFollower::stop(bool drop_entries) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (drop_entries) forget_node();
}

FollowerStatus NodeFollower::status() const {
  std::lock_guard lock(mu_);
  FollowerStatus s = status_;
  if (down_since_) {
    s.down_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_or_steady(options_.clock).now() - *down_since_)
            .count());
  }
  return s;
}

bool NodeFollower::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !wake_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void NodeFollower::forget_node() {
  std::optional<cluster::NodeSlot> slot;
  {
    std::lock_guard lock(mu_);
    slot = slot_;
    slot_.reset();
  }
  if (slot) index_.remove_node(*slot);
}

void NodeFollower::mark_down() {
  bool expired = false;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_or_steady(options_.clock).now();
    if (!down_since_) {
      down_since_ = now;
      if (slot_) {
        spdlog::warn("indexer: node {} ({}) unreachable; its blocks are kept for {} ms", status_.node, options_.address,
                     options_.grace.count());
      }
    }
    status_.state = status_.node.empty() ? FollowerState::kConnecting : FollowerState::kDown;
    expired = slot_.has_value() && now - *down_since_ >= options_.grace;
  }
  if (expired) {
    spdlog::warn("indexer: node {} ({}) gone past its grace period: its blocks are dropped", status().node,
                 options_.address);
    forget_node();
  }
}

void NodeFollower::run() {
  auto backoff = std::chrono::milliseconds(50);
  bool need_snapshot = true;
  while (!stopping_) {
    Outcome o = need_snapshot ? load_snapshot() : Outcome::kResync;
    if (o == Outcome::kResync) {
      o = follow();
      need_snapshot = true;  // whatever ended the stream, the next pass starts from a snapshot
    }
    if (o == Outcome::kStopped) break;
    if (o == Outcome::kUnreachable) {
      mark_down();
      if (!sleep_for(backoff)) break;
      backoff = std::min(backoff * 2, options_.max_backoff);
    } else {
      backoff = std::chrono::milliseconds(50);
    }
  }
}

NodeFollower::Outcome NodeFollower::load_snapshot() {
  auto stub = v1::Events::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kSnapshotDeadline);
  if (options_.credentials) options_.credentials->authorize(ctx);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Outcome::kStopped;
    call_ = &ctx;
    if (!status_.node.empty()) status_.state = FollowerState::kSyncing;
  }
  v1::SnapshotResponse snap;
  const grpc::Status s = stub->Snapshot(&ctx, v1::SnapshotRequest(), &snap);
  {
    std::lock_guard lock(mu_);
    call_ = nullptr;
  }
  if (stopping_) return Outcome::kStopped;
  if (!s.ok()) return Outcome::kUnreachable;

  // A node that restarted (new epoch) or another node now at this address: its old blocks go.
  std::string previous;
  uint64_t previous_epoch = 0;
  {
    std::lock_guard lock(mu_);
    previous = status_.node;
    previous_epoch = status_.epoch;
  }
  if (!previous.empty() && previous != snap.node_id()) {
    spdlog::warn("indexer: {} now serves node {} (was {})", options_.address, snap.node_id(), previous);
    forget_node();
  }
  auto slot = index_.add_node(snap.node_id());
  if (!slot.ok()) {
    spdlog::error("indexer: node {}: {}", snap.node_id(), slot.status().to_string());
    return Outcome::kUnreachable;
  }
  (void)index_.clear_node(*slot);
  std::vector<BlockKey> keys;
  for (const v1::TierKeys& t : snap.tiers()) {
    const auto tier = tier_from_wire(t.tier());
    if (!tier) continue;
    keys.clear();
    keys.reserve(static_cast<size_t>(t.keys_size()));
    for (const std::string& k : t.keys()) {
      if (k.size() == BlockKey::kBytes)
        keys.push_back(BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(k.data())));
    }
    index_.stored(*slot, *tier, keys);
  }
  std::lock_guard lock(mu_);
  slot_ = *slot;
  if (previous_epoch != 0 && previous_epoch != snap.epoch()) ++status_.restarts;
  status_.node = snap.node_id();
  status_.epoch = snap.epoch();
  status_.next_seq = snap.as_of_seq();
  status_.state = FollowerState::kFollowing;
  ++status_.snapshots;
  down_since_.reset();
  return Outcome::kResync;  // go on with follow()
}

NodeFollower::Outcome NodeFollower::follow() {
  auto stub = v1::Events::NewStub(channel_);
  grpc::ClientContext ctx;
  if (options_.credentials) options_.credentials->authorize(ctx);
  v1::SubscribeRequest req;
  cluster::NodeSlot slot = 0;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Outcome::kStopped;
    if (!slot_) return Outcome::kResync;
    slot = *slot_;
    req.set_epoch(status_.epoch);
    req.set_from_seq(status_.next_seq);
    req.set_max_batch_events(options_.max_batch_events);
    call_ = &ctx;
  }
  auto reader = stub->Subscribe(&ctx, req);
  v1::EventBatch batch;
  std::vector<cluster::ClusterIndex::Change> changes;
  Outcome outcome = Outcome::kUnreachable;
  while (reader->Read(&batch)) {
    uint64_t expected = 0;
    uint64_t epoch = 0;
    {
      std::lock_guard lock(mu_);
      expected = status_.next_seq;
      epoch = status_.epoch;
    }
    if (batch.resync() || batch.epoch() != epoch || (batch.events_size() > 0 && batch.events(0).seq() != expected)) {
      if (batch.epoch() != epoch) {
        spdlog::info("indexer: node {} restarted (epoch {} → {})", batch.node_id(), epoch, batch.epoch());
      }
      outcome = Outcome::kResync;
      ctx.TryCancel();
      break;
    }
    changes.clear();
    for (const v1::Event& e : batch.events()) {
      if (e.key().size() != BlockKey::kBytes) continue;
      changes.push_back({BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(e.key().data())),
                         static_cast<uint8_t>(e.tiers_after() & ~e.tiers_before() & 0x7),
                         static_cast<uint8_t>(e.tiers_before() & ~e.tiers_after() & 0x7)});
    }
    index_.apply(slot, changes);
    std::lock_guard lock(mu_);
    status_.events += static_cast<uint64_t>(batch.events_size());
    status_.next_seq = batch.next_seq();
    status_.state = FollowerState::kFollowing;
    down_since_.reset();
  }
  (void)reader->Finish();  // how the stream ended does not matter: the next pass starts over
  {
    std::lock_guard lock(mu_);
    call_ = nullptr;
  }
  if (stopping_) return Outcome::kStopped;
  if (outcome == Outcome::kResync) return outcome;
  // The stream ended without a marker: the node went away (or is shutting down).
  return Outcome::kUnreachable;
}

}  // namespace kvtier::indexer
