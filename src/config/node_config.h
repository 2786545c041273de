// NodeConfig: what one kvtierd node is told at start, validated once.
//
// Sources, later ones winning: the embedded default (embedded_default_config()), a YAML file,
// KVTIER_* environment variables, command-line overrides. Unknown keys (and unknown KVTIER_*
// variables) are errors, so a misspelt option never silently keeps its default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/grpc_security_config.h"
#include "kvtier/block_index.h"
#include "kvtier/eviction_policy.h"
#include "kvtier/namespace.h"
#include "kvtier/result.h"

namespace kvtier::config {

struct NodeConfig {
  // Node identity. Empty means the host name; events and segment names carry it.
  std::string node_name;
  // Prefix of the node's named shared-memory segments (index, host arena).
  std::string shm_prefix = "kvtier";

  uint64_t index_capacity = 1 << 20;       // block entries the shared-memory index holds
  uint64_t host_bytes = 1ULL << 30;        // host-memory tier (shared-memory arena)
  uint64_t host_slab_bytes = 32ULL << 20;  // arena slab: at least the largest block; host_bytes holds ≥ 1
  // The node's eviction policy (make_eviction_policy's names), recorded in the index for engines too.
  std::string eviction_policy{kDefaultEvictionPolicy};
  // Past the high fraction of host memory the daemon evicts or demotes, down to the low one.
  double host_high_watermark = kDefaultHighWatermark, host_low_watermark = kDefaultLowWatermark;
  // Engines' puts into host memory: "all", or "by-policy" (parse_put_admission), recorded in the index.
  std::string put_admission{put_admission_name(kDefaultPutAdmission)};

  bool ssd_enabled = true;
  std::string ssd_dir = "kvtier-data/ssd";  // relative paths are relative to the working directory
  uint64_t ssd_bytes = 8ULL << 30;
  uint32_t ssd_files = 1;                   // data files under ssd_dir (regions alternate between them)
  uint64_t ssd_region_bytes = 16ULL << 20;  // append-only unit of writing and reclaiming
  uint64_t ssd_io_bytes = 1ULL << 20;       // bytes per write request
  uint32_t ssd_queue_depth = 8;             // requests in flight per file
  std::string ssd_reclaim = "fifo";         // fifo | lru (of regions)
  bool ssd_reinsert_hot = true;             // rewrite blocks read since written when their region is reclaimed
  bool ssd_sync_writes = false;             // fdatasync per region: survive power loss, not only a crash
  bool ssd_direct_io = true;
  uint32_t ssd_min_accesses = 2;               // admission: uses before a block is worth an SSD write
  uint32_t ssd_ancestor_hops = 1;              // admission: or a use count this near up its chain
  uint64_t ssd_write_budget_per_s = 0;         // admission: bytes/s cap on SSD writes; 0 = none
  bool ssd_start_empty_if_unreadable = false;  // an unreadable SSD catalogue starts the tier empty

  std::string grpc_address = "127.0.0.1:50551";
  std::string metrics_address = "127.0.0.1:9464";  // Prometheus /metrics; empty: not served
  uint32_t drain_ms = 2000;                        // SIGTERM: how long running requests may finish
  uint32_t heap_trim_ms = 5000;                    // how often freed heap memory is given back to the system (0: never)
  ServerSecurity security;                         // TLS, mutual TLS and roles on the gRPC port
  // What one request may ask for; larger requests get INVALID_ARGUMENT.
  uint32_t max_tokens = 1 << 20;          // token ids in one MatchPrefix
  uint32_t max_keys = 1 << 16;            // keys in one MatchPrefix or GetBlocks
  uint32_t max_batch = 1024;              // requests in one MatchPrefixBatch
  uint32_t max_batch_events = 4096;       // events in one streamed batch
  uint64_t max_chunk_bytes = 4ULL << 20;  // one GetBlocks/PutBlocks chunk (gRPC's message limit is above it)
  // Remote reads over UCX (ReadBlocks, docs/transport.md).
  bool ucx_enabled = true;        // false, or UCX unable to start: GetBlocks only
  uint32_t ucx_lease_ms = 10000;  // a read lease's time when the reader names none
  uint32_t ucx_max_lease_ms = 60000;
  uint32_t ucx_max_leases = 4096;  // held at once over all readers

