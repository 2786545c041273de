#include "kvtier/client.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "common/node_segments.h"
#include "common/shared_segment.h"
#include "events/token_ring.h"
#include "index/chain_admission.h"
#include "index/crash_points.h"
#include "index/index_mechanics.h"
#include "kvtier/checksum.h"
#include "load/load_queue.h"
#include "tiers/hbm/hbm_tier_records.h"
#include "tiers/host/host_arena.h"
#include "tiers/host/host_tier_store.h"
#include "tiers/host/index_binding.h"
#include "tiers/tier_releaser.h"

namespace kvtier {
namespace {

std::string index_segment(const ClientOptions& o) { return node_index_segment(o.shm_prefix, o.node_name); }
std::string host_segment(const ClientOptions& o) { return node_host_segment(o.shm_prefix, o.node_name); }

Result<std::unique_ptr<host::HostArena>> open_arena(const ClientOptions& o) {
  auto attached = host::HostArena::attach(host_segment(o));
  if (attached.ok() || attached.status().code() != StatusCode::kNotFound || !o.create_if_missing) return attached;
  auto created = host::HostArena::create({host_segment(o), o.host_bytes, o.slab_bytes});
  if (created.ok() || created.status().code() != StatusCode::kAlreadyExists) return created;
  return host::HostArena::attach(host_segment(o));  // another process created it first
}

}  // namespace

namespace detail {

struct ClientState {
  ClientOptions options;
  BlockIndex index;
  std::shared_ptr<host::HostArena> arena;  // shared with every lease of `index` (tie_to_leases)
  host::HostTierStore host_store;
  hbm::HbmTierRecords hbm_records;  // the engine's HBM copies, as the index records them
  tiers::TierReleaser releaser;     // frees the arena space of blocks this process evicts
  std::atomic<uint64_t> puts{0}, put_exists{0}, gets{0}, evictions_for_room{0}, sealed{0}, corrupt_dropped{0},
      loads_requested{0}, room_waits{0}, tokens_recorded{0}, not_admitted{0};
  index::ChainAdmission admission;  // the node's put admission, for the chains this process writes
  std::mutex loads_mu;
  std::unique_ptr<LoadQueue> loads;  // attached on first use: the daemon creates it

  // The node's load queue, if a daemon serves it.
  Result<LoadQueue*> load_queue() {
    std::lock_guard lock(loads_mu);
    if (!loads) {
      auto q = LoadQueue::attach(node_loads_segment(options.shm_prefix, options.node_name));
      if (!q.ok()) return Status::unavailable("no kvtierd serves this node's SSD tier (no load queue)");
      loads = std::move(q).value();
    }
    if (!loads->served()) return Status::unavailable("no kvtierd serves this node's SSD tier now");
    return loads.get();
  }

  // The node's token ring, while its daemon publishes vLLM-format events. Looked for at most once
  // a second, so a daemon that turns publishing on is noticed without a cost per put.
  std::mutex tokens_mu;
  std::atomic<TokenRing*> tokens{nullptr};
  std::unique_ptr<TokenRing> tokens_owned;
  std::atomic<int64_t> tokens_next_look_ns{0};

