// kvtier.v1.Scheduler on kvtier-indexer: ScoreNodes against the cluster index, ListNodes.
#pragma once

#include <grpcpp/server_builder.h>

#include "cluster/cluster_index.h"
#include "cluster/node_scoring.h"
#include "kvtier/v1/scheduler.grpc.pb.h"
#include "server/indexer/follower_set.h"
#include "server/indexer/indexer_config.h"
#include "server/indexer/vllm_engine_follower.h"
#include "server/security/access_policy.h"
#include "server/services/namespace_catalog.h"
#include "server/services/service_metrics.h"

namespace kvtier::indexer {

struct SchedulerLimits {
  uint32_t max_tokens = 1U << 22;  // 4M tokens: a 1M-token context has room
  uint32_t max_keys = 1U << 18;
  uint32_t max_candidates = 4096;
};

class SchedulerService final : public v1::Scheduler::Service {
 public:
  SchedulerService(const cluster::ClusterIndex& index, const FollowerSet& followers,
                   const std::vector<std::unique_ptr<VllmEngineFollower>>& engines,
                   const services::NamespaceCatalog& catalog, std::vector<EngineNamespace> engine_namespaces,
                   cluster::TierWeights weights, SchedulerLimits limits, const security::AccessPolicy& access)
      : index_(index),
        followers_(followers),
        engines_(engines),
        catalog_(catalog),
        engine_namespaces_(std::move(engine_namespaces)),
        weights_(weights),
        limits_(limits),
        access_(access) {}

  grpc::Status ScoreNodes(grpc::ServerContext* context, const v1::ScoreNodesRequest* request,
                          v1::ScoreNodesResponse* response) override;
  grpc::Status ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest* request,
                         v1::ListNodesResponse* response) override;
  // requests_total{rpc, outcome} for both methods (kvtier-indexer's /metrics).
  void visit_counters(CounterVisitor& visitor) const;

 private:
  grpc::Status score_nodes(grpc::ServerContext* context, const v1::ScoreNodesRequest* request,
                           v1::ScoreNodesResponse* response);
  grpc::Status list_nodes(grpc::ServerContext* context, const v1::ListNodesRequest* request,
                          v1::ListNodesResponse* response);

  const cluster::ClusterIndex& index_;
  const FollowerSet& followers_;
  const std::vector<std::unique_ptr<VllmEngineFollower>>& engines_;
  const services::NamespaceCatalog& catalog_;
  const std::vector<EngineNamespace> engine_namespaces_;
  const cluster::TierWeights weights_;
  const SchedulerLimits limits_;
  const security::AccessPolicy& access_;  // both methods need the read role
  services::RpcCounters score_nodes_, list_nodes_;
};

// The server options kvtier-indexer serves the Scheduler service with (kvtier-bench uses the
// same): no shared port, the minimal call stack, requests as large as the limits allow, and a
// stream window that takes a long prompt's keys in one flight instead of waiting on HTTP/2 flow
// control round trips.
void configure_scheduler_server(grpc::ServerBuilder& builder);

}  // namespace kvtier::indexer
