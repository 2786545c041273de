#include "server/services/locality_service.h"

#include <fmt/format.h>

#include <vector>

#include "kvtier/prefix_chain.h"

namespace kvtier::services {
namespace {

grpc::Status invalid(const std::string& message) { return {grpc::StatusCode::INVALID_ARGUMENT, message}; }

}  // namespace

grpc::Status LocalityService::match(const v1::MatchPrefixRequest& request, v1::MatchPrefixResponse* response) const {
  const bool by_tokens = request.token_ids_size() > 0;
  const bool by_keys = request.keys_size() > 0;
  const bool by_packed = !request.packed_keys().empty();
  if (int{by_tokens} + int{by_keys} + int{by_packed} != 1) {
    return invalid("give exactly one of token_ids, keys and packed_keys");
  }
  // Per-thread scratch: a match allocates nothing on the steady path.
  thread_local std::vector<BlockKey> keys;
  keys.clear();
  if (by_tokens) {
    if (static_cast<uint32_t>(request.token_ids_size()) > limits_.max_tokens) {
      return invalid(
          fmt::format("{} token ids is more than the limit of {}", request.token_ids_size(), limits_.max_tokens));
    }
    if (!request.has_namespace_()) return invalid("token_ids need a namespace");
    const v1::NamespaceRef& ref = request.namespace_();
    auto ns = catalog_.find(ref.model_id(), ref.adapter_id(), ref.cache_salt());
    if (!ns) {
      return invalid(fmt::format("namespace model '{}' adapter '{}' cache_salt '{}' is not configured on this node",
                                 ref.model_id(), ref.adapter_id(), ref.cache_salt()));
    }
    keys = compute_chain(*ns, {request.token_ids().data(), static_cast<size_t>(request.token_ids_size())});
    response->set_block_tokens(ns->block_tokens());
  } else if (by_keys) {
    if (static_cast<uint32_t>(request.keys_size()) > limits_.max_keys) {
      return invalid(fmt::format("{} keys is more than the limit of {}", request.keys_size(), limits_.max_keys));
    }
    keys.reserve(static_cast<size_t>(request.keys_size()));
    for (int i = 0; i < request.keys_size(); ++i) {
      const std::string& k = request.keys(i);
      if (k.size() != BlockKey::kBytes) {
        return invalid(fmt::format("keys[{}] is {} bytes; a key is {}", i, k.size(), BlockKey::kBytes));
      }
      keys.push_back(BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(k.data())));
    }
  } else {
    const std::string& packed = request.packed_keys();
    if (packed.size() % BlockKey::kBytes != 0) {
      return invalid(
          fmt::format("packed_keys is {} bytes, not a whole number of {}-byte keys", packed.size(), BlockKey::kBytes));
    }
    const size_t n = packed.size() / BlockKey::kBytes;
    if (n > limits_.max_keys) return invalid(fmt::format("{} keys is more than the limit of {}", n, limits_.max_keys));
    const auto* p = reinterpret_cast<const uint8_t*>(packed.data());
    for (size_t i = 0; i < n; ++i) keys.push_back(BlockKey::from_bytes(p + i * BlockKey::kBytes));
  }
  const PrefixMatch m = index_.match_prefix(keys);
  metrics_.blocks_asked.fetch_add(keys.size(), std::memory_order_relaxed);
  for (Tier t : kAllTiers) metrics_.tier_hits[tier_index(t)].fetch_add(m.in(t), std::memory_order_relaxed);
  response->set_matched_blocks(static_cast<uint32_t>(m.overall));
  response->set_blocks_asked(static_cast<uint32_t>(keys.size()));
  for (Tier t : kAllTiers) {
    v1::TierMatch* tm = response->add_per_tier();
    tm->set_tier(static_cast<v1::Tier>(tier_index(t) + 1));
    tm->set_blocks(static_cast<uint32_t>(m.in(t)));
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* LocalityService::MatchPrefix(grpc::CallbackServerContext* context,
                                                       const v1::MatchPrefixRequest* request,
                                                       v1::MatchPrefixResponse* response) {
  RpcTimer timer(metrics_, Rpc::kMatchPrefix);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(timer.done(match(*request, response)));
  return reactor;
}

grpc::ServerUnaryReactor* LocalityService::MatchPrefixBatch(grpc::CallbackServerContext* context,
                                                            const v1::MatchPrefixBatchRequest* request,
                                                            v1::MatchPrefixBatchResponse* response) {
  RpcTimer timer(metrics_, Rpc::kMatchPrefixBatch);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status status;
  if (static_cast<uint32_t>(request->requests_size()) > limits_.max_batch) {
    status = invalid(
        fmt::format("{} requests is more than the batch limit of {}", request->requests_size(), limits_.max_batch));
  }
  for (int i = 0; status.ok() && i < request->requests_size(); ++i) {
    const grpc::Status s = match(request->requests(i), response->add_responses());
    if (!s.ok()) status = {s.error_code(), fmt::format("requests[{}]: {}", i, s.error_message())};
  }
  reactor->Finish(timer.done(status));
  return reactor;
}

}  // namespace kvtier::services
