// kvtier.v1.Blocks: block payloads to and from other nodes (docs/api.md).
//
// GetBlocks pins the held prefix of the asked chain (loading its SSD part into host memory when
// asked) and streams it chunk by chunk straight from the shared arena: each chunk's payload is
// a gRPC slice over the pinned arena bytes, released with the pin once gRPC has sent it, so the
// only copy is gRPC's own into the socket. PutBlocks writes incoming chunks straight into arena
// reservations and commits each block once all of it arrived and checked out. ReadBlocks
// (read_blocks_session.cc) leases held prefixes to readers that get the bytes over UCX.
#pragma once

#include <map>
#include <mutex>

#include "kvtier/client.h"
#include "kvtier/v1/blocks.grpc.pb.h"
#include "server/security/access_policy.h"
#include "server/services/namespace_catalog.h"
#include "server/services/service_metrics.h"
#include "server/transport/arena_export.h"
#include "server/transport/read_leases.h"

namespace kvtier::services {

// What ReadBlocks serves from (docs/transport.md).
struct RemoteReads {
  const transport::ArenaExport* arena = nullptr;  // null: no UCX reads here, for `unavailable`
  std::string unavailable;
  transport::ReadLeases* leases = nullptr;
  uint64_t epoch = 0;  // the node's: in every lease
  std::chrono::milliseconds default_lease{10000};
  std::chrono::milliseconds max_lease{60000};
};

using BlocksServiceBase = v1::Blocks::WithRawCallbackMethod_GetBlocks<v1::Blocks::Service>;

class BlocksService final : public BlocksServiceBase {
 public:
  static constexpr uint32_t kDefaultLoadTimeoutMs = 1000;

  // `client` is the daemon's own client of its node (the same index and arena engines use).
  BlocksService(Client& client, const NamespaceCatalog& catalog, RequestLimits limits, ServiceMetrics& metrics,
                const security::AccessPolicy& access, RemoteReads reads)
      : client_(client),
        catalog_(catalog),
        limits_(limits),
        metrics_(metrics),
        access_(access),
        reads_(std::move(reads)) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetBlocks(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request) override;
  grpc::Status PutBlocks(grpc::ServerContext* context, grpc::ServerReader<v1::PutBlocksRequest>* reader,
                         v1::PutBlocksResponse* response) override;
  grpc::Status ReadBlocks(grpc::ServerContext* context,
                          grpc::ServerReaderWriter<v1::ReadReply, v1::ReadRequest>* stream) override;

 private:
  Result<NamespaceHandle> handle_for(const Namespace& ns);
  // One OpenRead of a session: the lease (or the refusal) it is answered with.
  v1::ReadReply open_read(uint64_t session, const v1::OpenRead& open);

  Client& client_;
  const NamespaceCatalog& catalog_;
  RequestLimits limits_;
  ServiceMetrics& metrics_;
  const security::AccessPolicy& access_;
  RemoteReads reads_;
  std::mutex handles_mu_;
  std::map<uint16_t, NamespaceHandle> handles_;  // registered on first use
};

}  // namespace kvtier::services
