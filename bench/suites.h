// The kvtier-bench suites. Each prints a table and, with --json, one JSON object as its last line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvtier/block_index.h"
#include "kvtier/eviction_policy.h"
#include "tiers/ssd/admission_filter.h"
#include "workload/synthetic_workload.h"

namespace kvtier::bench {

struct SuiteOptions {
  bool quick = false;  // shorter runs for CI and smoke tests; same figures, wider error
  bool json = false;   // end with the JSON line
};

// Prefix-chain computation throughput against memcpy (issue: foundation).
int run_keys_suite(const SuiteOptions& options);
// Shared-memory index lookups against unordered_map+mutex and Redis (issue: block index).
int run_index_suite(const SuiteOptions& options);
// Host tier through the client: put, get_copy, acquire+release vs memcpy (issue: host tier).
int run_host_suite(const SuiteOptions& options);
// SSD tier write/read vs fio, warm restart after SIGKILL, zstd on KV data (issue: SSD tier).
int run_ssd_suite(const SuiteOptions& options);
// kvtierd's gRPC services under load: MatchPrefix QPS and latency, GetBlocks vs loopback TCP,
// event streaming to 1 and 8 subscribers (issue: node daemon).
int run_server_suite(const SuiteOptions& options);
// Remote reads over UCX out of a node's arena vs ucx_perftest's ucp_get on the same transport,
// gRPC GetBlocks and loopback TCP; the lease RPC's latency (issue: RDMA data plane).
int run_transport_suite(const SuiteOptions& options);
// kvtier-indexer: event ingestion from 16 simulated nodes, ScoreNodes p99 for a 128k-token prompt
// across 64 nodes, and the same scoring against Redis (issue: scheduler side).
int run_indexer_suite(const SuiteOptions& options);
// The CUDA copy path: paged-KV offload/onboard vs cudaMemcpy of one contiguous buffer (issue:
// engine integration). Says it is skipped without a CUDA build or a GPU.
int run_hbm_suite(const SuiteOptions& options);

// Not a suite: writes the synthetic workload as a trace (or describes a trace) with its reuse.
struct WorkloadCommandOptions {
  std::string out;     // write the trace here (empty: only describe it)
  std::string trace;   // describe this trace instead of generating one
  std::string family;  // a synthetic_family preset; its other options stay as given
  workload::SyntheticOptions synthetic;
};
int run_workload_command(const WorkloadCommandOptions& options);

// Not a suite: the eviction-policy study over a trace (docs/benchmarks.md, "Policy study").
struct PolicyCommandOptions {
  std::vector<std::string> traces;    // Mooncake-format files
  std::vector<std::string> families;  // synthetic families; none and no trace: "mixed"
  uint32_t family_requests = 16000;   // requests per synthetic family (Mooncake's conversation trace: 12031)
  std::vector<uint64_t> host_blocks{2000, 6000, 20000};  // 1M, 3M and 10M tokens
  std::vector<std::string> policies{"lru", "prefix-aware", "s3fifo", "prefix-frequency", "hit-density"};
  std::string default_policy{kDefaultEvictionPolicy};
  std::string put_admission{put_admission_name(kDefaultPutAdmission)};  // host.put_admission in every run
  uint64_t ssd_multiple = 4;  // the two-tier runs' SSD capacity, in host capacities
  std::string report_dir;  // write policy.md, its data and its plots (gnuplot) here; one folder per trace when several
  bool json = false;
};
int run_policy_command(const PolicyCommandOptions& options);

// Not a suite: a trace through the client library against a live kvtierd (docs/benchmarks.md,
// "Replay"). The TTFT model's defaults: Llama-3-8B in bf16 (128 KiB of KV per token) prefilled at
// 10,000 tokens/s on one H100; host memory reaches the GPU at 25 GB/s, the SSD at 6 GB/s.
struct ReplayCommandOptions {
  std::string trace;                           // empty: the synthetic workload's `family`
  std::string family = "mixed";                // a synthetic_family preset, when no trace is given
  std::string policy{kDefaultEvictionPolicy};  // the node's host.eviction_policy
  std::string put_admission{put_admission_name(kDefaultPutAdmission)};  // the node's host.put_admission
  uint64_t requests = 0;                                                // 0: all
  uint64_t host_tokens = 1024000;                                       // 2,000 blocks of 512 tokens
  uint64_t ssd_tokens = 4096000;                                        // 0: no SSD tier
  uint32_t ssd_min_accesses = 1;                                        // the SSD tier's admission filter
  uint32_t ssd_ancestor_hops = ssd::AdmissionOptions{}.ancestor_hops;   // ... or a near ancestor's uses
  double prefill_tokens_per_s = 10000;
  double kv_bytes_per_token = 131072;
  double host_gb_per_s = 25;
  double ssd_gb_per_s = 6;
  bool json = false;
};
int run_replay_command(const ReplayCommandOptions& options);

// Not a suite: kvtierd under mixed load for a while, watched for leaks (docs/benchmarks.md, "Soak").
struct SoakCommandOptions {
  double minutes = 1;
  bool json = false;
  std::string samples_file;  // every sample as tab-separated values, for plotting ("" = none)
};
int run_soak_command(const SoakCommandOptions& options);
// The soak's engine processes (`kvtier-bench soak-engine`, started by the soak, killed by it).
struct SoakEngineOptions {
  std::string node;
  int parent = 0;  // the soak's pid: names its counters
  uint32_t seed = 1;
};
int run_soak_engine(const SoakEngineOptions& options);

}  // namespace kvtier::bench
