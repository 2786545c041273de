// kvtier::Client: what an engine process links to use the node's cache.
//
// It maps the node's index and host arena (shared memory; no RPC on any call here), computes
// keys, matches prefixes, reads host blocks in place under leases, and puts blocks by writing
// them straight into the arena. Thread-safe. docs/client.md has a walkthrough.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kvtier/block_index.h"
#include "kvtier/block_key.h"
#include "kvtier/hbm_block.h"
#include "kvtier/namespace.h"
#include "kvtier/prefix_chain.h"
#include "kvtier/result.h"

namespace kvtier {

struct ClientOptions {
  std::string node_name;  // the node's segments are <shm_prefix>-<node_name>-{index,host}
  std::string shm_prefix = "kvtier";
  // Embedded use (no daemon): create the segments when they do not exist, with these sizes.
  bool create_if_missing = false;
  uint64_t index_capacity = 1 << 20;
  uint64_t host_bytes = 1ULL << 30;
  uint64_t slab_bytes = 32ULL << 20;  // ≥ the largest block
  // Re-hash sealed blocks when acquiring them; a mismatch drops the block (never served).
  bool verify_reads = false;
  // Ask for transparent huge pages on the arena's data (best effort; see docs/host_tier.md).
  bool huge_pages = false;
  // What schedulers call this engine (its pod IP in Kubernetes, as llm-d names pods): a node that
  // publishes vLLM-format events sends them under it while this process lives. Empty: none.
  // At most 56 bytes, no '@'.
  std::string engine_id;
  // How long a put that finds the arena full waits for a serving daemon to make room (it demotes
  // to SSD) before evicting blocks itself, dropping them. Short: a put is on the engine's path.
  uint32_t room_wait_ms = 20;
};

// The options an engine in a pod gets from its environment (deploy/kustomize/examples/vllm-engine):
// KVTIER_NODE_NAME (required: the node's name, as kvtierd's node.name), KVTIER_SHM_PREFIX
// (default "kvtier"), KVTIER_ENGINE_ID (default none), KVTIER_VERIFY_READS (0/1, default 0).
// `base` supplies everything else. invalid_argument names the variable at fault.
Result<ClientOptions> client_options_from_env(ClientOptions base = {});

// A namespace this client writes and reads, with the node-wide id and arena size class it maps to.
struct NamespaceHandle {
  Namespace ns;
  uint16_t id = 0;
  uint8_t size_class = 0;
};

namespace detail {
// A Client's state: the index and arena mappings. Block views, reservations and loads share it,
// so each stays valid (and its bytes mapped) after the Client that made it is gone.
struct ClientState;
}  // namespace detail

// A host-resident block, readable in place while this object lives (it holds a lease, and the
// lease keeps the arena mapped even after the Client is destroyed).
class HostBlock {
 public:
  HostBlock(HostBlock&&) noexcept = default;
  HostBlock& operator=(HostBlock&&) noexcept = default;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const BlockKey& key() const { return lease_.key(); }

 private:
  friend class Client;
  HostBlock(BlockLease lease, const uint8_t* data, size_t size) : lease_(std::move(lease)), data_(data), size_(size) {}
  BlockLease lease_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class Client;

// Space for one block in the host arena, reserved for this process. Write the bytes through
// data(), then commit(); dropped uncommitted, the space is freed. If the block was already
// cached when reserved, exists() is true, there is nothing to write and commit() is a no-op.
class PutReservation {
 public:
  PutReservation(PutReservation&& other) noexcept;
  PutReservation& operator=(PutReservation&& other) noexcept;
  PutReservation(const PutReservation&) = delete;
  PutReservation& operator=(const PutReservation&) = delete;
  ~PutReservation();

  bool exists() const { return state_ == nullptr; }
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }
  // Publishes the block: afterwards every process sees it. Consumes the reservation (call it on
  // std::move(r)): data() is null afterwards, so nothing keeps writing into a block others read.
  Status commit() &&;

 private:
  friend class Client;
  PutReservation() = default;
  void abandon();
  std::shared_ptr<detail::ClientState> state_;  // null: nothing reserved (the block existed, or consumed)
  BlockRecord record_;
  uint32_t owner_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// SSD blocks the node daemon is bringing up into host memory (Client::load). Waiting is all there
// is to do with it; it holds nothing, so dropping it early wastes nothing.
class BlockLoad {
 public:
  BlockLoad() = default;
  // Blocks asked for (SSD-resident and not in host memory when load() was called).
  size_t size() const { return keys_.size(); }
  const std::vector<BlockKey>& keys() const { return keys_; }
  // Waits until the daemon has handled the request (each block loaded, or found unloadable: it
  // left the SSD tier, or was unreadable there), or the timeout passes. Returns how many of the
  // blocks are in host memory then (under memory pressure a loaded block may already be demoted
  // again); a timeout simply returns the count so far.
  size_t wait(std::chrono::milliseconds timeout);
  // The daemon has handled the request (or there was nothing to load).
  bool done() const;

