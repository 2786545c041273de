// The one mapping from kvtier's Status to a gRPC status, so every service answers the same
// condition with the same code (docs/api.md lists them per RPC).
#pragma once

#include <grpcpp/support/status.h>

#include "kvtier/status.h"

namespace kvtier::services {

grpc::StatusCode to_grpc_code(StatusCode code);
// The code above, with the status's message (context included).
grpc::Status to_grpc(const Status& status);

}  // namespace kvtier::services
