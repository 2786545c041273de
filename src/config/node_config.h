// NodeConfig: what one kvtierd node is told at start, validated once.
//
// Sources, later ones winning: the embedded default (embedded_default_config()), a YAML file.
// Unknown keys are errors, so a misspelt option never silently keeps its default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
  uint64_t ssd_write_budget_per_s = 0;         // admission: bytes/s cap on SSD writes; 0 = none
  bool ssd_start_empty_if_unreadable = false;  // an unreadable SSD catalogue starts the tier empty

  std::string grpc_address = "127.0.0.1:50551";
  std::string metrics_address = "127.0.0.1:9464";

  // The namespaces (model, adapter, tenant, layout) this node caches blocks for.
  std::vector<NamespaceSpec> namespaces;
  // namespace_ssd_codecs[i]: how namespaces[i]'s blocks are stored on SSD ("none" or "zstd").
  std::vector<std::string> namespace_ssd_codecs;

  // Ranges, addresses and namespaces (each one valid, no duplicates).
  Status validate() const;
};

// YAML text of the configuration kvtierd runs with when given no file.
std::string_view embedded_default_config();

// Parses YAML over the embedded default and validates the result. `source` names the text in errors.
Result<NodeConfig> parse_node_config(std::string_view yaml, std::string_view source);
// Reads and parses a YAML file.
Result<NodeConfig> load_node_config(const std::string& path);
// The effective configuration, as YAML that parse_node_config accepts.
std::string to_yaml(const NodeConfig& config);

}  // namespace kvtier::config
