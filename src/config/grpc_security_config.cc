#include "config/grpc_security_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

namespace kvtier::config {
namespace {

std::string where(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  return m.is_null() ? std::string() : fmt::format(" (line {})", m.line + 1);
}

Status only_keys(const YAML::Node& node, std::string_view path, std::initializer_list<std::string_view> known) {
  if (!node.IsMap()) return Status::invalid_argument(fmt::format("'{}' must be a mapping{}", path, where(node)));
  for (const auto& item : node) {
    const auto key = item.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return Status::invalid_argument(fmt::format("unknown key '{}.{}'{}", path, key, where(item.first)));
    }
  }
  return {};
}

Status read_string(const YAML::Node& node, std::string_view path, std::string& out) {
  if (!node) return {};
  if (!node.IsScalar()) return Status::invalid_argument(fmt::format("'{}' must be a string{}", path, where(node)));
  out = node.as<std::string>();
  return {};
}

Status read_bool(const YAML::Node& node, std::string_view path, bool& out) {
  if (!node) return {};
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, out)) {
    return Status::invalid_argument(fmt::format("'{}' must be true or false{}", path, where(node)));
  }
  return {};
}

Status read_u32(const YAML::Node& node, std::string_view path, uint32_t& out) {
  if (!node) return {};
  const std::string s = node.IsScalar() ? node.as<std::string>() : std::string();
  uint32_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return Status::invalid_argument(fmt::format("'{}' must be a non-negative integer{}", path, where(node)));
  }
  out = v;
  return {};
}

Result<RoleSet> read_roles(const YAML::Node& node, std::string_view path) {
  if (!node.IsSequence()) {
    return Status::invalid_argument(
        fmt::format("'{}' must be a list of roles (read, write, admin){}", path, where(node)));
  }
  RoleSet set = 0;
  for (size_t i = 0; i < node.size(); ++i) {
    std::string name;
    KVTIER_RETURN_IF_ERROR(read_string(node[i], fmt::format("{}[{}]", path, i), name));
    auto role = parse_role(name);
    if (!role.ok()) return role.status().with_context(fmt::format("{}[{}]{}", path, i, where(node[i])));
    set |= static_cast<RoleSet>(*role);
  }
  return set;
}

}  // namespace

std::string_view role_name(Role r) {
  switch (r) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
  }
  return "unknown";
}

Result<Role> parse_role(std::string_view name) {
  for (Role r : {Role::kRead, Role::kWrite, Role::kAdmin}) {
    if (name == role_name(r)) return r;
  }
  return Status::invalid_argument(fmt::format("unknown role '{}' (read, write or admin)", name));
}

std::string role_list(RoleSet set) {
  std::string out;
  for (Role r : {Role::kRead, Role::kWrite, Role::kAdmin}) {
    if (!has_role(set, r)) continue;
    if (!out.empty()) out += ", ";
    out += role_name(r);
  }
  return out.empty() ? "none" : out;
}

