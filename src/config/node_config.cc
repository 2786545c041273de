#include "config/node_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "config/byte_size.h"

namespace kvtier::config {
namespace {

constexpr uint32_t kMaxAncestorHops = 16;

constexpr std::string_view kEmbeddedDefault = R"yaml(# kvtierd embedded default: runs with nothing but the binary.
node:
  name: ""                 # empty: the host name
  shm_prefix: kvtier       # shared-memory segments are named <shm_prefix>-<node>-*
index:
  capacity: 1048576        # block entries
host:
  bytes: 1GiB              # host-memory tier
  slab_bytes: 32MiB        # arena slab: at least the largest block
  eviction_policy: hit-density  # hit-density | prefix-frequency | prefix-aware | lru | s3fifo; engines evict by it too
  high_watermark: 0.99     # past this fraction the daemon evicts or demotes to SSD,
  low_watermark: 0.98      # down to this one (widen the band for bursts of writes faster than SSD)
  put_admission: by-policy # by-policy | all: when full, refuse new blocks worth less than what they'd push out (docs/index.md#admission)
ssd:
  enabled: true
  dir: kvtier-data/ssd
  bytes: 8GiB
  files: 1
  region_bytes: 16MiB      # written and reclaimed whole
  io_bytes: 1MiB
  queue_depth: 8
  reclaim: fifo            # fifo | lru
  reinsert_hot: true
  sync_writes: false       # true: survive power loss too (fdatasync per region)
  direct_io: true
  admission:
    min_accesses: 2        # a block must be used twice before it is written to SSD,
    ancestor_hops: 1       # or one of its nearest N ancestors was (it extends a prefix that came back)
    write_budget_per_s: 0  # e.g. 200MiB; 0 = no cap
  start_empty_if_unreadable: false
server:
  grpc_address: 127.0.0.1:50551
  metrics_address: 127.0.0.1:9464   # Prometheus text at /metrics; "" to serve none
  drain_ms: 2000           # SIGTERM: running requests get this long to finish
  heap_trim_ms: 5000       # give freed heap memory back to the system this often; 0: never
  allow_insecure: false    # plaintext gRPC on a non-loopback address (only behind a mesh or NetworkPolicy)
  tls:                     # TLS on the gRPC port (docs/operations.md, "Security")
    cert_file: ""          # PEM certificate chain and key, e.g. cert-manager's tls.crt and tls.key
    key_file: ""
    client_ca_file: ""     # mutual TLS: clients present a certificate these CAs signed
    require_client_cert: true  # false: clients without a certificate come in too (bearer tokens)
    reload_s: 60           # the files are re-read this often when they change (rotation)
  access:                  # roles: read, write (PutBlocks), admin (ClearNamespace, Evict)
    grants: []             # {identity: <SAN URI or DNS name> | token_file: <path>, roles: [...]}
    # default_roles: [read]  # roles of every caller; unset: all without grants, none with
  limits:                  # per request; larger ones get INVALID_ARGUMENT
    max_tokens: 1048576    # token ids in one MatchPrefix
    max_keys: 65536        # keys in one MatchPrefix or GetBlocks
    max_batch: 1024        # requests in one MatchPrefixBatch
    max_batch_events: 4096 # events per streamed batch
    max_chunk_bytes: 4MiB  # one GetBlocks / PutBlocks chunk
  ucx:                     # remote reads straight out of the host arena (ReadBlocks, docs/transport.md)
    enabled: true          # UCX unable to start (or false): readers use GetBlocks; the log says why
    lease_ms: 10000        # how long a read lease pins its blocks when the reader names no time
    max_lease_ms: 60000    # the longest a reader may ask for
    max_leases: 4096       # held at once over all readers; more: RESOURCE_EXHAUSTED
events:
  ring: 262144             # events kept for subscribers that fall behind (about 100 B each)
  vllm:                    # the same events in vLLM's format, for llm-d's precise scorer (docs/scheduler.md)
    enabled: false
    endpoint: "tcp://*:5557"         # ZMQ PUB
    connect: false                   # true: connect to a consumer that binds (llm-d's zmqEndpoint)
    replay_endpoint: "tcp://*:5558"  # ZMQ ROUTER; "" for none
    pod_ids: ""              # comma-separated pods to publish as, besides engines naming themselves
                             # (ClientOptions::engine_id); with neither, the node name
    encoding: map            # map (vLLM 0.32's form) | array (older vLLM; what llm-d-kv-cache decodes)
    host_medium: CPU         # `medium` of host-memory blocks (vLLM's name; Dynamo reads it as host)
    ssd_medium: STORAGE      # `medium` of SSD blocks (vLLM's name; Dynamo reads it as disk)
    publish_hbm: false       # engines publish their own GPU blocks
    replay_batches: 10000    # messages kept for the replay socket
    token_ring: 65536        # recent blocks' token ids kept for the publisher (a power of two)
    max_block_tokens: 256    # token ids per block the ring holds
    state_file: ""           # what a clean stop published, for the next start; "": <ssd.dir>/vllm-published
log:
  level: info              # trace | debug | info | warn | error
  format: text             # text | json (one object per line)
namespaces:
  - model_id: kvtier-demo/llama-3.2-1b
    adapter_id: ""
    cache_salt: ""
    ssd_codec: none          # none | zstd
    layout:
      dtype: bf16
      block_tokens: 16
      num_layers: 16
      num_kv_heads: 8
      head_dim: 64
      kv_planes: 2
)yaml";

// yaml-cpp reports problems by exception; this file converts them to Status at its edge.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& msg) : std::runtime_error(msg) {}
  std::string message() const { return what(); }
};

