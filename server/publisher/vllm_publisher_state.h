// What kvtierd's vLLM-format publisher has told consumers (per block: the tiers it was published
// in, its parent, namespace and token ids), and the file a clean stop keeps it in for the next
// start, which withdraws from it what went away meanwhile (docs/scheduler.md, "Never a clear").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/prefix_chain.h"

namespace kvtier::publisher {

// One block as published: what every later BlockStored of it needs, token ids included (Dynamo
// drops a store without them, and a demotion or a re-announcement comes long after the client
// recorded them).
struct PublishedBlock {
  uint64_t parent_lo = 0;
  uint16_t ns = 0;              // the namespace's index id
  uint8_t tiers = 0;            // tier_bit() of each tier published
  std::vector<TokenId> tokens;  // empty: never recorded by a client (or lost before publishing)
};

using PublishedBlocks = std::unordered_map<BlockKey, PublishedBlock>;

struct PublisherState {
  std::vector<std::string> pods;  // published under at the stop
  PublishedBlocks blocks;
};

// Writes the state to `path` (through a temporary file and a rename); false when it cannot.
bool write_publisher_state(const std::string& path, const PublisherState& state);

// Reads the state a clean stop wrote and deletes the file: it is good for one start only (after a
// crash there is none). nullopt when there is none; also, with a warning, when it is not a state
// this version wrote.
std::optional<PublisherState> read_publisher_state(const std::string& path);

}  // namespace kvtier::publisher
