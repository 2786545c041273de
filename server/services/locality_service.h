// kvtier.v1.Locality: longest-prefix matches against the node's index, per tier. Served on
// gRPC's callback API: a match is a few microseconds of lock-free index probes, so it runs on
// the thread that read the request, without a hand-off to a worker pool.
#pragma once

#include "kvtier/block_index.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "server/services/namespace_catalog.h"
#include "server/services/service_metrics.h"

namespace kvtier::services {

class LocalityService final : public kvtier::v1::Locality::CallbackService {
 public:
  LocalityService(const BlockIndex& index, const NamespaceCatalog& catalog, RequestLimits limits,
                  ServiceMetrics& metrics)
      : index_(index), catalog_(catalog), limits_(limits), metrics_(metrics) {}

  grpc::ServerUnaryReactor* MatchPrefix(grpc::CallbackServerContext* context, const v1::MatchPrefixRequest* request,
                                        v1::MatchPrefixResponse* response) override;
  grpc::ServerUnaryReactor* MatchPrefixBatch(grpc::CallbackServerContext* context,
                                             const v1::MatchPrefixBatchRequest* request,
                                             v1::MatchPrefixBatchResponse* response) override;

 private:
  grpc::Status match(const v1::MatchPrefixRequest& request, v1::MatchPrefixResponse* response) const;

  const BlockIndex& index_;
  const NamespaceCatalog& catalog_;
  RequestLimits limits_;
  ServiceMetrics& metrics_;
};

}  // namespace kvtier::services
