// The index's figures as metrics (CounterVisitor): residency per tier, occupancy, evictions.
#pragma once

#include "common/counter_visitor.h"
#include "kvtier/block_index.h"

namespace kvtier::index {

void visit_counters(const IndexStats& stats, CounterVisitor& visitor);

}  // namespace kvtier::index
