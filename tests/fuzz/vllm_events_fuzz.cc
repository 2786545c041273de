// Fuzz target: vLLM KV-event batches (msgpack, both encodings) as kvtier-indexer receives them from
// engines over ZMQ, i.e. bytes from any process that can reach the socket. The decoder must answer
// every input with a batch or an error Status: no crash, no exception, no unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <span>

#include "server/indexer/vllm_events.h"

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer names the entry point
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto batch = kvtier::indexer::decode_vllm_batch(std::span<const uint8_t>(data, size));
  if (batch.ok()) {
    // What the follower reads of a decoded batch.
    for (const auto& e : batch->events) {
      for (uint64_t h : e.hashes) (void)h;
      (void)kvtier::indexer::holds_prefix(e.spec_kind);
    }
  }
  return 0;
}
