// kvtier.v1.Locality: longest-prefix matches against the node's index, per tier.
#pragma once

#include "kvtier/block_index.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "server/services/namespace_catalog.h"

namespace kvtier::services {

class LocalityService final : public kvtier::v1::Locality::Service {
 public:
  LocalityService(const BlockIndex& index, const NamespaceCatalog& catalog, RequestLimits limits)
      : index_(index), catalog_(catalog), limits_(limits) {}

  grpc::Status MatchPrefix(grpc::ServerContext* context, const v1::MatchPrefixRequest* request,
                           v1::MatchPrefixResponse* response) override;
  grpc::Status MatchPrefixBatch(grpc::ServerContext* context, const v1::MatchPrefixBatchRequest* request,
                                v1::MatchPrefixBatchResponse* response) override;

 private:
  grpc::Status match(const v1::MatchPrefixRequest& request, v1::MatchPrefixResponse* response) const;

  const BlockIndex& index_;
  const NamespaceCatalog& catalog_;
  RequestLimits limits_;
};

}  // namespace kvtier::services
