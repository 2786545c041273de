// Request traces in the Mooncake FAST'25 format (../shared/traces/SOURCE.md): JSONL, one request
// per line, {"timestamp": ms, "input_length": tokens, "output_length": tokens, "hash_ids": [...]},
// where hash_ids[i] names the prompt's i-th block of kTraceBlockTokens tokens together with every
// block before it (a prefix chain), one id per block, the last one possibly partial.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/result.h"

namespace kvtier::workload {

inline constexpr uint32_t kTraceBlockTokens = 512;

struct TraceRequest {
  uint64_t timestamp_ms = 0;
  uint32_t input_length = 0;
  uint32_t output_length = 0;
  std::vector<uint64_t> hash_ids;

  friend bool operator==(const TraceRequest&, const TraceRequest&) = default;
};

// One line; unknown keys are ignored, a missing or mistyped field is an error, and so is a
// hash_ids list that does not have one id per started block of input_length.
Result<TraceRequest> parse_trace_line(std::string_view line);
std::string format_trace_line(const TraceRequest& r);

// The kvtier key a trace's hash id stands for: ids name prefix chains already, so the key is the
// id spread over both halves, as a digest would be. The simulator and the replay agree on it.
BlockKey trace_block_key(uint64_t hash_id);

// Every request of a file, in file order; errors name the file and line.
Result<std::vector<TraceRequest>> read_trace(const std::string& path);
Status write_trace(const std::string& path, std::span<const TraceRequest> requests);

// What an infinite cache would hit: a block counts when it and every block before it appeared in
// an earlier request (SOURCE.md's "ideal hit"). Blocks and tokens.
struct TraceStats {
  uint64_t requests = 0, block_refs = 0, unique_ids = 0, input_tokens = 0;
  uint64_t ideal_hit_blocks = 0, ideal_hit_tokens = 0;
  double ideal_block_hit() const { return block_refs == 0 ? 0 : double(ideal_hit_blocks) / double(block_refs); }
  double ideal_token_hit() const { return input_tokens == 0 ? 0 : double(ideal_hit_tokens) / double(input_tokens); }
};
TraceStats trace_stats(std::span<const TraceRequest> requests);

}  // namespace kvtier::workload
