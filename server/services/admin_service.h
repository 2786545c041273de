// kvtier.v1.Admin: statistics, clearing a namespace and eviction on demand, for operators and
// the `kvtier` CLI. Synchronous handlers: these calls are rare and may take a while (a clear
// walks the index), so they run on gRPC's worker threads, away from the callback threads.
#pragma once

#include <chrono>

#include "events/event_log.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "server/node/node_tiers.h"
#include "server/security/access_policy.h"
#include "server/services/namespace_catalog.h"
#include "server/services/service_metrics.h"

namespace kvtier::services {

class AdminService final : public kvtier::v1::Admin::Service {
 public:
  AdminService(node::NodeTiers& tiers, const events::EventLog& log, const NamespaceCatalog& catalog,
               ServiceMetrics& metrics, const security::AccessPolicy& access)
      : tiers_(tiers), log_(log), catalog_(catalog), metrics_(metrics), access_(access) {}

  grpc::Status GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override;
  grpc::Status ClearNamespace(grpc::ServerContext* context, const v1::ClearNamespaceRequest* request,
                              v1::ClearNamespaceResponse* response) override;
  grpc::Status Evict(grpc::ServerContext* context, const v1::EvictRequest* request,
                     v1::EvictResponse* response) override;

 private:
  node::NodeTiers& tiers_;
  const events::EventLog& log_;
  const NamespaceCatalog& catalog_;
  ServiceMetrics& metrics_;
  const security::AccessPolicy& access_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace kvtier::services
