#include "server/services/request_checks.h"

#include <fmt/format.h>

#include <algorithm>

namespace kvtier::services {

grpc::Status resolve_namespace(const NamespaceCatalog& catalog, const v1::NamespaceRef& ref,
                               std::optional<Namespace>& out) {
  out = catalog.find(ref.model_id(), ref.adapter_id(), ref.cache_salt());
  if (!out) {
    return invalid_argument(
        fmt::format("namespace model '{}' adapter '{}' cache_salt '{}' is not configured on this node", ref.model_id(),
                    ref.adapter_id(), ref.cache_salt()));
  }
  return grpc::Status::OK;
}

grpc::Status parse_keys(const google::protobuf::RepeatedPtrField<std::string>& keys, uint32_t max_keys,
                        std::vector<BlockKey>& out) {
  if (static_cast<uint32_t>(keys.size()) > max_keys) {
    return invalid_argument(fmt::format("{} keys is more than the limit of {}", keys.size(), max_keys));
  }
  out.reserve(out.size() + static_cast<size_t>(keys.size()));
  for (int i = 0; i < keys.size(); ++i) {
    const std::string& k = keys.Get(i);
    if (k.size() != BlockKey::kBytes) {
      return invalid_argument(fmt::format("keys[{}] is {} bytes; a key is {}", i, k.size(), BlockKey::kBytes));
    }
    out.push_back(BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(k.data())));
  }
  return grpc::Status::OK;
}

grpc::Status check_get_blocks(const v1::GetBlocksRequest& request, const RequestLimits& limits, GetBlocksAsk& out) {
  out.chunk_bytes =
      request.chunk_bytes() == 0 ? std::min(kDefaultChunkBytes, limits.max_chunk_bytes) : request.chunk_bytes();
  if (out.chunk_bytes < 4096 || out.chunk_bytes > limits.max_chunk_bytes) {
    return invalid_argument(fmt::format("chunk_bytes {} is outside 4096..{}", out.chunk_bytes, limits.max_chunk_bytes));
  }
  return parse_keys(request.keys(), limits.max_keys, out.keys);
}

}  // namespace kvtier::services