 private:
  friend class Client;
  std::shared_ptr<detail::ClientState> state_;
  std::vector<BlockKey> keys_;
  uint64_t ticket_ = 0;  // handled once the load queue's handled_through() reaches it
};

// acquire_or_load(): host views of the host-resident prefix, and the load of the SSD-resident
// blocks that continue it.
struct Acquisition {
  std::vector<HostBlock> host;
  BlockLoad load;  // empty when the prefix does not continue on SSD (or no daemon serves loads)
};

struct ClientStats {
  IndexStats index;
  uint64_t host_bytes = 0, host_used_bytes = 0;
  uint64_t puts = 0, put_exists = 0, gets = 0, evictions_for_room = 0;
  uint64_t not_admitted = 0;  // puts the node's admission refused (not_admitted): the engine kept its copy
  uint64_t sealed = 0, corrupt_dropped = 0;
  uint64_t loads_requested = 0;  // blocks asked of the node daemon
  uint64_t room_waits = 0;       // puts that found the arena full and got room from the daemon
  uint64_t tokens_recorded = 0;  // blocks whose token ids went to the node's vLLM event publisher
  // HBM records (hbm_stored/hbm_evicted): recorded for this process, withdrawn by hbm_evicted, and
  // dropped by this process's index writes while the engine may still hold the copy.
  uint64_t hbm_recorded = 0, hbm_withdrawn = 0, hbm_dropped = 0;
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> open(const ClientOptions& options);
  // Removes the node's segments (operators and tests; processes that have them mapped keep them).
  static Status destroy_node(const ClientOptions& options);
  ~Client();

  // Validates the spec and gets its id and arena size class (blocks must fit a slab).
  Result<NamespaceHandle> register_namespace(const NamespaceSpec& spec);
  std::vector<BlockKey> keys(const NamespaceHandle& ns, std::span<const TokenId> tokens) const;

  PrefixMatch match(std::span<const BlockKey> keys) const;
  // Pins the longest prefix resident in host memory and returns in-place views of it.
  Result<std::vector<HostBlock>> acquire(std::span<const BlockKey> keys);
  // Asks the node daemon to bring the SSD-resident blocks of the chain's cached prefix into host
  // memory (asynchronously, batched with other processes' requests). unavailable when no daemon
  // serves this node's SSD tier.
  Result<BlockLoad> load(std::span<const BlockKey> keys);
  // acquire(), and when the cached prefix continues on SSD past the host prefix, load() of it:
  // the engine uses the host blocks now and acquires the rest once the load completes.
  Result<Acquisition> acquire_or_load(std::span<const BlockKey> keys);
  // Copies the host-resident prefix into `out`, blocks back to back, as many whole blocks as fit;
  // returns how many were copied.
  Result<size_t> get_copy(const NamespaceHandle& ns, std::span<const BlockKey> keys, std::span<uint8_t> out);

  // Reserves arena space for `key` (whose predecessor is `parent`, or ns.ns.root() for a first
  // block). When the arena is full it asks a serving daemon for room (up to
  // ClientOptions::room_wait_ms: the daemon demotes to SSD), then evicts by the index's policy
  // itself, dropping blocks.
  // not_admitted when the node's put admission (host.put_admission: by-policy) refuses the block,
  // or refused its parent: the engine keeps its own copy and puts nothing more of this chain.
  // `block_tokens`, when given, are the block's token ids (exactly ns.ns.block_tokens() of them):
  // a node that publishes vLLM-format events sends them with the block (docs/scheduler.md).
  Result<PutReservation> reserve(const NamespaceHandle& ns, const BlockKey& key, const BlockKey& parent,
                                 std::span<const TokenId> block_tokens = {});
  // reserve + copy + commit. `bytes` must be exactly the namespace's block size. not_admitted as reserve.
  Status put(const NamespaceHandle& ns, const BlockKey& key, const BlockKey& parent, std::span<const uint8_t> bytes,
             std::span<const TokenId> block_tokens = {});

  // Records an XXH3-64 checksum for each host-resident block of `keys` that has none yet; what
  // leaves host memory (demotion to SSD, serving to other nodes) is sealed first. Kept off the
  // put path: hashing after the copy would cost ~40% of put bandwidth. Returns blocks sealed.
  Result<size_t> seal(std::span<const BlockKey> keys);
  // The checksum recorded for a host block, or 0.
  uint64_t checksum(const HostBlock& block) const;
  // The checksum recorded for a held block, recording it first if it has none (as seal does):
  // what a block that leaves the node is sent with. Never 0.
  uint64_t sealed_checksum(const HostBlock& block);

  // HBM residency (docs/client.md#hbm-residency): the engine reports blocks it stored in and
  // evicted from its GPU memory, and the node's index, matches, snapshots and events show them in
  // the HBM tier. A block another engine already holds in HBM keeps that holder. The records end
  // when reported evicted, or when this process exits or dies. Each returns the records changed;
  // invalid_argument (nothing recorded) for a block id of 2^24 or more.
  Result<size_t> hbm_stored(const NamespaceHandle& ns, std::span<const HbmBlock> blocks);
  Result<size_t> hbm_evicted(std::span<const HbmBlock> blocks);

  // The host arena's block data as mapped in this process: every HostBlock and PutReservation
  // lies in it. An engine registers it with its GPU runtime once (CudaKvCopierOptions::host_memory
  // in kvtier/paged_kv.h) so GPU copies go straight into the shared arena.
  std::span<uint8_t> host_memory() const;

  // Frees at least `bytes` of host memory by `policy`, dropping the blocks (or leaving them on SSD
  // where they have a copy there) and releasing their arena space. invalid_argument for other
  // tiers: SSD blocks are the node daemon's to evict (Admin.Evict).
  Result<EvictionReport> evict(Tier tier, uint64_t bytes, const EvictionPolicy& policy);
  // Reclaims what dead processes held (pins, reservations). The daemon runs this periodically.
  Status maintain();
  ClientStats stats() const;
  // The node's index, to read (lookups, matches, stats, changes). Writes go through the Client's
  // own calls (reserve/commit, hbm_stored/hbm_evicted, evict), which keep the arena in step.
  const BlockIndex& index() const;

 private:
  friend class PutReservation;
  friend class BlockLoad;
  using Impl = detail::ClientState;
  explicit Client(std::shared_ptr<Impl> impl);
  static Status commit(Impl& impl, PutReservation& r);
  static void abandon(Impl& impl, PutReservation& r);
  std::shared_ptr<Impl> impl_;
};

}  // namespace kvtier
