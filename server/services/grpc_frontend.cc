#include "server/services/grpc_frontend.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

namespace kvtier::services {

GrpcFrontend::GrpcFrontend(BlockIndex& index, FrontendOptions options)
    : options_(std::move(options)),
      catalog_(options_.namespaces),
      log_(index, {options_.node_id, options_.event_ring}),
      locality_(index, catalog_, options_.limits),
      events_(log_, options_.limits) {}

Result<std::unique_ptr<GrpcFrontend>> GrpcFrontend::start(BlockIndex& index, FrontendOptions options) {
  std::unique_ptr<GrpcFrontend> f(new GrpcFrontend(index, std::move(options)));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which would let a second daemon share the port and split
  // its traffic silently; a taken port must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int bound_port = 0;
  builder.AddListeningPort(f->options_.address, grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&f->locality_);
  builder.RegisterService(&f->events_);
  f->server_ = builder.BuildAndStart();
  if (!f->server_ || bound_port == 0) {
    return Status::unavailable(
        fmt::format("cannot serve gRPC on {} (in use, or not an address of this machine)", f->options_.address));
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

GrpcFrontend::~GrpcFrontend() {
  // Running requests get the grace period; streams still open after it are cancelled.
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + options_.grace);
  stopping_ = true;
  if (poller_.joinable()) poller_.join();
}

}  // namespace kvtier::services