bool is_loopback_address(std::string_view address) {
  if (address.starts_with("unix:") || address.starts_with("unix-abstract:")) return true;
  const size_t colon = address.rfind(':');
  std::string_view host = colon == std::string_view::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

Status ServerSecurity::validate(std::string_view address, std::string_view prefix) const {
  const auto bad = [prefix](std::string_view text) {
    return Status::invalid_argument(fmt::format(fmt::runtime(std::string(text)), fmt::arg("p", prefix)));
  };
  if (tls.enabled() && (tls.cert_file.empty() || tls.key_file.empty())) {
    return bad("{p}tls needs both cert_file and key_file");
  }
  if (!tls.client_ca_file.empty() && !tls.enabled()) {
    return bad("{p}tls.client_ca_file (mutual TLS) needs {p}tls.cert_file and {p}tls.key_file");
  }
  if (tls.reload_s == 0 || tls.reload_s > 86400) {
    return bad(fmt::format("{{p}}tls.reload_s must be 1..86400, got {}", tls.reload_s));
  }
  if (!tls.enabled() && !allow_insecure && !is_loopback_address(address)) {
    return bad(
        fmt::format("{{p}}grpc_address {} is reachable from other machines but has no TLS: set {{p}}tls.cert_file and "
                    "{{p}}tls.key_file, or {{p}}allow_insecure: true where a mesh or NetworkPolicy protects the port",
                    address));
  }
  std::set<std::string> identities;
  std::set<std::string> token_files;
  for (size_t i = 0; i < grants.size(); ++i) {
    const AccessGrant& g = grants[i];
    const std::string at = fmt::format("{{p}}access.grants[{}]", i);
    if (g.identity.empty() == g.token_file.empty()) return bad(at + " needs exactly one of identity and token_file");
    if (g.roles == 0) return bad(at + " grants no roles");
    if ((g.identity + g.token_file).find_first_of(std::string_view("\n\0", 2)) != std::string::npos) {
      return bad(at + " holds a line break");
    }
    if (!g.identity.empty()) {
      if (tls.client_ca_file.empty()) {
        return bad(at + " names a certificate identity, which needs {p}tls.client_ca_file (mutual TLS)");
      }
      if (!identities.insert(g.identity).second) return bad(at + ": identity " + g.identity + " is granted twice");
    }
    if (!g.token_file.empty() && !token_files.insert(g.token_file).second) {
      return bad(at + ": token_file " + g.token_file + " is granted twice");
    }
  }
  return {};
}

Status ClientSecurity::validate(std::string_view path) const {
  if (cert_file.empty() != key_file.empty()) {
    return Status::invalid_argument(fmt::format("{}: cert_file and key_file go together", path));
  }
  if (!cert_file.empty() && ca_file.empty()) {
    return Status::invalid_argument(fmt::format("{}: a client certificate needs ca_file (TLS)", path));
  }
  if (!server_name.empty() && ca_file.empty()) {
    return Status::invalid_argument(fmt::format("{}: server_name needs ca_file (TLS)", path));
  }
  return {};
}

Status apply_server_security(const YAML::Node& section, std::string_view path, ServerSecurity& out) {
  // Keys are named "<path>.<key>", or "<key>" at the top of a file.
  const std::string p = path.empty() ? std::string() : std::string(path) + ".";
  KVTIER_RETURN_IF_ERROR(read_bool(section["allow_insecure"], p + "allow_insecure", out.allow_insecure));
  if (const YAML::Node t = section["tls"]) {
    KVTIER_RETURN_IF_ERROR(
        only_keys(t, p + "tls", {"cert_file", "key_file", "client_ca_file", "require_client_cert", "reload_s"}));
    KVTIER_RETURN_IF_ERROR(read_string(t["cert_file"], p + "tls.cert_file", out.tls.cert_file));
    KVTIER_RETURN_IF_ERROR(read_string(t["key_file"], p + "tls.key_file", out.tls.key_file));
    KVTIER_RETURN_IF_ERROR(read_string(t["client_ca_file"], p + "tls.client_ca_file", out.tls.client_ca_file));
    KVTIER_RETURN_IF_ERROR(
        read_bool(t["require_client_cert"], p + "tls.require_client_cert", out.tls.require_client_cert));
    KVTIER_RETURN_IF_ERROR(read_u32(t["reload_s"], p + "tls.reload_s", out.tls.reload_s));
  }
  if (const YAML::Node a = section["access"]) {
    KVTIER_RETURN_IF_ERROR(only_keys(a, p + "access", {"grants", "default_roles"}));
    if (const YAML::Node d = a["default_roles"]) {
      auto roles = read_roles(d, p + "access.default_roles");
      if (!roles.ok()) return roles.status();
      out.default_roles = *roles;
    }
    if (const YAML::Node list = a["grants"]) {
      if (!list.IsSequence()) {
        return Status::invalid_argument(fmt::format("'{}access.grants' must be a list{}", p, where(list)));
      }
      out.grants.clear();  // a file that lists grants replaces the list it overrides
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string at = fmt::format("{}access.grants[{}]", p, i);
        KVTIER_RETURN_IF_ERROR(only_keys(list[i], at, {"identity", "token_file", "roles"}));
        AccessGrant g;
        KVTIER_RETURN_IF_ERROR(read_string(list[i]["identity"], at + ".identity", g.identity));
        KVTIER_RETURN_IF_ERROR(read_string(list[i]["token_file"], at + ".token_file", g.token_file));
        if (!list[i]["roles"])
          return Status::invalid_argument(fmt::format("'{}.roles' is required{}", at, where(list[i])));
        auto roles = read_roles(list[i]["roles"], at + ".roles");
        if (!roles.ok()) return roles.status();
        g.roles = *roles;
        out.grants.push_back(std::move(g));
      }
    }
  }
  return {};
}

Status apply_client_security(const YAML::Node& section, std::string_view path, ClientSecurity& out) {
  const std::string p(path);
  KVTIER_RETURN_IF_ERROR(only_keys(section, p, {"ca_file", "cert_file", "key_file", "server_name", "token_file"}));
  KVTIER_RETURN_IF_ERROR(read_string(section["ca_file"], p + ".ca_file", out.ca_file));
  KVTIER_RETURN_IF_ERROR(read_string(section["cert_file"], p + ".cert_file", out.cert_file));
  KVTIER_RETURN_IF_ERROR(read_string(section["key_file"], p + ".key_file", out.key_file));
  KVTIER_RETURN_IF_ERROR(read_string(section["server_name"], p + ".server_name", out.server_name));
  KVTIER_RETURN_IF_ERROR(read_string(section["token_file"], p + ".token_file", out.token_file));
  return {};
}

void emit_server_security(YAML::Emitter& out, const ServerSecurity& s) {
  const auto roles = [&out](RoleSet set) {
    out << YAML::Flow << YAML::BeginSeq;
    for (Role r : {Role::kRead, Role::kWrite, Role::kAdmin}) {
      if (has_role(set, r)) out << std::string(role_name(r));
    }
    out << YAML::EndSeq;
  };
  out << YAML::Key << "allow_insecure" << YAML::Value << s.allow_insecure;
  out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap << YAML::Key << "cert_file" << YAML::Value
      << YAML::DoubleQuoted << s.tls.cert_file << YAML::Key << "key_file" << YAML::Value << YAML::DoubleQuoted
      << s.tls.key_file << YAML::Key << "client_ca_file" << YAML::Value << YAML::DoubleQuoted << s.tls.client_ca_file
      << YAML::Key << "require_client_cert" << YAML::Value << s.tls.require_client_cert << YAML::Key << "reload_s"
      << YAML::Value << s.tls.reload_s << YAML::EndMap;
  out << YAML::Key << "access" << YAML::Value << YAML::BeginMap;
  if (s.default_roles) {
    out << YAML::Key << "default_roles" << YAML::Value;
    roles(*s.default_roles);
  }
  out << YAML::Key << "grants" << YAML::Value << YAML::BeginSeq;
  for (const AccessGrant& g : s.grants) {
    out << YAML::BeginMap;
    if (!g.identity.empty()) out << YAML::Key << "identity" << YAML::Value << YAML::DoubleQuoted << g.identity;
    if (!g.token_file.empty()) out << YAML::Key << "token_file" << YAML::Value << YAML::DoubleQuoted << g.token_file;
    out << YAML::Key << "roles" << YAML::Value;
    roles(g.roles);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

}  // namespace kvtier::config
