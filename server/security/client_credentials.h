// ClientCredentials: how kvtier's own clients (the CLI, the indexer's followers, tests, benches)
// reach a protected port: TLS trusting the CA that signed the server's certificate, the client's
// own certificate for mutual TLS (files re-read when they rotate, for long-lived followers), and a
// bearer token added to every call. With nothing set, a plaintext channel.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/support/channel_arguments.h>

#include "config/grpc_security_config.h"
#include "kvtier/result.h"
#include "server/security/secret_file.h"

namespace grpc {
class Channel;
class ChannelCredentials;
class ClientContext;
}  // namespace grpc

namespace kvtier::security {

class ClientCredentials {
 public:
  // Checks the files (a missing CA, a key that is not the certificate's, an empty token are errors).
  static Result<std::shared_ptr<const ClientCredentials>> open(const config::ClientSecurity& security);

  std::shared_ptr<grpc::Channel> channel(const std::string& address, grpc::ChannelArguments args = {}) const;
  // Adds the bearer token, if one is configured, to a call about to start.
  void authorize(grpc::ClientContext& context) const;
  bool tls() const { return security_.tls(); }

 private:
  ClientCredentials() = default;

  config::ClientSecurity security_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  // The token file is looked at again at most once a second.
  mutable std::mutex token_mutex_;
  mutable std::optional<SecretFile> token_;
  mutable std::chrono::steady_clock::time_point token_checked_;
};

}  // namespace kvtier::security