std::string where(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  return m.is_null() ? std::string() : fmt::format(" (line {}, column {})", m.line + 1, m.column + 1);
}

void require_map(const YAML::Node& node, std::string_view path, std::initializer_list<std::string_view> known) {
  if (!node.IsMap()) throw ConfigError(fmt::format("'{}' must be a mapping{}", path, where(node)));
  for (const auto& item : node) {
    const auto key = item.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      throw ConfigError(fmt::format("unknown key '{}.{}'{}", path, key, where(item.first)));
    }
  }
}

std::string get_string(const YAML::Node& node, std::string_view path) {
  if (!node.IsScalar()) throw ConfigError(fmt::format("'{}' must be a string{}", path, where(node)));
  return node.as<std::string>();
}

uint64_t get_uint(const YAML::Node& node, std::string_view path) {
  const std::string s = node.IsScalar() ? node.as<std::string>() : std::string();
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    throw ConfigError(fmt::format("'{}' must be a non-negative integer, got '{}'{}", path, s, where(node)));
  }
  return v;
}

uint32_t get_u32(const YAML::Node& node, std::string_view path) {
  const uint64_t v = get_uint(node, path);
  if (v > UINT32_MAX) throw ConfigError(fmt::format("'{}' is too large: {}{}", path, v, where(node)));
  return static_cast<uint32_t>(v);
}

uint64_t get_bytes(const YAML::Node& node, std::string_view path) {
  auto r = parse_byte_size(get_string(node, path));
  if (!r.ok()) throw ConfigError(fmt::format("'{}': {}{}", path, r.status().message(), where(node)));
  return *r;
}

double get_fraction(const YAML::Node& node, std::string_view path) {
  const std::string s = node.IsScalar() ? node.as<std::string>() : std::string();
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !(v > 0 && v <= 1)) {
    throw ConfigError(fmt::format("'{}' must be a fraction in (0, 1], got '{}'{}", path, s, where(node)));
  }
  return v;
}

bool get_bool(const YAML::Node& node, std::string_view path) {
  bool v = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
    throw ConfigError(fmt::format("'{}' must be true or false{}", path, where(node)));
  }
  return v;
}

