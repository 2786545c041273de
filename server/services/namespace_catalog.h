// The namespaces a node is configured with, found by (model, adapter, tenant salt): what a
// request naming a namespace resolves to.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "kvtier/namespace.h"

namespace kvtier::services {

class NamespaceCatalog {
 public:
  explicit NamespaceCatalog(const std::vector<Namespace>& namespaces) {
    for (const Namespace& ns : namespaces) {
      by_name_.emplace(std::make_tuple(ns.spec().model_id, ns.spec().adapter_id, ns.spec().cache_salt), ns);
    }
  }
  std::optional<Namespace> find(const std::string& model, const std::string& adapter, const std::string& salt) const {
    auto it = by_name_.find(std::make_tuple(model, adapter, salt));
    if (it == by_name_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::tuple<std::string, std::string, std::string>, Namespace> by_name_;
};

// What one request may ask for; bigger requests are INVALID_ARGUMENT.
struct RequestLimits {
  uint32_t max_tokens = 1 << 20;  // token ids in one MatchPrefix
  uint32_t max_keys = 1 << 16;    // keys in one MatchPrefix
  uint32_t max_batch = 1024;      // requests in one MatchPrefixBatch
  uint32_t max_batch_events = 4096;
  uint32_t max_chunk_bytes = 4U << 20;  // one GetBlocks / PutBlocks chunk
};

}  // namespace kvtier::services
