// AccessPolicy: who may call what on a gRPC port. A caller is known by its verified client
// certificate (a SAN URI such as a SPIFFE id, or a DNS name) or by the bearer token it sends;
// each grant gives roles, and the default roles belong to every caller. A call whose caller lacks
// the method's role is refused before any work is done: PERMISSION_DENIED, or UNAUTHENTICATED for
// a token that matches no grant. Token files are re-read when they change.
#pragma once

#include <grpcpp/support/status.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/counter_visitor.h"
#include "config/grpc_security_config.h"
#include "kvtier/result.h"
#include "server/security/secret_file.h"

namespace grpc {
class ServerContextBase;
}

namespace kvtier::security {

class AccessPolicy {
 public:
  // Reads every token file (a missing or empty one is an error) and starts watching them.
  static Result<std::unique_ptr<AccessPolicy>> open(const config::ServerSecurity& security);
  ~AccessPolicy();
  AccessPolicy(const AccessPolicy&) = delete;
  AccessPolicy& operator=(const AccessPolicy&) = delete;

  // OK when the caller holds `role`; the refusal otherwise, counted. `method` names the call in
  // the refusal's message.
  grpc::Status check(const grpc::ServerContextBase& context, config::Role role, std::string_view method) const;

  // Every caller holds every role (no grants, no default roles set): the embedded setup.
  bool open_to_everyone() const { return everyone_ == config::kAllRoles; }
  size_t grants() const { return identities_.size() + token_count_; }

  // Re-reads the token files that changed. The watcher calls it every second; tests call it to
  // see a rotation at once.
  void refresh_tokens();

  // Refusals by role and code, token reloads and failed reloads.
  void visit_counters(CounterVisitor& visitor) const;

 private:
  struct Token {
    std::string value;
    config::RoleSet roles = 0;
  };
  using Tokens = std::vector<Token>;

  AccessPolicy() = default;
  // The roles of the token `presented`, or nullopt if no grant's token is it (compared in
  // constant time, so response timing says nothing about a token's bytes).
  std::optional<config::RoleSet> token_roles(std::string_view presented) const;
  grpc::Status refuse(grpc::StatusCode code, config::Role role, const std::string& message) const;

  config::RoleSet everyone_ = config::kAllRoles;
  // A few identities: compared as they are, without building a string per call.
  std::vector<std::pair<std::string, config::RoleSet>> identities_;
  size_t token_count_ = 0;
  // The token list, replaced whole when a file changes. A reader-writer lock, not
  // std::atomic<std::shared_ptr>: libstdc++ 12 builds that on a lock bit ThreadSanitizer cannot see.
  mutable std::shared_mutex tokens_mutex_;
  std::shared_ptr<const Tokens> tokens_;

  std::mutex files_mutex_;  // the files and their grants: the watcher and refresh_tokens()
  std::vector<std::pair<SecretFile, config::RoleSet>> files_;

  // [role][0: permission denied, 1: unauthenticated]
  mutable std::array<std::array<std::atomic<uint64_t>, 2>, 3> refused_{};
  std::atomic<uint64_t> token_reloads_{0}, token_reload_errors_{0};

  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace kvtier::security
