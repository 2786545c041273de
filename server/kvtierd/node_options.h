// From the node's configuration to what NodeTiers opens.
#pragma once

#include "config/node_config.h"
#include "server/node/node_tiers.h"

namespace kvtier::daemon {

// The node name (the host name when the configuration leaves it empty), SSD files under
// ssd_dir (data-<i>.kvt, catalogue in catalog/), per-namespace codecs.
Result<node::NodeTiersOptions> node_tiers_options(const config::NodeConfig& cfg);

}  // namespace kvtier::daemon
