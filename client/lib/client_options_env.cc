// ClientOptions from the environment: how an engine pod names the node it shares memory with.
#include <cstdlib>
#include <string>
#include <string_view>

#include "kvtier/client.h"

namespace kvtier {
namespace {

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (const char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

const char* env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once, at startup
  return v != nullptr && *v != '\0' ? v : nullptr;
}

}  // namespace

Result<ClientOptions> client_options_from_env(ClientOptions base) {
  if (const char* v = env("KVTIER_NODE_NAME")) base.node_name = v;
  if (base.node_name.empty()) {
    return Status::invalid_argument("KVTIER_NODE_NAME is not set (the node's name; in a pod, from spec.nodeName)");
  }
  if (!valid_name(base.node_name)) {
    return Status::invalid_argument("KVTIER_NODE_NAME '" + base.node_name + "' must be 1..64 of [A-Za-z0-9._-]");
  }
  if (const char* v = env("KVTIER_SHM_PREFIX")) base.shm_prefix = v;
  if (!valid_name(base.shm_prefix)) {
    return Status::invalid_argument("KVTIER_SHM_PREFIX '" + base.shm_prefix + "' must be 1..64 of [A-Za-z0-9._-]");
  }
  if (const char* v = env("KVTIER_ENGINE_ID")) base.engine_id = v;
  if (const char* v = env("KVTIER_VERIFY_READS")) {
    const std::string_view s = v;
    if (s != "0" && s != "1")
      return Status::invalid_argument("KVTIER_VERIFY_READS must be 0 or 1, not '" + std::string(s) + "'");
    base.verify_reads = s == "1";
  }
  return base;
}

}  // namespace kvtier
