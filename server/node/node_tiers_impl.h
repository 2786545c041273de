// NodeTiers' state: the index, the tiers behind their TierStore faces, and the mover that keeps
// them in step (node_tiers.cc: lifecycle, reconciliation, upkeep and promotion threads).
#pragma once

#include <atomic>
#include <future>
#include <thread>

#include "load/load_queue.h"
#include "server/node/node_tiers.h"
#include "server/node/tier_mover.h"
#include "tiers/host/host_arena.h"
#include "tiers/host/host_tier_store.h"
#include "tiers/host/index_binding.h"
#include "tiers/ssd/ssd_tier_store.h"

namespace kvtier::node {

struct NodeTiers::Impl {
  NodeTiersOptions options;
  BlockIndex index;
  std::unique_ptr<host::HostArena> arena;
  host::HostTierStore host_store;
  std::unique_ptr<ssd::SsdStore> ssd;
  std::unique_ptr<ssd::SsdTierStore> ssd_store;
  std::unique_ptr<TierMover> mover;  // made once the SSD tier is open
  std::unique_ptr<LoadQueue> loads;

  std::atomic<bool> stopping{false};
  std::thread upkeep_thread, promote_thread;  // the upkeep thread sleeps on the load queue's room futex

  std::atomic<uint64_t> load_requests{0};

  Impl(NodeTiersOptions o, BlockIndex ix, std::unique_ptr<host::HostArena> a)
      : options(std::move(o)), index(std::move(ix)), arena(std::move(a)), host_store(*arena, index) {}

  void upkeep_loop();
  void promote_loop(std::promise<Status> started);
};

}  // namespace kvtier::node
