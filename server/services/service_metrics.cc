#include "server/services/service_metrics.h"

namespace kvtier::services {

std::string_view rpc_name(Rpc rpc) {
  switch (rpc) {
    case Rpc::kMatchPrefix: return "MatchPrefix";
    case Rpc::kMatchPrefixBatch: return "MatchPrefixBatch";
    case Rpc::kSubscribe: return "Subscribe";
    case Rpc::kSnapshot: return "Snapshot";
    case Rpc::kGetBlocks: return "GetBlocks";
    case Rpc::kPutBlocks: return "PutBlocks";
    case Rpc::kGetStats: return "GetStats";
    case Rpc::kClearNamespace: return "ClearNamespace";
    case Rpc::kEvict: return "Evict";
  }
  return "unknown";
}

}  // namespace kvtier::services
