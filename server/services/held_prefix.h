// The longest prefix of a chain the node holds, pinned for serving to another node: what GetBlocks
// streams and what a ReadBlocks lease hands to a UCX reader.
#pragma once

#include <chrono>
#include <span>
#include <vector>

#include "kvtier/client.h"

namespace kvtier::services {

struct HeldPrefix {
  std::vector<HostBlock> blocks;
  size_t from_host = 0;  // blocks[0, from_host) were in host memory; the rest were loaded from SSD
};

// Pins the host-resident prefix of `keys`; with `include_ssd`, first brings the SSD part that
// continues it into host memory, waiting up to `load_timeout` (an SSD read takes milliseconds).
Result<HeldPrefix> pin_held_prefix(Client& client, std::span<const BlockKey> keys, bool include_ssd,
                                   std::chrono::milliseconds load_timeout);

}  // namespace kvtier::services