NamespaceSpec parse_namespace(const YAML::Node& node, const std::string& path) {
  require_map(node, path, {"model_id", "adapter_id", "cache_salt", "ssd_codec", "layout"});
  NamespaceSpec spec;
  if (!node["model_id"]) throw ConfigError(fmt::format("'{}.model_id' is required{}", path, where(node)));
  spec.model_id = get_string(node["model_id"], path + ".model_id");
  if (node["adapter_id"]) spec.adapter_id = get_string(node["adapter_id"], path + ".adapter_id");
  if (node["cache_salt"]) spec.cache_salt = get_string(node["cache_salt"], path + ".cache_salt");
  const YAML::Node layout = node["layout"];
  if (!layout) throw ConfigError(fmt::format("'{}.layout' is required{}", path, where(node)));
  const std::string lpath = path + ".layout";
  require_map(layout, lpath, {"dtype", "block_tokens", "num_layers", "num_kv_heads", "head_dim", "kv_planes"});
  for (const char* required : {"dtype", "num_layers", "num_kv_heads", "head_dim"}) {
    if (!layout[required]) throw ConfigError(fmt::format("'{}.{}' is required{}", lpath, required, where(layout)));
  }
  auto dtype = parse_dtype(get_string(layout["dtype"], lpath + ".dtype"));
  if (!dtype.ok())
    throw ConfigError(fmt::format("'{}.dtype': {}{}", lpath, dtype.status().message(), where(layout["dtype"])));
  spec.layout.dtype = *dtype;
  if (layout["block_tokens"]) spec.layout.block_tokens = get_u32(layout["block_tokens"], lpath + ".block_tokens");
  spec.layout.num_layers = get_u32(layout["num_layers"], lpath + ".num_layers");
  spec.layout.num_kv_heads = get_u32(layout["num_kv_heads"], lpath + ".num_kv_heads");
  spec.layout.head_dim = get_u32(layout["head_dim"], lpath + ".head_dim");
  if (layout["kv_planes"]) spec.layout.kv_planes = get_u32(layout["kv_planes"], lpath + ".kv_planes");
  return spec;
}

