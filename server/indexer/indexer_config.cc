#include "server/indexer/indexer_config.h"

#include <fmt/format.h>
#include <xxhash.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace kvtier::indexer {
namespace {

// A bad field, with where it is; turned into a Status at the top.
struct BadConfig {
  std::string message;
};

std::string where(const YAML::Node& n) {
  return n.Mark().is_null() ? std::string() : fmt::format(" (line {})", n.Mark().line + 1);
}

void only_keys(const YAML::Node& n, std::string_view path, std::initializer_list<std::string_view> keys) {
  if (!n.IsMap()) throw BadConfig{fmt::format("'{}' must be a mapping{}", path, where(n))};
  for (const auto& kv : n) {
    const auto k = kv.first.as<std::string>();
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
      throw BadConfig{fmt::format("unknown key '{}{}{}'{}", path, path.empty() ? "" : ".", k, where(kv.first))};
    }
  }
}

std::string text(const YAML::Node& n, std::string_view path) {
  if (!n.IsScalar()) throw BadConfig{fmt::format("'{}' must be a string{}", path, where(n))};
  return n.as<std::string>();
}

uint64_t number(const YAML::Node& n, std::string_view path) {
  try {
    return n.as<uint64_t>();
  } catch (const YAML::Exception&) {
    throw BadConfig{fmt::format("'{}' must be a non-negative integer{}", path, where(n))};
  }
}

double real(const YAML::Node& n, std::string_view path) {
  try {
    return n.as<double>();
  } catch (const YAML::Exception&) {
    throw BadConfig{fmt::format("'{}' must be a number{}", path, where(n))};
  }
}

void apply(const YAML::Node& root, IndexerConfig& c) {
  if (root.IsNull()) return;
  only_keys(root, "",
            {"grpc_address", "metrics_address", "nodes", "nodes_file", "nodes_dns", "namespaces_config", "grace_ms",
             "weights", "engine_namespaces", "vllm_engines", "allow_insecure", "tls", "access", "node_client"});
  if (Status s = config::apply_server_security(root, "", c.security); !s.ok()) throw BadConfig{s.message()};
  if (const auto n = root["node_client"]) {
    if (Status s = config::apply_client_security(n, "node_client", c.node_client); !s.ok())
      throw BadConfig{s.message()};
  }
  if (root["grpc_address"]) c.grpc_address = text(root["grpc_address"], "grpc_address");
  if (root["metrics_address"]) c.metrics_address = text(root["metrics_address"], "metrics_address");
  if (const auto n = root["nodes"]) {
    if (!n.IsSequence()) throw BadConfig{fmt::format("'nodes' must be a list of addresses{}", where(n))};
    for (size_t i = 0; i < n.size(); ++i) c.nodes.push_back(text(n[i], fmt::format("nodes[{}]", i)));
  }
  if (root["nodes_file"]) c.nodes_file = text(root["nodes_file"], "nodes_file");
  if (const auto n = root["nodes_dns"]) {
    if (!n.IsSequence()) throw BadConfig{fmt::format("'nodes_dns' must be a list of name:port{}", where(n))};
    for (size_t i = 0; i < n.size(); ++i) c.nodes_dns.push_back(text(n[i], fmt::format("nodes_dns[{}]", i)));
  }
  if (root["namespaces_config"]) c.namespaces_config = text(root["namespaces_config"], "namespaces_config");
  if (root["grace_ms"]) c.grace_ms = number(root["grace_ms"], "grace_ms");
  if (const auto w = root["weights"]) {
    only_keys(w, "weights", {"hbm", "host", "ssd", "remote"});
    if (w["hbm"]) c.weights.hbm = real(w["hbm"], "weights.hbm");
    if (w["host"]) c.weights.host = real(w["host"], "weights.host");
    if (w["ssd"]) c.weights.ssd = real(w["ssd"], "weights.ssd");
    if (w["remote"]) c.weights.remote = real(w["remote"], "weights.remote");
  }
  if (const auto list = root["engine_namespaces"]) {
    if (!list.IsSequence()) throw BadConfig{fmt::format("'engine_namespaces' must be a list{}", where(list))};
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = fmt::format("engine_namespaces[{}]", i);
      const YAML::Node& n = list[i];
      only_keys(n, path, {"model_id", "key_profile", "hash_seed", "block_tokens", "lora_paths"});
      EngineNamespace e;
      if (!n["model_id"] || !n["key_profile"]) {
        throw BadConfig{fmt::format("'{}' needs model_id and key_profile{}", path, where(n))};
      }
      e.model_id = text(n["model_id"], path + ".model_id");
      e.profile.model_name = e.model_id;  // llm-d roots its chains at the model's name
      auto kind = parse_key_profile(text(n["key_profile"], path + ".key_profile"));
      if (!kind.ok()) throw BadConfig{fmt::format("'{}.key_profile': {}", path, kind.status().message())};
      e.profile.kind = *kind;
      if (n["hash_seed"]) {
        e.profile.hash_seed = text(n["hash_seed"], path + ".hash_seed");
      } else if (e.profile.kind == KeyProfileKind::kVllmSha256Cbor) {
        e.profile.hash_seed = kVllmDefaultNoneHashSeed;  // what vLLM 0.32 uses without PYTHONHASHSEED
      }
      if (n["block_tokens"]) e.profile.block_tokens = static_cast<uint32_t>(number(n["block_tokens"], path));
      if (const YAML::Node& paths = n["lora_paths"]) {
        if (!paths.IsMap()) throw BadConfig{fmt::format("'{}.lora_paths' must be a mapping{}", path, where(paths))};
        for (const auto& entry : paths) {
          e.lora_paths[text(entry.first, path + ".lora_paths")] = text(entry.second, path + ".lora_paths");
        }
      }
      c.engine_namespaces.push_back(std::move(e));
    }
  }
  if (const auto list = root["vllm_engines"]) {
    if (!list.IsSequence()) throw BadConfig{fmt::format("'vllm_engines' must be a list{}", where(list))};
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = fmt::format("vllm_engines[{}]", i);
      const YAML::Node& n = list[i];
      only_keys(n, path, {"name", "endpoint", "replay_endpoint", "topic", "model_id"});
      VllmEngine e;
      if (!n["name"] || !n["endpoint"] || !n["model_id"]) {
        throw BadConfig{fmt::format("'{}' needs name, endpoint and model_id{}", path, where(n))};
      }
      e.name = text(n["name"], path + ".name");
      e.endpoint = text(n["endpoint"], path + ".endpoint");
      e.model_id = text(n["model_id"], path + ".model_id");
      if (n["replay_endpoint"]) e.replay_endpoint = text(n["replay_endpoint"], path + ".replay_endpoint");
      if (n["topic"]) e.topic = text(n["topic"], path + ".topic");
      c.vllm_engines.push_back(std::move(e));
    }
  }
}

}  // namespace

