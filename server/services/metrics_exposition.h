// The node's metrics in Prometheus text format (version 0.0.4), for GET /metrics. Names and
// meanings are listed in docs/operations.md.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "events/event_log.h"
#include "server/node/node_tiers.h"
#include "server/publisher/vllm_event_publisher.h"
#include "server/security/access_policy.h"
#include "server/services/service_metrics.h"

namespace kvtier::services {

// Every component's counters come through its visitor (CounterVisitor): the index's, the tiers'
// and the mover's (NodeTiers::visit_counters), the services', the access policy's, the event
// log's and the publisher's.
std::string render_metrics(const node::NodeTiers& tiers, const events::EventLog& events, const ServiceMetrics& services,
                           const security::AccessPolicy& access,
                           const publisher::VllmEventPublisher* vllm = nullptr);  // when it publishes

// Counters of any process as Prometheus text: `visit` tells each of its components' counters to
// the visitor it is given (kvtier-indexer's /metrics).
std::string render_counters(const std::function<void(CounterVisitor&)>& visit);

// A label value as the exposition format needs it (backslash, double quote and newline escaped):
// for values that come from outside, such as node names.
std::string label_value(std::string_view value);

}  // namespace kvtier::services