// Applies every key present in `root` onto `cfg`; absent keys keep their current value.
void apply(const YAML::Node& root, NodeConfig& cfg) {
  if (root.IsNull()) return;  // an empty file changes nothing
  require_map(root, "<top>", {"node", "index", "host", "ssd", "server", "events", "log", "namespaces"});
  if (const auto n = root["node"]) {
    require_map(n, "node", {"name", "shm_prefix"});
    if (n["name"]) cfg.node_name = get_string(n["name"], "node.name");
    if (n["shm_prefix"]) cfg.shm_prefix = get_string(n["shm_prefix"], "node.shm_prefix");
  }
  if (const auto n = root["index"]) {
    require_map(n, "index", {"capacity"});
    if (n["capacity"]) cfg.index_capacity = get_uint(n["capacity"], "index.capacity");
  }
  if (const auto n = root["host"]) {
    require_map(n, "host",
                {"bytes", "slab_bytes", "eviction_policy", "high_watermark", "low_watermark", "put_admission"});
    if (n["bytes"]) cfg.host_bytes = get_bytes(n["bytes"], "host.bytes");
    if (n["slab_bytes"]) cfg.host_slab_bytes = get_bytes(n["slab_bytes"], "host.slab_bytes");
    if (n["eviction_policy"]) cfg.eviction_policy = get_string(n["eviction_policy"], "host.eviction_policy");
    if (n["high_watermark"]) cfg.host_high_watermark = get_fraction(n["high_watermark"], "host.high_watermark");
    if (n["low_watermark"]) cfg.host_low_watermark = get_fraction(n["low_watermark"], "host.low_watermark");
    if (n["put_admission"]) cfg.put_admission = get_string(n["put_admission"], "host.put_admission");
  }
  if (const auto n = root["ssd"]) {
    require_map(n, "ssd",
                {"enabled", "dir", "bytes", "files", "region_bytes", "io_bytes", "queue_depth", "reclaim",
                 "reinsert_hot", "sync_writes", "direct_io", "admission", "start_empty_if_unreadable"});
    if (n["enabled"]) cfg.ssd_enabled = get_bool(n["enabled"], "ssd.enabled");
    if (n["dir"]) cfg.ssd_dir = get_string(n["dir"], "ssd.dir");
    if (n["bytes"]) cfg.ssd_bytes = get_bytes(n["bytes"], "ssd.bytes");
    if (n["files"]) cfg.ssd_files = get_u32(n["files"], "ssd.files");
    if (n["region_bytes"]) cfg.ssd_region_bytes = get_bytes(n["region_bytes"], "ssd.region_bytes");
    if (n["io_bytes"]) cfg.ssd_io_bytes = get_bytes(n["io_bytes"], "ssd.io_bytes");
    if (n["queue_depth"]) cfg.ssd_queue_depth = get_u32(n["queue_depth"], "ssd.queue_depth");
    if (n["reclaim"]) cfg.ssd_reclaim = get_string(n["reclaim"], "ssd.reclaim");
    if (n["reinsert_hot"]) cfg.ssd_reinsert_hot = get_bool(n["reinsert_hot"], "ssd.reinsert_hot");
    if (n["sync_writes"]) cfg.ssd_sync_writes = get_bool(n["sync_writes"], "ssd.sync_writes");
    if (n["direct_io"]) cfg.ssd_direct_io = get_bool(n["direct_io"], "ssd.direct_io");
    if (n["start_empty_if_unreadable"]) {
      cfg.ssd_start_empty_if_unreadable = get_bool(n["start_empty_if_unreadable"], "ssd.start_empty_if_unreadable");
    }
    if (const auto a = n["admission"]) {
      require_map(a, "ssd.admission", {"min_accesses", "ancestor_hops", "write_budget_per_s"});
      if (a["min_accesses"]) cfg.ssd_min_accesses = get_u32(a["min_accesses"], "ssd.admission.min_accesses");
      if (a["ancestor_hops"]) {
        cfg.ssd_ancestor_hops = get_u32(a["ancestor_hops"], "ssd.admission.ancestor_hops");
        // Walked under the index's writer lock for each once-used host victim: kept short.
        if (cfg.ssd_ancestor_hops > kMaxAncestorHops) {
          throw ConfigError(fmt::format("'ssd.admission.ancestor_hops' must be at most {}, got {}{}", kMaxAncestorHops,
                                        cfg.ssd_ancestor_hops, where(a["ancestor_hops"])));
        }
      }
      if (a["write_budget_per_s"]) {
        cfg.ssd_write_budget_per_s = get_bytes(a["write_budget_per_s"], "ssd.admission.write_budget_per_s");
      }
    }
  }
  if (const auto n = root["server"]) {
    require_map(n, "server",
                {"grpc_address", "metrics_address", "drain_ms", "heap_trim_ms", "limits", "ucx", "allow_insecure",
                 "tls", "access"});
    if (Status s = apply_server_security(n, "server", cfg.security); !s.ok()) throw ConfigError(s.message());
    if (n["grpc_address"]) cfg.grpc_address = get_string(n["grpc_address"], "server.grpc_address");
    if (n["metrics_address"]) cfg.metrics_address = get_string(n["metrics_address"], "server.metrics_address");
    if (n["drain_ms"]) cfg.drain_ms = get_u32(n["drain_ms"], "server.drain_ms");
    if (n["heap_trim_ms"]) cfg.heap_trim_ms = get_u32(n["heap_trim_ms"], "server.heap_trim_ms");
    if (const auto l = n["limits"]) {
      require_map(l, "server.limits", {"max_tokens", "max_keys", "max_batch", "max_batch_events", "max_chunk_bytes"});
      if (l["max_tokens"]) cfg.max_tokens = get_u32(l["max_tokens"], "server.limits.max_tokens");
      if (l["max_keys"]) cfg.max_keys = get_u32(l["max_keys"], "server.limits.max_keys");
      if (l["max_batch"]) cfg.max_batch = get_u32(l["max_batch"], "server.limits.max_batch");
      if (l["max_batch_events"])
        cfg.max_batch_events = get_u32(l["max_batch_events"], "server.limits.max_batch_events");
      if (l["max_chunk_bytes"]) cfg.max_chunk_bytes = get_bytes(l["max_chunk_bytes"], "server.limits.max_chunk_bytes");
    }
    if (const auto u = n["ucx"]) {
      require_map(u, "server.ucx", {"enabled", "lease_ms", "max_lease_ms", "max_leases"});
      if (u["enabled"]) cfg.ucx_enabled = get_bool(u["enabled"], "server.ucx.enabled");
      if (u["lease_ms"]) cfg.ucx_lease_ms = get_u32(u["lease_ms"], "server.ucx.lease_ms");
      if (u["max_lease_ms"]) cfg.ucx_max_lease_ms = get_u32(u["max_lease_ms"], "server.ucx.max_lease_ms");
      if (u["max_leases"]) cfg.ucx_max_leases = get_u32(u["max_leases"], "server.ucx.max_leases");
    }
  }
  if (const auto n = root["events"]) {
    require_map(n, "events", {"ring", "vllm"});
    if (n["ring"]) cfg.event_ring = get_u32(n["ring"], "events.ring");
    if (const auto v = n["vllm"]) {
      require_map(v, "events.vllm",
                  {"enabled", "endpoint", "connect", "replay_endpoint", "pod_ids", "encoding", "host_medium",
                   "ssd_medium", "publish_hbm", "replay_batches", "token_ring", "max_block_tokens", "state_file"});
      if (v["enabled"]) cfg.vllm_events_enabled = get_bool(v["enabled"], "events.vllm.enabled");
      if (v["endpoint"]) cfg.vllm_events_endpoint = get_string(v["endpoint"], "events.vllm.endpoint");
      if (v["connect"]) cfg.vllm_events_connect = get_bool(v["connect"], "events.vllm.connect");
      if (v["replay_endpoint"]) {
        cfg.vllm_events_replay_endpoint = get_string(v["replay_endpoint"], "events.vllm.replay_endpoint");
      }
      if (v["pod_ids"]) cfg.vllm_events_pod_ids = get_string(v["pod_ids"], "events.vllm.pod_ids");
      if (v["encoding"]) cfg.vllm_events_encoding = get_string(v["encoding"], "events.vllm.encoding");
      if (v["host_medium"]) cfg.vllm_events_host_medium = get_string(v["host_medium"], "events.vllm.host_medium");
      if (v["ssd_medium"]) cfg.vllm_events_ssd_medium = get_string(v["ssd_medium"], "events.vllm.ssd_medium");
      if (v["publish_hbm"]) cfg.vllm_events_publish_hbm = get_bool(v["publish_hbm"], "events.vllm.publish_hbm");
      if (v["replay_batches"]) {
        cfg.vllm_events_replay_batches = get_u32(v["replay_batches"], "events.vllm.replay_batches");
      }
      if (v["token_ring"]) cfg.vllm_events_token_ring = get_u32(v["token_ring"], "events.vllm.token_ring");
      if (v["max_block_tokens"]) {
        cfg.vllm_events_max_block_tokens = get_u32(v["max_block_tokens"], "events.vllm.max_block_tokens");
      }
      if (v["state_file"]) cfg.vllm_events_state_file = get_string(v["state_file"], "events.vllm.state_file");
    }
  }
  if (const auto n = root["log"]) {
    require_map(n, "log", {"level", "format"});
    if (n["level"]) cfg.log_level = get_string(n["level"], "log.level");
    if (n["format"]) cfg.log_format = get_string(n["format"], "log.format");
  }
  if (const auto n = root["namespaces"]) {
    if (!n.IsSequence()) throw ConfigError(fmt::format("'namespaces' must be a list{}", where(n)));
    cfg.namespaces.clear();  // a file that lists namespaces replaces the default's list
    cfg.namespace_ssd_codecs.clear();
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string path = fmt::format("namespaces[{}]", i);
      cfg.namespaces.push_back(parse_namespace(n[i], path));
      cfg.namespace_ssd_codecs.push_back(n[i]["ssd_codec"] ? get_string(n[i]["ssd_codec"], path + ".ssd_codec")
                                                           : std::string("none"));
    }
  }
}

