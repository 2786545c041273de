// PutBlocksReceiver: one PutBlocks stream, message by message, in its phases: the namespace (the
// first message), each chunk's own checks, a block's start (its arena reservation), its bytes
// (straight into the reservation), its end (whole, checksummed, committed). A block the node
// holds already, or has no room for, is read through and counted, not stored.
#pragma once

#include <grpcpp/support/status.h>

#include <functional>
#include <optional>
#include <string>

#include "kvtier/client.h"
#include "kvtier/v1/blocks.pb.h"
#include "server/services/namespace_catalog.h"
#include "server/services/service_metrics.h"

namespace kvtier::services {

class PutBlocksReceiver {
 public:
  using HandleFor = std::function<Result<NamespaceHandle>(const Namespace&)>;
  PutBlocksReceiver(Client& client, const NamespaceCatalog& catalog, const RequestLimits& limits,
                    ServiceMetrics& metrics, HandleFor handle_for, v1::PutBlocksResponse& response)
      : client_(client),
        catalog_(catalog),
        limits_(limits),
        metrics_(metrics),
        handle_for_(std::move(handle_for)),
        response_(response) {}

  // Takes one message; an error ends the stream (blocks committed before it stay).
  grpc::Status receive(const v1::PutBlocksRequest& msg);
  // The stream ended: an error if it ended inside a block or named no namespace.
  grpc::Status finish();

 private:
  // The block being received: its reservation (none when it is skipped: held already, or no room).
  struct Receiving {
    BlockKey key;
    uint32_t next_offset = 0;
    std::optional<PutReservation> reservation;
  };

  grpc::Status open_namespace(const v1::PutBlocksRequest& msg);
  grpc::Status check_chunk(const v1::BlockChunk& c, const BlockKey& key) const;
  grpc::Status begin_block(const v1::BlockChunk& c, const BlockKey& key);
  grpc::Status append(const v1::BlockChunk& c);
  grpc::Status end_block(const v1::BlockChunk& c);
  // The message, with what the stream stored before the error.
  grpc::Status fail(grpc::StatusCode code, const std::string& message) const;
  uint32_t block_bytes() const { return static_cast<uint32_t>(handle_->ns.layout().bytes_per_block()); }

  Client& client_;
  const NamespaceCatalog& catalog_;
  const RequestLimits& limits_;
  ServiceMetrics& metrics_;
  HandleFor handle_for_;
  v1::PutBlocksResponse& response_;
  std::optional<NamespaceHandle> handle_;
  std::optional<Receiving> open_;
};

}  // namespace kvtier::services
