// The node's eviction policy as the index segment records it: a small id every process maps back
// to the same policy (SegmentHeader::eviction_policy).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "kvtier/eviction_policy.h"

namespace kvtier::index {

// The id recorded for a policy name; 0 for a name make_eviction_policy does not know.
uint32_t recorded_policy_id(std::string_view name);
// The policy an id names; the default policy for 0 or an id from a newer build.
const std::shared_ptr<const EvictionPolicy>& recorded_policy(uint32_t id);

}  // namespace kvtier::index
