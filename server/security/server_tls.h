// The credentials a gRPC port listens with: TLS from certificate files that gRPC re-reads when
// they change (cert-manager rotates them in place), mutual TLS when a client CA is set, and
// plaintext otherwise. The files are checked at start so a bad path or a key that does not match
// its certificate is a clear error, not a port that fails every handshake.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/grpc_security_config.h"
#include "kvtier/result.h"

namespace grpc {
class ServerCredentials;
}

namespace kvtier::security {

struct ListeningCredentials {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::string description;            // for the start-up log: "mutual TLS (certificate valid until ...)"
  std::vector<std::string> warnings;  // plaintext on a reachable address; a certificate about to expire
};

Result<ListeningCredentials> listening_credentials(const config::ServerSecurity& security, std::string_view address);

}  // namespace kvtier::security
