#include "server/services/grpc_frontend.h"

#include <absl/synchronization/mutex.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "common/node_segments.h"
#include "events/token_ring.h"
#include "server/services/metrics_exposition.h"

namespace kvtier::services {

GrpcFrontend::GrpcFrontend(node::NodeTiers& tiers, FrontendOptions options, std::unique_ptr<Client> client,
                           std::unique_ptr<security::AccessPolicy> access, security::ListeningCredentials listening,
                           UcxExport ucx)
    : tiers_(tiers),
      options_(std::move(options)),
      catalog_(options_.namespaces),
      log_(tiers.index(), {options_.node_id, options_.event_ring}),
      client_(std::move(client)),
      access_(std::move(access)),
      listening_(std::move(listening)),
      arena_export_(std::move(ucx.arena)),
      ucx_unavailable_(std::move(ucx.unavailable)),
      read_leases_(options_.ucx.max_leases),
      locality_(tiers.index(), catalog_, options_.limits, metrics_, *access_),
      events_(log_, options_.limits, metrics_, *access_),
      blocks_(*client_, catalog_, options_.limits, metrics_, *access_,
              RemoteReads{arena_export_.get(), ucx_unavailable_, &read_leases_, log_.epoch(), options_.ucx.lease,
                          options_.ucx.max_lease}),
      admin_(tiers, log_, catalog_, metrics_, *access_) {}

Result<std::unique_ptr<GrpcFrontend>> GrpcFrontend::start(node::NodeTiers& tiers, FrontendOptions options) {
  ClientOptions co;
  co.node_name = options.node_id;
  co.shm_prefix = options.shm_prefix;
  auto client = Client::open(co);
  if (!client.ok()) return client.status().with_context("the daemon's own client of the node");
  auto access = security::AccessPolicy::open(options.security);
  if (!access.ok()) return access.status();
  auto listening = security::listening_credentials(options.security, options.address);
  if (!listening.ok()) return listening.status();
  UcxExport ucx;
  if (!options.ucx.enabled) {
    ucx.unavailable = "server.ucx.enabled is false";
  } else if (auto arena = transport::ArenaExport::start((*client)->host_memory()); arena.ok()) {
    ucx.arena = std::move(arena).value();
  } else {
    ucx.unavailable = arena.status().message();
  }
  std::unique_ptr<GrpcFrontend> f(new GrpcFrontend(tiers, std::move(options), std::move(client).value(),
                                                   std::move(access).value(), std::move(listening).value(),
                                                   std::move(ucx)));
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detection on: a
  // graph update on every gRPC lock, several percent of each call. gRPC's locking is not ours
  // to debug in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which would let a second daemon share the port and split
  // its traffic silently; a taken port must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Fewer filters per call (no census, no server-side deadline timer): a MatchPrefix is a few
  // microseconds of work, so per-call overhead is most of its cost. Clients still time out.
  builder.AddChannelArgument(GRPC_ARG_MINIMAL_STACK, 1);
  // PutBlocks streams: an 8 MiB HTTP/2 receive window, so a sender is not held to the default.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  // A PutBlocks chunk may be as large as the limit, plus its few header bytes.
  builder.SetMaxReceiveMessageSize(static_cast<int>(f->options_.limits.max_chunk_bytes + (64U << 10)));
  int bound_port = 0;
  builder.AddListeningPort(f->options_.address, f->listening_.credentials, &bound_port);
  // One completion queue (and thread) per core: each answers its requests where they arrive.
  f->locality_.register_with(builder, static_cast<int>(std::max(2U, std::thread::hardware_concurrency())));
  builder.RegisterService(&f->events_);
  builder.RegisterService(&f->blocks_);
  builder.RegisterService(&f->admin_);
  f->server_ = builder.BuildAndStart();
  if (!f->server_ || bound_port == 0) {
    return Status::unavailable(
        fmt::format("cannot serve gRPC on {} (in use, or not an address of this machine)", f->options_.address));
  }
  f->locality_.start();
  const std::string token_ring = node_tokens_segment(f->options_.shm_prefix, f->options_.node_id);
  if (f->options_.vllm_events) {
    f->options_.vllm_events->token_ring_name = token_ring;
    auto vllm =
        publisher::VllmEventPublisher::start(f->log_, tiers.index(), f->options_.namespaces, *f->options_.vllm_events);
    if (!vllm.ok()) return vllm.status();
    f->vllm_publisher_ = std::move(vllm).value();
  } else {
    (void)TokenRing::destroy(token_ring);  // absent is fine
  }
  if (!f->options_.metrics_address.empty()) {
    GrpcFrontend* raw = f.get();
    auto http = MetricsHttpServer::start(f->options_.metrics_address, [raw] { return raw->render_metrics(); });
    if (!http.ok()) return http.status();
    f->metrics_http_ = std::move(http).value();
  }
  // The index has no wake-up for new changes; a 1 ms poll costs one atomic load when idle.
  GrpcFrontend* raw = f.get();
  f->poller_ = std::thread([raw] {
    while (!raw->stopping_.load()) {
      if (raw->log_.poll() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  return f;
}

std::string GrpcFrontend::render_metrics() const {
  return services::render_metrics(tiers_, log_, metrics_, *access_, vllm_publisher_.get()) +
         render_counters([this](CounterVisitor& v) {
           v.gauge("ucx_reads_enabled", "1 when ReadBlocks serves reads over UCX (docs/transport.md), else 0.",
                   arena_export_ != nullptr ? 1.0 : 0.0);
           read_leases_.visit_counters(v);
         });
}

GrpcFrontend::~GrpcFrontend() {
  // Running requests get the grace period; streams still open after it are cancelled.
  locality_.begin_shutdown();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + options_.grace);
  locality_.stop();
  metrics_http_.reset();
  vllm_publisher_.reset();
  stopping_ = true;
  if (poller_.joinable()) poller_.join();
}

}  // namespace kvtier::services
