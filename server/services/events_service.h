// kvtier.v1.Events: the node's event stream (Subscribe) and snapshots, from the EventLog.
#pragma once

#include "events/event_log.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "server/security/access_policy.h"
#include "server/services/namespace_catalog.h"
#include "server/services/service_metrics.h"

namespace kvtier::services {

class EventsService final : public kvtier::v1::Events::Service {
 public:
  EventsService(const events::EventLog& log, RequestLimits limits, ServiceMetrics& metrics,
                const security::AccessPolicy& access)
      : log_(log), limits_(limits), metrics_(metrics), access_(access) {}

  // Streams from the asked position; a position the log no longer has (or another epoch's) gets
  // one batch with resync = true, then the stream goes on from the log's current end. A stalled
  // subscriber holds nothing but its cursor: it falls out of the replay ring and is told so.
  grpc::Status Subscribe(grpc::ServerContext* context, const v1::SubscribeRequest* request,
                         grpc::ServerWriter<v1::EventBatch>* writer) override;
  grpc::Status Snapshot(grpc::ServerContext* context, const v1::SnapshotRequest* request,
                        v1::SnapshotResponse* response) override;

 private:
  const events::EventLog& log_;
  RequestLimits limits_;
  ServiceMetrics& metrics_;
  const security::AccessPolicy& access_;
};

}  // namespace kvtier::services