  TokenRing* token_ring() {
    if (TokenRing* t = tokens.load(std::memory_order_acquire)) return t;
    const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    if (now < tokens_next_look_ns.load(std::memory_order_relaxed)) return nullptr;
    std::lock_guard lock(tokens_mu);
    if (!tokens_owned) {
      tokens_next_look_ns.store(now + 1'000'000'000, std::memory_order_relaxed);
      auto ring = TokenRing::attach(node_tokens_segment(options.shm_prefix, options.node_name));
      if (!ring.ok()) return nullptr;
      tokens_owned = std::move(ring).value();
      if (!options.engine_id.empty()) {
        if (auto tag = index.owner_tag(); tag.ok()) (void)tokens_owned->register_engine(*tag, options.engine_id);
      }
      tokens.store(tokens_owned.get(), std::memory_order_release);
    }
    return tokens_owned.get();
  }

  ClientState(ClientOptions o, BlockIndex ix, std::unique_ptr<host::HostArena> a)
      : options(std::move(o)),
        index(std::move(ix)),
        arena(std::move(a)),
        host_store(*arena, index),
        hbm_records(index) {
    releaser.serve(Tier::kHost, &host_store);
    releaser.serve(Tier::kHbm, &hbm_records);
    index::IndexMechanics::tie_to_leases(index,
                                         arena);  // block views read the arena: it stays mapped while any lease lives
  }
};

}  // namespace detail

Client::Client(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::open(const ClientOptions& o) {
  if (o.node_name.empty()) return Status::invalid_argument("client node_name must be set");
  if (o.engine_id.size() > TokenRing::kMaxEngineIdBytes || o.engine_id.find('@') != std::string::npos) {
    return Status::invalid_argument(fmt::format("client engine_id '{}' must be at most {} bytes without '@'",
                                                o.engine_id, TokenRing::kMaxEngineIdBytes));
  }
  KVTIER_RETURN_IF_ERROR(SharedSegment::validate_name(index_segment(o)));
  IndexOptions io;
  io.segment_name = index_segment(o);
  io.capacity = o.index_capacity;
  io.node_name = o.node_name;
  auto index = o.create_if_missing ? BlockIndex::open_or_create(io) : BlockIndex::attach(io.segment_name);
  if (!index.ok()) return index.status().with_context("opening the node's index");
  auto arena = open_arena(o);
  if (!arena.ok()) return arena.status().with_context("opening the node's host arena");
  auto impl = std::make_shared<Impl>(o, std::move(index).value(), std::move(arena).value());
  if (impl->index.stats().tier_capacity[tier_index(Tier::kHost)] == 0) {
    KVTIER_RETURN_IF_ERROR(impl->index.set_tier_capacity(Tier::kHost, impl->arena->stats().data_bytes));
  }
  index::IndexMechanics::set_eviction_listener(impl->index, &impl->releaser);
  if (o.huge_pages) (void)impl->arena->advise_huge_pages();  // best effort by design
  if (!o.engine_id.empty()) (void)impl->token_ring();        // names this engine to a publishing node
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Status Client::destroy_node(const ClientOptions& o) {
  const Status a = BlockIndex::destroy(index_segment(o));
  const Status b = host::HostArena::destroy(host_segment(o));
  (void)LoadQueue::destroy(node_loads_segment(o.shm_prefix, o.node_name));  // only a daemon makes these
  (void)TokenRing::destroy(node_tokens_segment(o.shm_prefix, o.node_name));
  return a.ok() ? b : a;
}

Result<NamespaceHandle> Client::register_namespace(const NamespaceSpec& spec) {
  auto ns = Namespace::create(spec);
  if (!ns.ok()) return ns.status();
  auto cls = impl_->arena->size_class(ns->bytes_per_block());
  if (!cls.ok()) return cls.status().with_context(fmt::format("namespace '{}'", spec.model_id));
  const uint16_t id = ns->index_id();
  return NamespaceHandle{std::move(ns).value(), id, *cls};
}

std::vector<BlockKey> Client::keys(const NamespaceHandle& ns, std::span<const TokenId> tokens) const {
  return compute_chain(ns.ns, tokens);
}

PrefixMatch Client::match(std::span<const BlockKey> keys) const { return impl_->index.match_prefix(keys); }

Result<std::vector<HostBlock>> Client::acquire(std::span<const BlockKey> keys) {
  auto leases = impl_->index.acquire(keys);
  if (!leases.ok()) return leases.status();
  std::vector<HostBlock> blocks;
  blocks.reserve(leases->size());
  for (BlockLease& lease : *leases) {
    if (!lease.info().in(Tier::kHost)) break;  // the host-resident prefix ends here
    const uint32_t loc = lease.info().host_loc;
    const size_t size = lease.info().payload_bytes;
    const uint8_t* data = impl_->arena->data(loc);
    if (impl_->options.verify_reads) {
      const uint64_t want = impl_->arena->checksum(loc);
      if (want != 0 && block_checksum(data, size) != want) {
        // Corrupt bytes are never served: drop the host copy (once our pin is gone) and stop the
        // prefix here, as at a miss.
        const BlockKey key = lease.key();
        lease.release();
        if (impl_->index.drop_tier(key, Tier::kHost).ok()) (void)impl_->arena->release_evicted(loc);
        impl_->corrupt_dropped.fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
    blocks.push_back(HostBlock(std::move(lease), data, size));
  }
  impl_->gets.fetch_add(blocks.size(), std::memory_order_relaxed);
  return blocks;  // leases past the host prefix are released here
}

Result<BlockLoad> Client::load(std::span<const BlockKey> keys) {
  BlockLoad load;
  load.state_ = impl_;
  // The cached prefix: every block resident somewhere. Those in SSD only are to be loaded.
  for (const BlockKey& key : keys) {
    auto info = impl_->index.lookup(key);
    if (!info || info->tiers == 0) break;
    if (!info->in(Tier::kHost) && info->in(Tier::kSsd)) load.keys_.push_back(key);
  }
  if (load.keys_.empty()) return load;
  auto queue = impl_->load_queue();
  if (!queue.ok()) return queue.status();
  auto ticket = (*queue)->push(load.keys_);
  if (!ticket.ok()) return ticket.status();
  load.ticket_ = *ticket;
  impl_->loads_requested.fetch_add(load.keys_.size(), std::memory_order_relaxed);
  return load;
}

Result<Acquisition> Client::acquire_or_load(std::span<const BlockKey> keys) {
  Acquisition a;
  auto host = acquire(keys);
  if (!host.ok()) return host.status();
  a.host = std::move(host).value();
  if (a.host.size() < keys.size()) {
    auto load = this->load(keys.subspan(a.host.size()));
    if (load.ok()) {
      a.load = std::move(load).value();
    } else if (load.status().code() != StatusCode::kUnavailable) {
      return load.status();
    }
  }
  return a;
}

bool BlockLoad::done() const {
  if (state_ == nullptr || keys_.empty()) return true;
  auto queue = state_->load_queue();
  // A daemon that went away will never finish it: nothing more is on its way.
  return !queue.ok() || (*queue)->handled_through() >= ticket_;
}

size_t BlockLoad::wait(std::chrono::milliseconds timeout) {
  if (state_ != nullptr && !keys_.empty()) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto queue = state_->load_queue();
    while (!done() && queue.ok()) {
      const uint32_t seen = (*queue)->completions();
      if (done()) break;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      (*queue)->wait_for_completion(seen, std::min(left, std::chrono::milliseconds(50)));
    }
  }
  size_t in_host = 0;
  for (const BlockKey& key : keys_) {
    auto info = state_ ? state_->index.lookup(key) : std::nullopt;
    if (info && info->in(Tier::kHost)) ++in_host;
  }
  return in_host;
}

Result<size_t> Client::get_copy(const NamespaceHandle& ns, std::span<const BlockKey> keys, std::span<uint8_t> out) {
  const size_t block = ns.ns.bytes_per_block();
  const size_t fit = std::min(keys.size(), out.size() / block);
  auto blocks = acquire(keys.first(fit));
  if (!blocks.ok()) return blocks.status();
  for (size_t i = 0; i < blocks->size(); ++i) std::memcpy(out.data() + i * block, (*blocks)[i].data(), block);
  return blocks->size();
}

Result<PutReservation> Client::reserve(const NamespaceHandle& ns, const BlockKey& key, const BlockKey& parent,
                                       std::span<const TokenId> block_tokens) {
  if (!block_tokens.empty() && block_tokens.size() != ns.ns.block_tokens()) {
    return Status::invalid_argument(fmt::format("a block of namespace '{}' has {} tokens, got {}",
                                                ns.ns.spec().model_id, ns.ns.block_tokens(), block_tokens.size()));
  }
  PutReservation r;
  if (auto existing = impl_->index.lookup(key); existing && existing->in(Tier::kHost)) {
    impl_->put_exists.fetch_add(1, std::memory_order_relaxed);
    return r;  // cached already: nothing to write
  }
  if (!impl_->admission.admit(impl_->index, key, parent, Tier::kHost, impl_->arena->used_bytes())) {
    impl_->not_admitted.fetch_add(1, std::memory_order_relaxed);
    return Status::not_admitted(fmt::format(
        "block {} not admitted: the node expects less use of it than of what it would push out (host.put_admission)",
        key.to_hex()));
  }
  // Before the block is committed, so the publisher has the tokens when it sees the block stored.
  if (!block_tokens.empty()) {
    if (TokenRing* ring = impl_->token_ring(); ring != nullptr && ring->record(key, block_tokens)) {
      impl_->tokens_recorded.fetch_add(1, std::memory_order_relaxed);
    }
  }
  auto owner = impl_->index.owner_tag();
  if (!owner.ok()) return owner.status();
  const uint64_t bytes = ns.ns.bytes_per_block();
  auto loc = impl_->arena->reserve(ns.size_class, *owner);
  if (!loc.ok() && loc.status().code() == StatusCode::kResourceExhausted) {
    // Full: a serving daemon demotes to SSD what is worth keeping; give it a moment first.
    if (auto queue = impl_->load_queue(); queue.ok()) {
      const uint32_t seen = (*queue)->room_passes();
      (*queue)->request_room();
      (*queue)->wait_for_room(seen, std::chrono::milliseconds(impl_->options.room_wait_ms));
      loc = impl_->arena->reserve(ns.size_class, *owner);
      if (loc.ok()) impl_->room_waits.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!loc.ok() && loc.status().code() == StatusCode::kResourceExhausted) {
    // Still full (or no daemon serves the node): drop by the node's policy and retry once.
    auto freed = index::IndexMechanics::evict(impl_->index, Tier::kHost, 4 * bytes, *impl_->index.eviction_policy(),
                                              &impl_->releaser);
    if (freed.ok() && freed->bytes_freed > 0) impl_->evictions_for_room.fetch_add(1, std::memory_order_relaxed);
    loc = impl_->arena->reserve(ns.size_class, *owner);
  }
  if (!loc.ok()) return loc.status();
  r.state_ = impl_;
  r.record_ = BlockRecord{key, parent, ns.id, static_cast<uint32_t>(bytes), Tier::kHost, *loc};
  r.owner_ = *owner;
  r.data_ = impl_->arena->data(*loc);
  r.size_ = bytes;
  return r;
}

Status Client::put(const NamespaceHandle& ns, const BlockKey& key, const BlockKey& parent,
                   std::span<const uint8_t> bytes, std::span<const TokenId> block_tokens) {
  if (bytes.size() != ns.ns.bytes_per_block()) {
    return Status::invalid_argument(fmt::format("block for namespace '{}' must be {} bytes, got {}",
                                                ns.ns.spec().model_id, ns.ns.bytes_per_block(), bytes.size()));
  }
  auto r = reserve(ns, key, parent, block_tokens);
  if (!r.ok()) return r.status();
  if (r->exists()) return {};
  std::memcpy(r->data(), bytes.data(), bytes.size());
  return std::move(*r).commit();
}

// Publish in the index first, then commit in the arena: a process killed between the two leaves
// a reservation the index references, which maintain() adopts instead of freeing.
Status Client::commit(Impl& impl, PutReservation& r) {
  const auto loc = static_cast<uint32_t>(r.record_.locator);
  Status published = impl.index.insert(r.record_);
  if (published.code() == StatusCode::kAlreadyExists) {  // another process put it first
    (void)impl.arena->release(loc);
    impl.put_exists.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  if (!published.ok()) {
    (void)impl.arena->release(loc);
    return published;
  }
  index::crash_point("client-published");
  KVTIER_RETURN_IF_ERROR(impl.arena->commit(loc, r.owner_));
  impl.puts.fetch_add(1, std::memory_order_relaxed);
  return {};
}

void Client::abandon(Impl& impl, PutReservation& r) {
  (void)impl.arena->release(static_cast<uint32_t>(r.record_.locator));
}

Result<size_t> Client::hbm_stored(const NamespaceHandle& ns, std::span<const HbmBlock> blocks) {
  auto tag = impl_->index.owner_tag();  // joins the process table: the records are this process's
  if (!tag.ok()) return tag.status();
  return impl_->hbm_records.record_stored(BlockIndex::owner_slot(*tag), ns.id,
                                          static_cast<uint32_t>(ns.ns.bytes_per_block()), blocks);
}

Result<size_t> Client::hbm_evicted(std::span<const HbmBlock> blocks) {
  auto tag = impl_->index.owner_tag();
  if (!tag.ok()) return tag.status();
  return impl_->hbm_records.record_evicted(BlockIndex::owner_slot(*tag), blocks);
}

Result<size_t> Client::seal(std::span<const BlockKey> keys) {
  auto blocks = acquire(keys);
  if (!blocks.ok()) return blocks.status();
  size_t sealed = 0;
  for (const HostBlock& b : *blocks) {
    const uint32_t loc = b.lease_.info().host_loc;
    if (impl_->arena->checksum(loc) != 0) continue;
    impl_->arena->set_checksum(loc, block_checksum(b.data(), b.size()));
    ++sealed;
  }
  impl_->sealed.fetch_add(sealed, std::memory_order_relaxed);
  return sealed;
}

std::span<uint8_t> Client::host_memory() const { return impl_->arena->data_region(); }

uint64_t Client::checksum(const HostBlock& block) const { return impl_->arena->checksum(block.lease_.info().host_loc); }

uint64_t Client::sealed_checksum(const HostBlock& block) {
  const uint32_t loc = block.lease_.info().host_loc;
  if (const uint64_t recorded = impl_->arena->checksum(loc); recorded != 0) return recorded;
  // Two sealers of one block store the same value: the bytes are immutable while pinned.
  const uint64_t sum = block_checksum(block.data(), block.size());
  impl_->arena->set_checksum(loc, sum);
  impl_->sealed.fetch_add(1, std::memory_order_relaxed);
  return sum;
}

Result<EvictionReport> Client::evict(Tier tier, uint64_t bytes, const EvictionPolicy& policy) {
  if (tier != Tier::kHost) {
    return Status::invalid_argument(fmt::format(
        "an engine frees host memory only; {} blocks are the node daemon's to evict (Admin.Evict)", tier_name(tier)));
  }
  return index::IndexMechanics::evict(impl_->index, tier, bytes, policy, &impl_->releaser);
}

Status Client::maintain() {
  if (!impl_->options.engine_id.empty()) (void)impl_->token_ring();  // a node that started publishing since
  return host::maintain_index_and_arena(impl_->index, *impl_->arena);
}

ClientStats Client::stats() const {
  ClientStats s;
  s.index = impl_->index.stats();
  const host::ArenaStats a = impl_->arena->stats();
  s.host_bytes = a.data_bytes;
  s.host_used_bytes = a.used_bytes;
  s.puts = impl_->puts.load(std::memory_order_relaxed);
  s.put_exists = impl_->put_exists.load(std::memory_order_relaxed);
  s.not_admitted = impl_->not_admitted.load(std::memory_order_relaxed);
  s.gets = impl_->gets.load(std::memory_order_relaxed);
  s.evictions_for_room = impl_->evictions_for_room.load(std::memory_order_relaxed);
  s.sealed = impl_->sealed.load(std::memory_order_relaxed);
  s.corrupt_dropped = impl_->corrupt_dropped.load(std::memory_order_relaxed);
  const hbm::HbmRecordStats h = impl_->hbm_records.stats();
  s.hbm_recorded = h.recorded;
  s.hbm_withdrawn = h.evicted;
  s.hbm_dropped = h.dropped;
  s.loads_requested = impl_->loads_requested.load(std::memory_order_relaxed);
  s.room_waits = impl_->room_waits.load(std::memory_order_relaxed);
  s.tokens_recorded = impl_->tokens_recorded.load(std::memory_order_relaxed);
  return s;
}

const BlockIndex& Client::index() const { return impl_->index; }

PutReservation::PutReservation(PutReservation&& other) noexcept
    : state_(std::move(other.state_)),
      record_(other.record_),
      owner_(other.owner_),
      data_(other.data_),
      size_(other.size_) {}

PutReservation& PutReservation::operator=(PutReservation&& other) noexcept {
  if (this != &other) {
    abandon();
    state_ = std::move(other.state_);
    record_ = other.record_;
    owner_ = other.owner_;
    data_ = other.data_;
    size_ = other.size_;
  }
  return *this;
}

PutReservation::~PutReservation() { abandon(); }

void PutReservation::abandon() {
  if (const auto state = std::exchange(state_, nullptr)) Client::abandon(*state, *this);
}

Status PutReservation::commit() && {
  data_ = nullptr;  // the block is the readers' from here on
  size_ = 0;
  const auto state = std::exchange(state_, nullptr);
  if (state == nullptr) return {};  // the block existed already, or this was committed
  return Client::commit(*state, *this);
}

}  // namespace kvtier