  uint32_t event_ring = 1U << 18;  // events kept for replay to subscribers that fall behind

  // The node's events in vLLM's KV-event format (ZMQ + msgpack) for llm-d's precise prefix-cache
  // scorer and other consumers of vLLM engines' streams (docs/scheduler.md). Off by default.
  bool vllm_events_enabled = false;
  std::string vllm_events_endpoint = "tcp://*:5557";         // ZMQ PUB
  bool vllm_events_connect = false;                          // connect to a consumer that binds instead
  std::string vllm_events_replay_endpoint = "tcp://*:5558";  // ZMQ ROUTER; empty: no replay
  // Comma-separated pods to publish as, besides engines that name themselves; with neither, the node.
  std::string vllm_events_pod_ids;
  std::string vllm_events_encoding = "map";        // map (vLLM 0.32's form) | array (llm-d-kv-cache reads this)
  std::string vllm_events_host_medium = "CPU";     // `medium` of host-memory blocks
  std::string vllm_events_ssd_medium = "STORAGE";  // `medium` of SSD blocks
  bool vllm_events_publish_hbm = false;            // engines publish their own GPU blocks
  uint32_t vllm_events_replay_batches = 10000;
  uint32_t vllm_events_token_ring = 1U << 16;  // recent blocks' token ids kept for the publisher
  uint32_t vllm_events_max_block_tokens = 256;
  // What a clean stop had published, for the next start to withdraw what is gone meanwhile;
  // empty: <ssd_dir>/vllm-published.
  std::string vllm_events_state_file;
  std::string vllm_state_file() const;

  std::string log_level = "info";   // trace | debug | info | warn | error
  std::string log_format = "text";  // text | json (one object per line)

  // The namespaces (model, adapter, tenant, layout) this node caches blocks for.
  std::vector<NamespaceSpec> namespaces;
  // namespace_ssd_codecs[i]: how namespaces[i]'s blocks are stored on SSD ("none" or "zstd").
  std::vector<std::string> namespace_ssd_codecs;

  // Ranges, addresses and namespaces (each one valid, no duplicates).
  Status validate() const;
  // events.vllm.pod_ids as a list (empty: the daemon uses the node name).
  std::vector<std::string> vllm_pod_ids() const;

 private:
  Status validate_vllm_events() const;
};

// YAML text of the configuration kvtierd runs with when given no file.
std::string_view embedded_default_config();

// One setting given outside the file: a dotted path of the YAML ("server.grpc_address") and its
// value as it would be written there. `source` names it in errors ("--set", "KVTIER_HOST_BYTES").
struct ConfigOverride {
  std::string path;
  std::string value;
  std::string source;
};

// Parses YAML over the embedded default, applies the overrides in order and validates the result.
// `source` names the text in errors.
Result<NodeConfig> parse_node_config(std::string_view yaml, std::string_view source,
                                     const std::vector<ConfigOverride>& overrides = {});
// Reads and parses a YAML file.
Result<NodeConfig> load_node_config(const std::string& path, const std::vector<ConfigOverride>& overrides = {});

// "path=value" (a --set flag) as an override; invalid_argument without '=' or with an empty path.
Result<ConfigOverride> parse_override(std::string_view assignment, std::string_view source);
// Overrides from KVTIER_* environment variables (`environ` entries): KVTIER_ + the dotted path in
// upper case with '.' as '_' (KVTIER_SERVER_GRPC_ADDRESS). A KVTIER_* variable that names no
// setting is listed in `unknown` (the daemon warns about it: other kvtier tools have variables
// of their own, so it cannot be an error). The namespace list is set in the file only.
struct EnvironmentOverrides {
  std::vector<ConfigOverride> overrides;
  std::vector<std::string> unknown;
};
EnvironmentOverrides environment_overrides(const char* const* environ);
// The dotted paths of every setting an override may name, in file order.
std::vector<std::string> setting_paths();
// The effective configuration, as YAML that parse_node_config accepts.
std::string to_yaml(const NodeConfig& config);

}  // namespace kvtier::config
