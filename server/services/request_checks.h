// What the services check in every request, in one place so each check says the same thing
// wherever it fails: INVALID_ARGUMENT with a message naming the field.
#pragma once

#include <grpcpp/support/status.h>

#include <optional>
#include <string>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/namespace.h"
#include "kvtier/v1/blocks.pb.h"
#include "kvtier/v1/common.pb.h"
#include "server/services/namespace_catalog.h"

namespace kvtier::services {

inline grpc::Status invalid_argument(const std::string& message) {
  return {grpc::StatusCode::INVALID_ARGUMENT, message};
}

// The configured namespace `ref` names; INVALID_ARGUMENT (naming model, adapter and salt) if none.
grpc::Status resolve_namespace(const NamespaceCatalog& catalog, const v1::NamespaceRef& ref,
                               std::optional<Namespace>& out);

// Appends `keys` (16 bytes each, canonical form) to `out`; INVALID_ARGUMENT for more than
// `max_keys` or a key of another size (naming its index).
grpc::Status parse_keys(const google::protobuf::RepeatedPtrField<std::string>& keys, uint32_t max_keys,
                        std::vector<BlockKey>& out);

// What a GetBlocks request asks for: its keys and chunk size (the default when it names none);
// INVALID_ARGUMENT for a chunk size outside 4 KiB..max_chunk_bytes or bad keys.
struct GetBlocksAsk {
  std::vector<BlockKey> keys;
  uint32_t chunk_bytes = 0;
};
inline constexpr uint32_t kDefaultChunkBytes = 1U << 20;
grpc::Status check_get_blocks(const v1::GetBlocksRequest& request, const RequestLimits& limits, GetBlocksAsk& out);

}  // namespace kvtier::services
