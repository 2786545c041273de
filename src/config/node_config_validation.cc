// NodeConfig's validation: every field in range, addresses parseable, names safe for segment
// names and ZMQ topics, namespaces valid and distinct.
#include "config/node_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <set>
#include <string>

#include "config/byte_size.h"
#include "kvtier/block_index.h"
#include "kvtier/eviction_policy.h"

namespace kvtier::config {
namespace {

bool is_segment_safe(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

// "host:port" or "[v6]:port", port in 1..65535.
Status validate_address(std::string_view field, std::string_view addr) {
  const size_t colon = addr.rfind(':');
  const auto bad = [&](std::string_view why) {
    return Status::invalid_argument(fmt::format("{} '{}' {}", field, addr, why));
  };
  if (colon == std::string_view::npos || colon == 0) return bad("must be host:port");
  const std::string_view host = addr.substr(0, colon);
  if (host.front() == '[' && host.back() != ']') return bad("has an unclosed '[' around an IPv6 host");
  const std::string_view port = addr.substr(colon + 1);
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
    return bad("needs a port in 1..65535");
  }
  return {};
}

}  // namespace

std::vector<std::string> NodeConfig::vllm_pod_ids() const {
  std::vector<std::string> out;
  std::string_view rest = vllm_events_pod_ids;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return out;
}

std::string NodeConfig::vllm_state_file() const {
  if (!vllm_events_state_file.empty()) return vllm_events_state_file;
  return (std::filesystem::path(ssd_dir) / "vllm-published").string();
}

Status NodeConfig::validate_vllm_events() const {
  const auto zmq_endpoint = [](std::string_view field, const std::string& e) -> Status {
    if (!e.starts_with("tcp://") && !e.starts_with("ipc://")) {
      return Status::invalid_argument(
          fmt::format("{} must be a ZMQ endpoint (tcp://host:port or ipc://path), got '{}'", field, e));
    }
    return {};
  };
  KVTIER_RETURN_IF_ERROR(zmq_endpoint("events.vllm.endpoint", vllm_events_endpoint));
  if (!vllm_events_replay_endpoint.empty()) {
    KVTIER_RETURN_IF_ERROR(zmq_endpoint("events.vllm.replay_endpoint", vllm_events_replay_endpoint));
    if (vllm_events_replay_endpoint == vllm_events_endpoint) {
      return Status::invalid_argument("events.vllm.endpoint and events.vllm.replay_endpoint must differ, both are " +
                                      vllm_events_endpoint);
    }
  }
  if (vllm_events_encoding != "array" && vllm_events_encoding != "map") {
    return Status::invalid_argument("events.vllm.encoding must be array or map, got '" + vllm_events_encoding + "'");
  }
  for (const auto& [field, medium] : {std::pair{"events.vllm.host_medium", &vllm_events_host_medium},
                                      std::pair{"events.vllm.ssd_medium", &vllm_events_ssd_medium}}) {
    const bool word = !medium->empty() && medium->size() <= 32 &&
                      std::all_of(medium->begin(), medium->end(),
                                  [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; });
    if (!word) {
      return Status::invalid_argument(
          fmt::format("{} must be 1..32 letters, digits or '_' (e.g. CPU, STORAGE), got '{}'", field, *medium));
    }
  }
  for (const std::string& pod : vllm_pod_ids()) {
    if (pod.find('@') != std::string::npos) {
      return Status::invalid_argument(
          fmt::format("events.vllm.pod_ids: '{}' contains '@', which topics use to "
                      "separate pod and model",
                      pod));
    }
  }
  if (vllm_events_replay_batches == 0 || vllm_events_replay_batches > 1000000) {
    return Status::invalid_argument(
        fmt::format("events.vllm.replay_batches must be 1..1000000, got {}", vllm_events_replay_batches));
  }
  if (vllm_events_token_ring < 1024 || vllm_events_token_ring > (1U << 24) ||
      (vllm_events_token_ring & (vllm_events_token_ring - 1)) != 0) {
    return Status::invalid_argument(
        fmt::format("events.vllm.token_ring must be a power of two in 1024..16777216, got {}", vllm_events_token_ring));
  }
  if (vllm_events_max_block_tokens == 0 || vllm_events_max_block_tokens > 65536) {
    return Status::invalid_argument(
        fmt::format("events.vllm.max_block_tokens must be 1..65536, got {}", vllm_events_max_block_tokens));
  }
  if (vllm_events_enabled) {
    for (size_t i = 0; i < namespaces.size(); ++i) {
      // llm-d splits the topic kv@<pod>@<model> on '@' and needs exactly three parts.
      if (namespaces[i].model_id.find('@') != std::string::npos) {
        return Status::invalid_argument(
            fmt::format("namespaces[{}].model_id '{}' contains '@', which the vLLM events topic kv@<pod>@<model> "
                        "cannot carry (consumers split it on '@'); name the model without it",
                        i, namespaces[i].model_id));
      }
      if (namespaces[i].layout.block_tokens > vllm_events_max_block_tokens) {
        return Status::invalid_argument(
            fmt::format("namespaces[{}] has {} tokens per block, more than events.vllm.max_block_tokens ({}) holds", i,
                        namespaces[i].layout.block_tokens, vllm_events_max_block_tokens));
      }
    }
  }
  return {};
}

Status NodeConfig::validate() const {
  if (node_name.size() > 64 || !is_segment_safe(node_name)) {
    return Status::invalid_argument("node.name must be at most 64 characters of [A-Za-z0-9._-], got '" + node_name +
                                    "'");
  }
  if (shm_prefix.empty() || shm_prefix.size() > 64 || !is_segment_safe(shm_prefix)) {
    return Status::invalid_argument("node.shm_prefix must be 1..64 characters of [A-Za-z0-9._-], got '" + shm_prefix +
                                    "'");
  }
  if (index_capacity < 1024 || index_capacity > (uint64_t{1} << 32)) {
    return Status::invalid_argument(
        fmt::format("index.capacity must be in [1024, 2^32] entries, got {}", index_capacity));
  }
  if (host_bytes < (uint64_t{1} << 20)) {
    return Status::invalid_argument("host.bytes must be at least 1MiB, got " + format_byte_size(host_bytes));
  }
  if (host_slab_bytes < (uint64_t{64} << 10) || host_slab_bytes > host_bytes) {
    return Status::invalid_argument(fmt::format("host.slab_bytes must be 64KiB..host.bytes ({}), got {}",
                                                format_byte_size(host_bytes), format_byte_size(host_slab_bytes)));
  }
  if (!(host_low_watermark > 0 && host_low_watermark < host_high_watermark && host_high_watermark <= 1)) {
    return Status::invalid_argument(
        fmt::format("host.low_watermark and host.high_watermark must satisfy 0 < low < high <= 1, got {} and {}",
                    host_low_watermark, host_high_watermark));
  }
  if (const auto policy = make_eviction_policy(eviction_policy); !policy.ok()) {
    return Status::invalid_argument("host.eviction_policy: " + policy.status().message());
  }
  if (const auto admission = parse_put_admission(put_admission); !admission.ok()) {
    return Status::invalid_argument("host.put_admission: " + admission.status().message());
  }
  for (size_t i = 0; i < namespaces.size(); ++i) {
    if (namespaces[i].layout.bytes_per_block() > host_slab_bytes) {
      return Status::invalid_argument(fmt::format("namespaces[{}] has {}-byte blocks, larger than host.slab_bytes {}",
                                                  i, namespaces[i].layout.bytes_per_block(),
                                                  format_byte_size(host_slab_bytes)));
    }
  }
  if (ssd_enabled) {
    if (ssd_dir.empty()) return Status::invalid_argument("ssd.dir must be set when ssd.enabled is true");
    if (ssd_bytes < (uint64_t{64} << 20)) {
      return Status::invalid_argument("ssd.bytes must be at least 64MiB, got " + format_byte_size(ssd_bytes));
    }
    if (ssd_files == 0 || ssd_files > 64) return Status::invalid_argument("ssd.files must be 1..64");
    if (ssd_region_bytes < (uint64_t{1} << 20) || ssd_region_bytes > (uint64_t{1} << 32) ||
        ssd_region_bytes % 4096 != 0) {
      return Status::invalid_argument("ssd.region_bytes must be 1MiB..4GiB in whole 4KiB pages, got " +
                                      format_byte_size(ssd_region_bytes));
    }
    if (ssd_io_bytes < 4096 || ssd_io_bytes % 4096 != 0 || ssd_io_bytes > ssd_region_bytes) {
      return Status::invalid_argument("ssd.io_bytes must be whole 4KiB pages and at most ssd.region_bytes, got " +
                                      format_byte_size(ssd_io_bytes));
    }
    if (ssd_bytes / ssd_files / ssd_region_bytes < 3) {
      return Status::invalid_argument(fmt::format("ssd.bytes {} holds too few {} regions per file (at least 3)",
                                                  format_byte_size(ssd_bytes), format_byte_size(ssd_region_bytes)));
    }
    if (ssd_queue_depth == 0 || ssd_queue_depth > 1024) {
      return Status::invalid_argument(fmt::format("ssd.queue_depth must be 1..1024, got {}", ssd_queue_depth));
    }
    if (ssd_reclaim != "fifo" && ssd_reclaim != "lru") {
      return Status::invalid_argument("ssd.reclaim must be fifo or lru, got '" + ssd_reclaim + "'");
    }
  }
  for (size_t i = 0; i < namespace_ssd_codecs.size(); ++i) {
    if (namespace_ssd_codecs[i] != "none" && namespace_ssd_codecs[i] != "zstd") {
      return Status::invalid_argument(
          fmt::format("namespaces[{}].ssd_codec must be none or zstd, got '{}'", i, namespace_ssd_codecs[i]));
    }
  }
  KVTIER_RETURN_IF_ERROR(validate_address("server.grpc_address", grpc_address));
  if (!metrics_address.empty()) KVTIER_RETURN_IF_ERROR(validate_address("server.metrics_address", metrics_address));
  KVTIER_RETURN_IF_ERROR(security.validate(grpc_address, "server."));
  if (drain_ms > 600000)
    return Status::invalid_argument(fmt::format("server.drain_ms must be at most 600000, got {}", drain_ms));
  if (heap_trim_ms > 3600000) {
    return Status::invalid_argument(
        fmt::format("server.heap_trim_ms must be at most 3600000 (an hour; 0: never), got {}", heap_trim_ms));
  }
  const auto in_range = [](std::string_view name, uint64_t v, uint64_t lo, uint64_t hi) -> Status {
    if (v < lo || v > hi) return Status::invalid_argument(fmt::format("{} must be {}..{}, got {}", name, lo, hi, v));
    return {};
  };
  KVTIER_RETURN_IF_ERROR(in_range("server.limits.max_tokens", max_tokens, 1, uint64_t{1} << 24));
  KVTIER_RETURN_IF_ERROR(in_range("server.limits.max_keys", max_keys, 1, uint64_t{1} << 20));
  KVTIER_RETURN_IF_ERROR(in_range("server.limits.max_batch", max_batch, 1, 1 << 16));
  KVTIER_RETURN_IF_ERROR(in_range("server.limits.max_batch_events", max_batch_events, 1, 1 << 16));
  // gRPC refuses messages over 4 MiB by default; a chunk leaves room for its header.
  KVTIER_RETURN_IF_ERROR(in_range("server.limits.max_chunk_bytes", max_chunk_bytes, 4096, (uint64_t{4} << 20)));
  KVTIER_RETURN_IF_ERROR(in_range("server.ucx.lease_ms", ucx_lease_ms, 1, ucx_max_lease_ms));
  KVTIER_RETURN_IF_ERROR(in_range("server.ucx.max_lease_ms", ucx_max_lease_ms, 1, 3600000));
  KVTIER_RETURN_IF_ERROR(in_range("server.ucx.max_leases", ucx_max_leases, 1, 1U << 20));
  KVTIER_RETURN_IF_ERROR(in_range("events.ring", event_ring, 1024, uint64_t{1} << 26));
  if ((event_ring & (event_ring - 1)) != 0) {
    return Status::invalid_argument(fmt::format("events.ring must be a power of two, got {}", event_ring));
  }
  KVTIER_RETURN_IF_ERROR(validate_vllm_events());
  static constexpr std::array kLevels = {"trace", "debug", "info", "warn", "error"};
  if (std::find(kLevels.begin(), kLevels.end(), log_level) == kLevels.end()) {
    return Status::invalid_argument("log.level must be trace, debug, info, warn or error, got '" + log_level + "'");
  }
  if (log_format != "text" && log_format != "json") {
    return Status::invalid_argument("log.format must be text or json, got '" + log_format + "'");
  }
  if (grpc_address == metrics_address) {
    return Status::invalid_argument("server.grpc_address and server.metrics_address must differ, both are " +
                                    grpc_address);
  }
  if (namespaces.empty()) return Status::invalid_argument("namespaces must list at least one namespace");
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  for (size_t i = 0; i < namespaces.size(); ++i) {
    const auto& ns = namespaces[i];
    auto created = Namespace::create(ns);
    if (!created.ok()) return created.status().with_context(fmt::format("namespaces[{}]", i));
    // One layout per (model, adapter, salt): two layouts under one name would be two caches that
    // a client could confuse.
    if (!seen.emplace(ns.model_id, ns.adapter_id, ns.cache_salt).second) {
      return Status::invalid_argument(fmt::format("namespaces[{}] repeats model '{}' adapter '{}' cache_salt '{}'", i,
                                                  ns.model_id, ns.adapter_id, ns.cache_salt));
    }
  }
  return {};
}

}  // namespace kvtier::config
