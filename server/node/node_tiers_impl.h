// NodeTiers' state, shared by its files: node_tiers.cc (lifecycle, reconciliation, upkeep),
// ssd_demotion.cc and ssd_promotion.cc.
#pragma once

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "load/load_queue.h"
#include "server/node/node_tiers.h"
#include "tiers/host/host_arena.h"
#include "tiers/host/index_binding.h"

namespace kvtier::node {

struct NodeTiers::Impl {
  NodeTiersOptions options;
  BlockIndex index;
  std::unique_ptr<host::HostArena> arena;
  std::unique_ptr<host::ArenaReleaser> releaser;
  std::unique_ptr<ssd::SsdStore> ssd;
  std::unique_ptr<LoadQueue> loads;
  std::shared_ptr<const EvictionPolicy> policy;

  mutable std::mutex demote_mu;  // one demotion pass at a time (upkeep thread, promotion making room)
  ssd::AdmissionFilter admission;

  std::mutex pending_mu;
  std::vector<BlockKey> pending_ssd_drops;  // SSD lost them, but the index had them pinned

  std::atomic<bool> stopping{false};
  std::thread upkeep_thread, promote_thread;  // the upkeep thread sleeps on the load queue's room futex

  std::atomic<uint64_t> demoted{0}, demote_refused{0}, load_requests{0}, promoted{0}, promote_misses{0},
      promote_failed{0}, reconcile_forgotten{0}, reconcile_restored{0}, ssd_drops{0};

  Impl(NodeTiersOptions o, BlockIndex ix, std::unique_ptr<host::HostArena> a)
      : options(std::move(o)),
        index(std::move(ix)),
        arena(std::move(a)),
        releaser(std::make_unique<host::ArenaReleaser>(*arena)),
        admission(options.admission) {}

  Status reconcile();
  void forget_ssd_block(const BlockKey& key);
  void upkeep_loop();
  void promote_loop(std::promise<Status> started);
  // Returns the blocks written to SSD; `report` (optional) gets what evicting them from host did.
  Result<size_t> demote(uint64_t bytes, EvictionReport* report = nullptr);
  size_t promote(std::span<const BlockKey> keys);
  ssd::Codec codec_for(uint16_t namespace_id) const {
    auto it = options.codecs.find(namespace_id);
    return it == options.codecs.end() ? ssd::Codec::kNone : it->second;
  }
};

}  // namespace kvtier::node