// The scalar settings under `node` ("a.b.c" paths), the namespace list excepted.
void collect_paths(const YAML::Node& node, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& item : node) {
    const auto key = item.first.as<std::string>();
    if (prefix.empty() && key == "namespaces") continue;
    std::string path = prefix;
    if (!path.empty()) path += '.';
    path += key;
    if (item.second.IsMap()) {
      collect_paths(item.second, path, out);
    } else if (!item.second.IsSequence()) {  // lists (access grants) are set in files only
      out.push_back(path);
    }
  }
}

std::string env_name(std::string_view path) {
  std::string name = "KVTIER_";
  for (char c : path) name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

// {a: {b: value}} for "a.b" = value: what apply() reads. Built by recursion, never by
// reassigning a YAML::Node (assignment rebinds the node it refers to).
YAML::Node nested(std::string_view path, const std::string& value) {
  YAML::Node map(YAML::NodeType::Map);
  const size_t dot = path.find('.');
  if (dot == std::string_view::npos) {
    map[std::string(path)] = value;
  } else {
    map[std::string(path.substr(0, dot))] = nested(path.substr(dot + 1), value);
  }
  return map;
}

YAML::Node override_document(const ConfigOverride& o) { return nested(o.path, o.value); }

}  // namespace

std::string_view embedded_default_config() { return kEmbeddedDefault; }

