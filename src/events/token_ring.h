// TokenRing: the token ids of recently stored blocks, and the ids the node's engines publish as,
// for the node's vLLM-format event publisher.
//
// kvtier keys are hashes: the node cannot tell a block's tokens from its key, yet llm-d's
// precise prefix-cache scorer computes its own keys from the token ids a BlockStored event
// carries. Engines know the tokens when they store a block, so the client library writes them
// here (before the block is committed) and the publisher picks them up when it sees the block
// stored. A small shared-memory segment (<prefix>-<node>-tokens) that the daemon creates only
// while its publisher is on; clients that find none record nothing.
//
// Writers never lock: a ticket from one fetch_add names the slot, a seqlock word marks it being
// written, and a checksum over the record catches the rare torn one (a writer stopped so long
// that the ring lapped it). A writer killed mid-record leaves one slot that never completes; the
// reader skips it after a while. Nothing is held, so nothing is left held.
//
// Engine ids: llm-d scores engine pods, so the publisher sends each batch under the topic of
// every engine on the node (kv@<engine id>@<model>). An engine names itself (ClientOptions::
// engine_id, e.g. its pod IP) in the table entry of its index process slot; the entry counts only
// while that slot's owner lives, so a dead engine drops out with no cleanup.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/prefix_chain.h"
#include "kvtier/result.h"

namespace kvtier {

class SharedSegment;

struct TokenRecord {
  BlockKey key;
  std::vector<TokenId> tokens;
};

class TokenRing {
 public:
  struct Geometry {
    uint32_t records = 1U << 16;  // a power of two
    uint32_t max_tokens = 256;    // token ids one record holds
  };
  // The daemon: attaches to the ring a previous run left if it has the same geometry, otherwise
  // makes a new one.
  static Result<std::unique_ptr<TokenRing>> open_or_create(const std::string& name, Geometry geometry);
  // Engine processes; not_found when the node publishes no vLLM events.
  static Result<std::unique_ptr<TokenRing>> attach(const std::string& name);
  static Status destroy(const std::string& name);
  ~TokenRing();
  TokenRing(const TokenRing&) = delete;
  TokenRing& operator=(const TokenRing&) = delete;

  Geometry geometry() const;

  // --- writers (any process) ---
  // Records `key`'s tokens. False when there are more than max_tokens (nothing written), or when
  // the ring lapped this writer before it finished (the record is lost).
  bool record(const BlockKey& key, std::span<const TokenId> tokens);

  static constexpr size_t kMaxEngineIdBytes = 56;
  static constexpr uint32_t kEngineSlots = 32;  // one per index process slot
  // Names the engine holding index owner tag `owner_tag` (BlockIndex::owner_tag()); false when the
  // id is empty, too long or contains '@' (topics separate pod and model with it).
  bool register_engine(uint32_t owner_tag, std::string_view engine_id);
  // Every registered entry: (owner tag, id). The caller keeps those whose owner is alive.
  std::vector<std::pair<uint32_t, std::string>> engines() const;

  // --- the reader (the daemon's publisher) ---
  enum class Read : uint8_t {
    kRecord,   // *out holds the ticket's record
    kPending,  // not written yet, or being written
    kLost,     // overwritten by a later ticket, or torn
  };
  // The next ticket a writer takes: tickets below it have been handed out.
  uint64_t head() const;
  Read read(uint64_t ticket, TokenRecord* out) const;

 private:
  explicit TokenRing(std::unique_ptr<SharedSegment> seg);
  std::unique_ptr<SharedSegment> seg_;
};

}  // namespace kvtier
