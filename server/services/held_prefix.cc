#include "server/services/held_prefix.h"

namespace kvtier::services {

Result<HeldPrefix> pin_held_prefix(Client& client, std::span<const BlockKey> keys, bool include_ssd,
                                   std::chrono::milliseconds load_timeout) {
  HeldPrefix held;
  if (!include_ssd) {
    KVTIER_ASSIGN_OR_RETURN(held.blocks, client.acquire(keys));
    held.from_host = held.blocks.size();
    return held;
  }
  KVTIER_ASSIGN_OR_RETURN(Acquisition acquired, client.acquire_or_load(keys));
  held.blocks = std::move(acquired.host);
  held.from_host = held.blocks.size();
  if (acquired.load.size() > 0) {
    (void)acquired.load.wait(load_timeout);
    auto again = client.acquire(keys);
    if (again.ok() && again->size() > held.blocks.size()) held.blocks = std::move(*again);
  }
  return held;
}

}  // namespace kvtier::services