Result<NodeConfig> parse_node_config(std::string_view yaml, std::string_view source,
                                     const std::vector<ConfigOverride>& overrides) {
  NodeConfig cfg;
  try {
    apply(YAML::Load(std::string(kEmbeddedDefault)), cfg);
    apply(YAML::Load(std::string(yaml)), cfg);
  } catch (const ConfigError& e) {
    return Status::invalid_argument(fmt::format("{}: {}", source, e.message()));
  } catch (const YAML::Exception& e) {
    return Status::invalid_argument(fmt::format("{}: not valid YAML: {}", source, e.what()));
  }
  const std::vector<std::string> known = setting_paths();
  for (const ConfigOverride& o : overrides) {
    if (std::find(known.begin(), known.end(), o.path) == known.end()) {
      return Status::invalid_argument(
          fmt::format("{}: '{}' is not a setting (see kvtierd --print-default-config)", o.source, o.path));
    }
    try {
      apply(override_document(o), cfg);
    } catch (const ConfigError& e) {
      return Status::invalid_argument(fmt::format("{}: {}", o.source, e.message()));
    }
  }
  KVTIER_RETURN_IF_ERROR(
      cfg.validate().with_context(overrides.empty() ? std::string(source) : std::string(source) + " with overrides"));
  return cfg;
}

Result<ConfigOverride> parse_override(std::string_view assignment, std::string_view source) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return Status::invalid_argument(
        fmt::format("{} '{}' must be path=value, e.g. server.grpc_address=0.0.0.0:50551", source, assignment));
  }
  return ConfigOverride{std::string(assignment.substr(0, eq)), std::string(assignment.substr(eq + 1)),
                        fmt::format("{} {}", source, assignment.substr(0, eq))};
}

EnvironmentOverrides environment_overrides(const char* const* environ) {
  EnvironmentOverrides out;
  if (environ == nullptr) return out;
  const std::vector<std::string> known = setting_paths();
  for (const char* const* e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (!entry.starts_with("KVTIER_")) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view name = entry.substr(0, eq);
    auto it = std::find_if(known.begin(), known.end(), [&](const std::string& path) { return env_name(path) == name; });
    if (it == known.end()) {
      out.unknown.emplace_back(name);
      continue;
    }
    out.overrides.push_back({*it, std::string(entry.substr(eq + 1)), std::string(name)});
  }
  return out;
}

std::vector<std::string> setting_paths() {
  std::vector<std::string> out;
  collect_paths(YAML::Load(std::string(kEmbeddedDefault)), "", out);
  return out;
}

