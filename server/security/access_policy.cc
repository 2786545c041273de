#include "server/security/access_policy.h"

#include <fmt/format.h>
#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>
#include <openssl/crypto.h>

namespace kvtier::security {
namespace {

size_t role_index(config::Role r) {
  switch (r) {
    case config::Role::kRead: return 0;
    case config::Role::kWrite: return 1;
    case config::Role::kAdmin: return 2;
  }
  return 0;
}

constexpr std::string_view kBearer = "Bearer ";

}  // namespace

Result<std::unique_ptr<AccessPolicy>> AccessPolicy::open(const config::ServerSecurity& security) {
  std::unique_ptr<AccessPolicy> p(new AccessPolicy());
  p->everyone_ = security.roles_of_everyone();
  auto tokens = std::make_shared<Tokens>();
  for (const config::AccessGrant& g : security.grants) {
    if (!g.identity.empty()) p->identities_.emplace_back(g.identity, g.roles);  // validated: each once
    if (g.token_file.empty()) continue;
    auto file = SecretFile::open(g.token_file);
    if (!file.ok()) return file.status().with_context("access grant");
    tokens->push_back({file->value(), g.roles});
    p->files_.emplace_back(std::move(file).value(), g.roles);
  }
  p->token_count_ = tokens->size();
  p->tokens_ = std::move(tokens);
  if (!p->files_.empty()) {
    AccessPolicy* raw = p.get();
    p->watcher_ = std::thread([raw] {
      std::unique_lock lock(raw->stop_mutex_);
      while (!raw->stop_cv_.wait_for(lock, std::chrono::seconds(1), [raw] { return raw->stopping_; })) {
        lock.unlock();
        raw->refresh_tokens();
        lock.lock();
      }
    });
  }
  return p;
}

AccessPolicy::~AccessPolicy() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

void AccessPolicy::refresh_tokens() {
  std::lock_guard lock(files_mutex_);
  bool changed = false;
  for (auto& [file, roles] : files_) {
    auto r = file.refresh();
    if (!r.ok()) {
      // A Secret mid-update or removed: the old token stays valid until a readable one replaces it.
      token_reload_errors_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    changed = changed || *r;
  }
  if (!changed) return;
  auto tokens = std::make_shared<Tokens>();
  for (const auto& [file, roles] : files_) tokens->push_back({file.value(), roles});
  {
    std::unique_lock publish(tokens_mutex_);
    tokens_ = std::move(tokens);
  }
  token_reloads_.fetch_add(1, std::memory_order_relaxed);
}

std::optional<config::RoleSet> AccessPolicy::token_roles(std::string_view presented) const {
  std::shared_ptr<const Tokens> tokens;
  {
    std::shared_lock lock(tokens_mutex_);
    tokens = tokens_;
  }
  std::optional<config::RoleSet> roles;
  for (const Token& t : *tokens) {
    // Every token is compared whatever matched before, each in constant time.
    if (t.value.size() == presented.size() && CRYPTO_memcmp(t.value.data(), presented.data(), presented.size()) == 0) {
      roles = roles.value_or(0) | t.roles;
    }
  }
  return roles;
}

grpc::Status AccessPolicy::refuse(grpc::StatusCode code, config::Role role, const std::string& message) const {
  refused_[role_index(role)][code == grpc::StatusCode::UNAUTHENTICATED ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
  return {code, message};
}

grpc::Status AccessPolicy::check(const grpc::ServerContextBase& context, config::Role role,
                                 std::string_view method) const {
  config::RoleSet roles = everyone_;
  if (config::has_role(roles, role)) return grpc::Status::OK;

  // Who the refusal names; nothing is built unless the call is refused.
  std::string_view caller = "an anonymous caller";
  std::shared_ptr<const grpc::AuthContext> auth;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    const std::string_view value(it->second.data(), it->second.size());
    if (!value.starts_with(kBearer)) {
      return refuse(grpc::StatusCode::UNAUTHENTICATED, role, "the authorization header is not 'Bearer <token>'");
    }
    const auto token = token_roles(value.substr(kBearer.size()));
    if (!token) return refuse(grpc::StatusCode::UNAUTHENTICATED, role, "the bearer token matches no access grant");
    roles |= *token;
    caller = "this token";
  }
  if (!config::has_role(roles, role) && !identities_.empty()) {
    auth = context.auth_context();
    if (auth && auth->IsPeerAuthenticated()) {
      for (const char* property : {GRPC_PEER_URI_PROPERTY_NAME, GRPC_PEER_DNS_PROPERTY_NAME}) {
        for (const grpc::string_ref& name : auth->FindPropertyValues(property)) {
          const std::string_view id(name.data(), name.size());
          for (const auto& [identity, granted] : identities_) {
            if (identity != id) continue;
            roles |= granted;
            caller = identity;
          }
        }
      }
    }
  }
  if (config::has_role(roles, role)) return grpc::Status::OK;
  std::string named(caller);
  if (caller == "an anonymous caller" && auth && auth->IsPeerAuthenticated()) {
    const auto names = auth->GetPeerIdentity();  // a verified certificate no grant names
    if (!names.empty()) named = "certificate " + std::string(names.front().data(), names.front().size());
  }
  return refuse(grpc::StatusCode::PERMISSION_DENIED, role,
                fmt::format("{} needs the {} role; {} holds: {}", method, config::role_name(role), named,
                            config::role_list(roles)));
}

void AccessPolicy::visit_counters(CounterVisitor& v) const {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  static constexpr std::array<std::string_view, 6> kLabels = {
      R"(role="read",code="permission_denied")",  R"(role="read",code="unauthenticated")",
      R"(role="write",code="permission_denied")", R"(role="write",code="unauthenticated")",
      R"(role="admin",code="permission_denied")", R"(role="admin",code="unauthenticated")"};
  std::array<LabelledCount, 6> refused;
  for (size_t r = 0; r < 3; ++r) {
    for (size_t c = 0; c < 2; ++c) refused[r * 2 + c] = {kLabels[r * 2 + c], refused_[r][c].load(kRelaxed)};
  }
  v.counters("access_refused_total", "gRPC calls refused for want of a role, by the role and the status code.",
             refused);
  v.counter("access_token_reloads_total", "Times a changed bearer-token file was read again.",
            token_reloads_.load(kRelaxed));
  v.counter("access_token_reload_errors_total",
            "Token-file checks that failed (unreadable or empty; the previous token stays valid).",
            token_reload_errors_.load(kRelaxed));
}

}  // namespace kvtier::security
