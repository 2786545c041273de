// GrpcFrontend: what schedulers, other nodes and operators talk to. Owns the node's event log (a
// new epoch per start) and its poller thread, the daemon's own client of the node (for block
// serving), the kvtier.v1 services, the gRPC server with the standard health service, and the
// Prometheus endpoint. Destroying it stops taking requests and gives running ones a grace period.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "events/event_log.h"
#include "kvtier/client.h"
#include "kvtier/namespace.h"
#include "kvtier/result.h"
#include "server/node/node_tiers.h"
#include "server/publisher/vllm_event_publisher.h"
#include "server/security/access_policy.h"
#include "server/security/server_tls.h"
#include "server/services/admin_service.h"
#include "server/services/blocks_service.h"
#include "server/services/events_service.h"
#include "server/services/locality_service.h"
#include "server/services/metrics_http_server.h"
#include "server/services/service_metrics.h"

namespace grpc {
class Server;
}

namespace kvtier::services {

// Remote reads over UCX (ReadBlocks, docs/transport.md).
struct UcxReadOptions {
  bool enabled = true;                         // when UCX cannot start, the node logs why and serves GetBlocks only
  std::chrono::milliseconds lease{10000};      // a lease's time when the reader names none
  std::chrono::milliseconds max_lease{60000};  // the most a reader may ask for
  uint32_t max_leases = 4096;                  // held at once, over all readers
};

struct FrontendOptions {
  std::string address;          // gRPC, host:port
  std::string metrics_address;  // Prometheus, host:port; empty: none
  std::string node_id;
  std::string shm_prefix = "kvtier";  // the node's segments, for the daemon's own client
  std::vector<Namespace> namespaces;
  uint32_t event_ring = 1U << 18;
  RequestLimits limits;
  config::ServerSecurity security;        // TLS, mutual TLS and roles on `address`
  std::chrono::milliseconds grace{2000};  // for running requests at shutdown
  // Publishes the node's events in vLLM's format too (its token ring is then created; without
  // it a ring a previous run left is removed, so clients stop recording tokens).
  std::optional<publisher::VllmPublisherOptions> vllm_events;
  UcxReadOptions ucx;
};

class GrpcFrontend {
 public:
  static Result<std::unique_ptr<GrpcFrontend>> start(node::NodeTiers& tiers, FrontendOptions options);
  ~GrpcFrontend();
  GrpcFrontend(const GrpcFrontend&) = delete;
  GrpcFrontend& operator=(const GrpcFrontend&) = delete;

  uint64_t epoch() const { return log_.epoch(); }
  const ServiceMetrics& metrics() const { return metrics_; }
  // The Prometheus text GET /metrics answers with.
  std::string render_metrics() const;
  int metrics_port() const { return metrics_http_ ? metrics_http_->port() : 0; }
  // How the port is protected, for the start-up log, and what the log should warn of.
  const std::string& transport() const { return listening_.description; }
  const std::vector<std::string>& transport_warnings() const { return listening_.warnings; }
  const security::AccessPolicy& access() const { return *access_; }
  // Whether ReadBlocks serves UCX reads, and if not why (for the start-up log).
  bool ucx_reads() const { return arena_export_ != nullptr; }
  const std::string& ucx_unavailable() const { return ucx_unavailable_; }

 private:
  struct UcxExport {
    std::unique_ptr<transport::ArenaExport> arena;  // null: unavailable says why
    std::string unavailable;
  };
  GrpcFrontend(node::NodeTiers& tiers, FrontendOptions options, std::unique_ptr<Client> client,
               std::unique_ptr<security::AccessPolicy> access, security::ListeningCredentials listening, UcxExport ucx);

  node::NodeTiers& tiers_;
  FrontendOptions options_;
  NamespaceCatalog catalog_;
  ServiceMetrics metrics_;
  events::EventLog log_;
  std::unique_ptr<Client> client_;  // outlives the server: payload slices gRPC holds pin blocks through it
  std::unique_ptr<security::AccessPolicy> access_;  // every service checks the caller's role with it
  security::ListeningCredentials listening_;
  // Both go before the services are gone (the server is shut down in the destructor's body) and
  // before the client their pins belong to.
  std::unique_ptr<transport::ArenaExport> arena_export_;
  std::string ucx_unavailable_;
  transport::ReadLeases read_leases_;
  LocalityService locality_;
  EventsService events_;
  BlocksService blocks_;
  AdminService admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  std::unique_ptr<publisher::VllmEventPublisher> vllm_publisher_;
  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

}  // namespace kvtier::services