Result<NodeConfig> load_node_config(const std::string& path, const std::vector<ConfigOverride>& overrides) {
  std::ifstream in(path);
  if (!in) return Status::not_found("cannot open config file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::io_error("reading config file '" + path + "' failed");
  return parse_node_config(text.str(), path, overrides);
}

std::string to_yaml(const NodeConfig& cfg) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "node" << YAML::Value << YAML::BeginMap << YAML::Key << "name" << YAML::Value
      << YAML::DoubleQuoted << cfg.node_name << YAML::Key << "shm_prefix" << YAML::Value << cfg.shm_prefix
      << YAML::EndMap;
  out << YAML::Key << "index" << YAML::Value << YAML::BeginMap << YAML::Key << "capacity" << YAML::Value
      << cfg.index_capacity << YAML::EndMap;
  out << YAML::Key << "host" << YAML::Value << YAML::BeginMap << YAML::Key << "bytes" << YAML::Value
      << format_byte_size(cfg.host_bytes) << YAML::Key << "slab_bytes" << YAML::Value
      << format_byte_size(cfg.host_slab_bytes) << YAML::Key << "eviction_policy" << YAML::Value << cfg.eviction_policy
      << YAML::Key << "high_watermark" << YAML::Value << fmt::format("{}", cfg.host_high_watermark) << YAML::Key
      << "low_watermark" << YAML::Value << fmt::format("{}", cfg.host_low_watermark) << YAML::Key << "put_admission"
      << YAML::Value << cfg.put_admission << YAML::EndMap;
  out << YAML::Key << "ssd" << YAML::Value << YAML::BeginMap << YAML::Key << "enabled" << YAML::Value << cfg.ssd_enabled
      << YAML::Key << "dir" << YAML::Value << cfg.ssd_dir << YAML::Key << "bytes" << YAML::Value
      << format_byte_size(cfg.ssd_bytes) << YAML::Key << "files" << YAML::Value << cfg.ssd_files << YAML::Key
      << "region_bytes" << YAML::Value << format_byte_size(cfg.ssd_region_bytes) << YAML::Key << "io_bytes"
      << YAML::Value << format_byte_size(cfg.ssd_io_bytes) << YAML::Key << "queue_depth" << YAML::Value
      << cfg.ssd_queue_depth << YAML::Key << "reclaim" << YAML::Value << cfg.ssd_reclaim << YAML::Key << "reinsert_hot"
      << YAML::Value << cfg.ssd_reinsert_hot << YAML::Key << "sync_writes" << YAML::Value << cfg.ssd_sync_writes
      << YAML::Key << "direct_io" << YAML::Value << cfg.ssd_direct_io << YAML::Key << "admission" << YAML::Value
      << YAML::BeginMap << YAML::Key << "min_accesses" << YAML::Value << cfg.ssd_min_accesses << YAML::Key
      << "ancestor_hops" << YAML::Value << cfg.ssd_ancestor_hops << YAML::Key << "write_budget_per_s" << YAML::Value
      << format_byte_size(cfg.ssd_write_budget_per_s) << YAML::EndMap << YAML::Key << "start_empty_if_unreadable"
      << YAML::Value << cfg.ssd_start_empty_if_unreadable << YAML::EndMap;
  out << YAML::Key << "server" << YAML::Value << YAML::BeginMap << YAML::Key << "grpc_address" << YAML::Value
      << cfg.grpc_address << YAML::Key << "metrics_address" << YAML::Value << YAML::DoubleQuoted << cfg.metrics_address
      << YAML::Key << "drain_ms" << YAML::Value << cfg.drain_ms << YAML::Key << "heap_trim_ms" << YAML::Value
      << cfg.heap_trim_ms;
  emit_server_security(out, cfg.security);
  out << YAML::Key << "limits" << YAML::Value << YAML::BeginMap << YAML::Key << "max_tokens" << YAML::Value
      << cfg.max_tokens << YAML::Key << "max_keys" << YAML::Value << cfg.max_keys << YAML::Key << "max_batch"
      << YAML::Value << cfg.max_batch << YAML::Key << "max_batch_events" << YAML::Value << cfg.max_batch_events
      << YAML::Key << "max_chunk_bytes" << YAML::Value << format_byte_size(cfg.max_chunk_bytes) << YAML::EndMap;
  out << YAML::Key << "ucx" << YAML::Value << YAML::BeginMap << YAML::Key << "enabled" << YAML::Value << cfg.ucx_enabled
      << YAML::Key << "lease_ms" << YAML::Value << cfg.ucx_lease_ms << YAML::Key << "max_lease_ms" << YAML::Value
      << cfg.ucx_max_lease_ms << YAML::Key << "max_leases" << YAML::Value << cfg.ucx_max_leases << YAML::EndMap
      << YAML::EndMap;
  out << YAML::Key << "events" << YAML::Value << YAML::BeginMap << YAML::Key << "ring" << YAML::Value << cfg.event_ring
      << YAML::Key << "vllm" << YAML::Value << YAML::BeginMap << YAML::Key << "enabled" << YAML::Value
      << cfg.vllm_events_enabled << YAML::Key << "endpoint" << YAML::Value << YAML::DoubleQuoted
      << cfg.vllm_events_endpoint << YAML::Key << "connect" << YAML::Value << cfg.vllm_events_connect << YAML::Key
      << "replay_endpoint" << YAML::Value << YAML::DoubleQuoted << cfg.vllm_events_replay_endpoint << YAML::Key
      << "pod_ids" << YAML::Value << YAML::DoubleQuoted << cfg.vllm_events_pod_ids << YAML::Key << "encoding"
      << YAML::Value << cfg.vllm_events_encoding << YAML::Key << "host_medium" << YAML::Value
      << cfg.vllm_events_host_medium << YAML::Key << "ssd_medium" << YAML::Value << cfg.vllm_events_ssd_medium
      << YAML::Key << "publish_hbm" << YAML::Value << cfg.vllm_events_publish_hbm << YAML::Key << "replay_batches"
      << YAML::Value << cfg.vllm_events_replay_batches << YAML::Key << "token_ring" << YAML::Value
      << cfg.vllm_events_token_ring << YAML::Key << "max_block_tokens" << YAML::Value
      << cfg.vllm_events_max_block_tokens << YAML::Key << "state_file" << YAML::Value << YAML::DoubleQuoted
      << cfg.vllm_events_state_file << YAML::EndMap << YAML::EndMap;
  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap << YAML::Key << "level" << YAML::Value << cfg.log_level
      << YAML::Key << "format" << YAML::Value << cfg.log_format << YAML::EndMap;
  out << YAML::Key << "namespaces" << YAML::Value << YAML::BeginSeq;
  for (size_t i = 0; i < cfg.namespaces.size(); ++i) {
    const auto& ns = cfg.namespaces[i];
    const auto& l = ns.layout;
    const std::string codec = i < cfg.namespace_ssd_codecs.size() ? cfg.namespace_ssd_codecs[i] : "none";
    out << YAML::BeginMap << YAML::Key << "model_id" << YAML::Value << YAML::DoubleQuoted << ns.model_id << YAML::Key
        << "adapter_id" << YAML::Value << YAML::DoubleQuoted << ns.adapter_id << YAML::Key << "cache_salt"
        << YAML::Value << YAML::DoubleQuoted << ns.cache_salt << YAML::Key << "ssd_codec" << YAML::Value << codec
        << YAML::Key << "layout" << YAML::Value << YAML::BeginMap << YAML::Key << "dtype" << YAML::Value
        << std::string(dtype_name(l.dtype)) << YAML::Key << "block_tokens" << YAML::Value << l.block_tokens << YAML::Key
        << "num_layers" << YAML::Value << l.num_layers << YAML::Key << "num_kv_heads" << YAML::Value << l.num_kv_heads
        << YAML::Key << "head_dim" << YAML::Value << l.head_dim << YAML::Key << "kv_planes" << YAML::Value
        << l.kv_planes << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace kvtier::config
