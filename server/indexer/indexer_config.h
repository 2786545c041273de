// kvtier-indexer's configuration: a YAML file (--config), every field optional, overridden by
// the command-line flags of the same names (docs/scheduler.md shows a full file).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/node_scoring.h"
#include "config/grpc_security_config.h"
#include "kvtier/key_profile.h"
#include "kvtier/result.h"

namespace kvtier::indexer {

// A namespace whose engines report their own block hashes: token ids are turned into those
// hashes with its key profile, in a key space of its own.
struct EngineNamespace {
  std::string model_id;
  KeyProfile profile;  // kind, block_tokens, hash_seed (LoRA and cache_salt come per request)
  // vllm_sha256_cbor: each LoRA adapter's path by its name (vLLM hashes an adapter's path with
  // its name, so a request for an adapter scores only with its path known).
  std::map<std::string, std::string> lora_paths;

  // The high half of the index keys of this namespace's hashes (engine_index_key).
  uint64_t key_space() const;
};

// An unmodified vLLM engine publishing KV events (--kv-events-config publisher zmq).
struct VllmEngine {
  std::string name;             // how scores name it
  std::string endpoint;         // its PUB socket, e.g. tcp://10.0.0.5:5557
  std::string replay_endpoint;  // its ROUTER replay socket; empty: gaps are not replayed
  std::string topic;            // vLLM's default is ""
  std::string model_id;         // an engine namespace
};

struct IndexerConfig {
  std::string grpc_address = "127.0.0.1:50560";
  // Prometheus text at /metrics (plain HTTP, like kvtierd's); "" serves none, the default, since
  // a fixed port would collide when several indexers share a host (tests, a laptop).
  std::string metrics_address;
  std::vector<std::string> nodes;
  std::string nodes_file;
  // name:port entries resolved every few seconds, every address a node: in Kubernetes a headless
  // Service over the kvtierd DaemonSet, whose DNS name lists the ready pods (its endpoints).
  std::vector<std::string> nodes_dns;
  std::string namespaces_config;  // a kvtierd configuration: its namespaces
  uint64_t grace_ms = 30000;
  cluster::TierWeights weights;
  std::vector<EngineNamespace> engine_namespaces;
  std::vector<VllmEngine> vllm_engines;
  config::ServerSecurity security;     // allow_insecure, tls, access: the indexer's own port
  config::ClientSecurity node_client;  // how the followers reach the kvtierd nodes

  // Weights in range; engines name a known engine namespace and have unique names; something to follow.
  Status validate() const;
};

Result<IndexerConfig> parse_indexer_config(std::string_view yaml, std::string_view source);
Result<IndexerConfig> load_indexer_config(const std::string& path);

}  // namespace kvtier::indexer
