// How a gRPC port is protected (TLS, mutual TLS, roles) and how kvtier's own clients connect to
// one: the settings kvtierd's and kvtier-indexer's configurations share. docs/operations.md
// ("Security") explains them and the threat model behind them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvtier/result.h"

namespace YAML {
class Node;
class Emitter;
}  // namespace YAML

namespace kvtier::config {

// What a caller may do. read: MatchPrefix, MatchPrefixBatch, Subscribe, Snapshot, GetBlocks,
// GetStats (and the indexer's ScoreNodes, ListNodes); write: PutBlocks; admin: ClearNamespace, Evict.
enum class Role : uint8_t { kRead = 1, kWrite = 2, kAdmin = 4 };
using RoleSet = uint8_t;
inline constexpr RoleSet kAllRoles = 7;
constexpr bool has_role(RoleSet set, Role r) { return (set & static_cast<RoleSet>(r)) != 0; }
std::string_view role_name(Role r);  // "read", "write", "admin"
Result<Role> parse_role(std::string_view name);
std::string role_list(RoleSet set);  // "read, write"; "none"

struct ServerTls {
  std::string cert_file;  // PEM chain; with key_file, the port speaks TLS
  std::string key_file;
  std::string client_ca_file;       // mutual TLS: client certificates must chain to these CAs
  bool require_client_cert = true;  // with client_ca_file; false admits clients without one (tokens)
  uint32_t reload_s = 60;           // how often the files are checked for new contents (rotation)

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// One caller and its roles: a client certificate's identity, or a bearer token kept in a file.
struct AccessGrant {
  std::string identity;    // a SAN URI (e.g. a SPIFFE id) or DNS name of a client certificate
  std::string token_file;  // or: the token, read from this file (a Kubernetes Secret), re-read when it changes
  RoleSet roles = 0;
};

struct ServerSecurity {
  ServerTls tls;
  bool allow_insecure = false;  // plaintext on a non-loopback address; the log says so at start
  std::vector<AccessGrant> grants;
  // Roles every caller has, granted or not. Unset: all roles when there are no grants (the
  // embedded loopback setup), none when there are.
  std::optional<RoleSet> default_roles;

  RoleSet roles_of_everyone() const { return default_roles.value_or(grants.empty() ? kAllRoles : RoleSet{0}); }
  // `prefix` is where the settings sit, for messages: "server." in kvtierd's file, "" in the indexer's.
  Status validate(std::string_view address, std::string_view prefix) const;
};

// How a kvtier client (the CLI, the indexer's followers, tests, benches) reaches a protected port.
struct ClientSecurity {
  std::string ca_file;    // TLS: the server's certificate must chain to these CAs
  std::string cert_file;  // the client's own certificate and key (mutual TLS)
  std::string key_file;
  std::string server_name;  // the name the server's certificate carries, when the address has another
  std::string token_file;   // a bearer token sent with every call, re-read when the file changes

  bool tls() const { return !ca_file.empty(); }
  Status validate(std::string_view path) const;
};

// True for addresses other machines cannot reach: 127.0.0.0/8, [::1], localhost, unix sockets.
bool is_loopback_address(std::string_view address);

// Reads `allow_insecure`, `tls` and `access` from a server section (the caller checks the section's
// other keys). Errors name `path` and the line.
Status apply_server_security(const YAML::Node& section, std::string_view path, ServerSecurity& out);
// Reads {ca_file, cert_file, key_file, server_name, token_file}.
Status apply_client_security(const YAML::Node& section, std::string_view path, ClientSecurity& out);
// Writes `allow_insecure`, `tls` and `access` into the map being emitted.
void emit_server_security(YAML::Emitter& out, const ServerSecurity& security);

}  // namespace kvtier::config
