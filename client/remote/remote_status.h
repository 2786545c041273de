// How a gRPC status from the node reads as a kvtier Status, the same on both read paths.
#pragma once

#include <fmt/format.h>
#include <grpcpp/support/status.h>

#include <string_view>

#include "kvtier/status.h"

namespace kvtier::remote {

inline Status from_grpc(const grpc::Status& s, std::string_view what) {
  const std::string message = fmt::format("{}: {}", what, s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::OK: return {};
    case grpc::StatusCode::INVALID_ARGUMENT: return Status::invalid_argument(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return Status::resource_exhausted(message);
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED: return Status::failed_precondition(message);
    case grpc::StatusCode::NOT_FOUND: return Status::not_found(message);
    default: return Status::unavailable(message);
  }
}

}  // namespace kvtier::remote
