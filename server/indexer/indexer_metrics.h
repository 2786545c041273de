// kvtier-indexer's counters for its /metrics (docs/scheduler.md#metrics): the cluster index's
// size, each followed kvtierd node's state and event counts, each vLLM engine's. The Scheduler
// service's requests and the access policy's refusals come through their own visitors.
#pragma once

#include <memory>
#include <span>

#include "cluster/cluster_index.h"
#include "common/counter_visitor.h"
#include "server/indexer/follower_set.h"
#include "server/indexer/vllm_engine_follower.h"

namespace kvtier::indexer {

void visit_indexer_counters(CounterVisitor& visitor, const cluster::ClusterIndex& index, const FollowerSet& followers,
                            std::span<const std::unique_ptr<VllmEngineFollower>> engines);

}  // namespace kvtier::indexer
