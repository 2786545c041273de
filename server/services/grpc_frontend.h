// GrpcFrontend: what schedulers and other nodes talk to. Owns the node's event log (a new epoch
// per start), its poller thread, the kvtier.v1 services and the gRPC server with the standard
// health service. Destroying it stops taking requests and gives running ones a grace period.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "events/event_log.h"
#include "kvtier/block_index.h"
#include "kvtier/namespace.h"
#include "kvtier/result.h"
#include "server/services/events_service.h"
#include "server/services/locality_service.h"

namespace grpc {
class Server;
}

namespace kvtier::services {

struct FrontendOptions {
  std::string address;  // host:port
  std::string node_id;
  std::vector<Namespace> namespaces;
  uint32_t event_ring = 1U << 18;
  RequestLimits limits;
  std::chrono::milliseconds grace{2000};  // for running requests at shutdown
};

class GrpcFrontend {
 public:
  static Result<std::unique_ptr<GrpcFrontend>> start(BlockIndex& index, FrontendOptions options);
  ~GrpcFrontend();
  GrpcFrontend(const GrpcFrontend&) = delete;
  GrpcFrontend& operator=(const GrpcFrontend&) = delete;

  uint64_t epoch() const { return log_.epoch(); }

 private:
  GrpcFrontend(BlockIndex& index, FrontendOptions options);

  FrontendOptions options_;
  NamespaceCatalog catalog_;
  events::EventLog log_;
  LocalityService locality_;
  EventsService events_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

}  // namespace kvtier::services