uint64_t EngineNamespace::key_space() const {
  const std::string id = fmt::format("kvtier-engine-key-space\n{}\n{}\n{}\n{}", key_profile_name(profile.kind),
                                     model_id, profile.hash_seed, profile.block_tokens);
  return XXH3_64bits(id.data(), id.size()) | 1;  // never 0: that is where kvtier's own roots may fall
}

Status IndexerConfig::validate() const {
  KVTIER_RETURN_IF_ERROR(weights.validate());
  KVTIER_RETURN_IF_ERROR(security.validate(grpc_address, ""));
  KVTIER_RETURN_IF_ERROR(node_client.validate("node_client"));
  std::set<std::string> models;
  for (const EngineNamespace& e : engine_namespaces) {
    if (e.model_id.empty()) return Status::invalid_argument("an engine namespace needs a model_id");
    if (e.profile.kind == KeyProfileKind::kKvtier) {
      return Status::invalid_argument(fmt::format(
          "engine namespace {}: key_profile kvtier is for kvtierd nodes (namespaces_config), not engines", e.model_id));
    }
    if (Status s = e.profile.validate(); !s.ok()) {
      return Status::invalid_argument(fmt::format("engine namespace {}: {}", e.model_id, s.message()));
    }
    if (!models.insert(e.model_id).second) {
      return Status::invalid_argument(fmt::format("engine namespace {} is listed twice", e.model_id));
    }
  }
  std::set<std::string> names;
  for (const VllmEngine& v : vllm_engines) {
    if (models.count(v.model_id) == 0) {
      return Status::invalid_argument(
          fmt::format("vLLM engine {}: model_id {} is not one of engine_namespaces", v.name, v.model_id));
    }
    if (!names.insert(v.name).second)
      return Status::invalid_argument(fmt::format("vLLM engine {} is listed twice", v.name));
  }
  for (const std::string& d : nodes_dns) {
    const size_t colon = d.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == d.size() ||
        d.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
      return Status::invalid_argument(fmt::format("nodes_dns entry '{}' must be name:port", d));
    }
  }
  if (nodes.empty() && nodes_file.empty() && nodes_dns.empty() && vllm_engines.empty()) {
    return Status::invalid_argument(
        "no nodes to follow: give --node ADDRESS (repeatable), --nodes-file FILE, --nodes-dns NAME:PORT or "
        "vllm_engines in --config");
  }
  return {};
}

Result<IndexerConfig> parse_indexer_config(std::string_view yaml, std::string_view source) {
  IndexerConfig c;
  try {
    apply(YAML::Load(std::string(yaml)), c);
  } catch (const BadConfig& e) {
    return Status::invalid_argument(fmt::format("{}: {}", source, e.message));
  } catch (const YAML::Exception& e) {
    return Status::invalid_argument(fmt::format("{}: not valid YAML: {}", source, e.what()));
  }
  return c;
}

Result<IndexerConfig> load_indexer_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found(fmt::format("configuration file {} cannot be read", path));
  std::stringstream s;
  s << in.rdbuf();
  return parse_indexer_config(s.str(), path);
}

}  // namespace kvtier::indexer
