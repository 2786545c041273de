// The node's metrics in Prometheus text format (version 0.0.4), for GET /metrics. Names and
// meanings are listed in docs/operations.md.
#pragma once

#include <string>

#include "events/event_log.h"
#include "server/node/node_tiers.h"
#include "server/publisher/vllm_event_publisher.h"
#include "server/services/service_metrics.h"

namespace kvtier::services {

// The tiers' and the mover's own counters come through their visitors (NodeTiers::visit_counters).
std::string render_metrics(const node::NodeTiers& tiers, const events::EventLogStats& events,
                           const ServiceMetrics& services, const std::string& node_id, uint64_t epoch,
                           const publisher::VllmPublisherStats* vllm = nullptr);  // when it publishes

}  // namespace kvtier::services
