// kvtier.v1.Locality: longest-prefix matches against the node's index, per tier.
//
// A match is a few microseconds of lock-free index probes, so gRPC's own per-call overhead is
// most of a request's cost. It is served on gRPC's asynchronous API by one thread per
// completion queue that answers each request on the thread that received it: no hand-off to a
// worker pool, no wake-up between receiving and answering. Measured on 2 cores at 20k req/s:
// the callback API had the same throughput but a p99 of 150 ms after idle spells (its executor
// threads), the synchronous API half the throughput (docs/benchmarks.md).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "kvtier/block_index.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "server/security/access_policy.h"
#include "server/services/namespace_catalog.h"
#include "server/services/service_metrics.h"

namespace kvtier::services {

class LocalityService {
 public:
  LocalityService(const BlockIndex& index, const NamespaceCatalog& catalog, RequestLimits limits,
                  ServiceMetrics& metrics, const security::AccessPolicy& access)
      : index_(index), catalog_(catalog), limits_(limits), metrics_(metrics), access_(access) {}
  ~LocalityService() { stop(); }
  LocalityService(const LocalityService&) = delete;
  LocalityService& operator=(const LocalityService&) = delete;

  // Before the server is built: registers the service and takes `threads` completion queues.
  void register_with(grpc::ServerBuilder& builder, int threads);
  // After the server started: posts the first requests and starts the threads.
  void start();
  // Before the server's Shutdown(): no new request slots are posted from here on.
  void begin_shutdown() { accepting_.store(false); }
  bool accepting() const { return accepting_.load(std::memory_order_relaxed); }
  // After the server's Shutdown(): drains the queues and joins the threads.
  void stop();

  // The answer to one request (also what the batch form runs per entry).
  grpc::Status match(const v1::MatchPrefixRequest& request, v1::MatchPrefixResponse* response) const;
  grpc::Status match_batch(const v1::MatchPrefixBatchRequest& request, v1::MatchPrefixBatchResponse* response) const;

  v1::Locality::AsyncService& service() { return service_; }
  ServiceMetrics& metrics() const { return metrics_; }
  const security::AccessPolicy& access() const { return access_; }

 private:
  const BlockIndex& index_;
  const NamespaceCatalog& catalog_;
  RequestLimits limits_;
  ServiceMetrics& metrics_;
  const security::AccessPolicy& access_;
  v1::Locality::AsyncService service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  std::atomic<bool> accepting_{true};
  bool stopped_ = false;
};

}  // namespace kvtier::services
