#include "server/publisher/vllm_event_publisher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>
#include <variant>
#include <zmq.hpp>

#include "server/publisher/vllm_publisher_state.h"
#include "server/publisher/vllm_replay_buffer.h"

namespace kvtier::publisher {
namespace {

// A token record still being written this long after its ticket was handed out belongs to a
// writer that died mid-record (or was stopped): it is skipped.
constexpr auto kPendingRecordPatience = std::chrono::seconds(2);

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The tiers kvtier has, in the order a change's events go out: gains before losses, so a block
// moving between tiers is never shown held nowhere.
constexpr Tier kTierOrder[] = {Tier::kHbm, Tier::kHost, Tier::kSsd};

// Hashes per BlockRemoved event when the publisher withdraws many blocks at once.
constexpr size_t kRemovedHashesPerEvent = 1024;

// A block as it is to be announced.
struct Held {
  BlockKey key;
  PublishedBlock p;
};

// Parents before children, so a consumer never sees a block whose parent it does not know
// (llm-d drops such a BlockStored). Orders by depth in the set; a parent outside it counts as a root.
void order_roots_first(std::vector<Held>& blocks) {
  const size_t n = blocks.size();
  std::unordered_map<uint64_t, size_t> by_lo;
  by_lo.reserve(n);
  for (size_t i = 0; i < n; ++i) by_lo.emplace(blocks[i].key.lo, i);
  constexpr uint32_t kUnknown = ~uint32_t{0};
  std::vector<uint32_t> depth(n, kUnknown);
  std::vector<size_t> path;
  for (size_t i = 0; i < n; ++i) {
    // Walk up to a block whose depth is known (or a root), then number the path on the way down.
    size_t at = i;
    uint32_t base = 0;
    while (depth[at] == kUnknown && path.size() <= n) {
      path.push_back(at);
      auto parent = by_lo.find(blocks[at].p.parent_lo);
      if (parent == by_lo.end() || parent->second == at) break;
      at = parent->second;
    }
    if (depth[at] != kUnknown) base = depth[at] + 1;
    std::reverse(path.begin(), path.end());  // the top of the walk first
    for (const size_t on_path : path) depth[on_path] = base++;
    path.clear();
  }
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return depth[a] < depth[b]; });
  std::vector<Held> sorted;
  sorted.reserve(n);
  for (size_t i : order) sorted.push_back(blocks[i]);
  blocks = std::move(sorted);
}

}  // namespace

struct VllmEventPublisher::Impl {
  events::EventLog& log;
  BlockIndex& index;
  VllmPublisherOptions options;
  std::unordered_map<uint16_t, Namespace> namespaces;  // by index id
  std::vector<std::string> pods;                       // published under now
  std::unique_ptr<TokenRing> ring;
  zmq::context_t ctx{1};
  zmq::socket_t pub{ctx, zmq::socket_type::pub};
  std::atomic<bool> stopping{false};
  std::thread thread;

  mutable std::mutex mu;  // guards stats
  VllmPublisherStats stats;

  // The publishing thread's own state.
  uint64_t seq = 0;
  uint64_t cursor = 0;  // next event-log seq
  uint64_t token_cursor = 0;
  std::deque<std::pair<uint64_t, Clock::time_point>> pending_tickets;
  std::unordered_map<BlockKey, std::vector<TokenId>> tokens;  // recorded, not yet sent
  std::deque<std::pair<uint64_t, BlockKey>> token_order;      // (ticket, key), oldest first
  VllmReplayBuffer replay;                                    // sent messages, for subscribers that missed some
  // What the stream has told consumers the node holds (published tiers only). Removals, resyncs
  // and pods that leave are computed from it: the publisher withdraws its own blocks with
  // BlockRemoved and never sends AllBlocksCleared, which llm-d and Dynamo apply to the engine's
  // own GPU entries as well.
  PublishedBlocks published;

  Impl(events::EventLog& l, BlockIndex& ix, VllmPublisherOptions o)
      : log(l), index(ix), options(std::move(o)), replay(options.replay_batches) {}

  template <typename F>
  void count(F&& f) {
    std::lock_guard lock(mu);
    f(stats);
  }

  // --- token ids --------------------------------------------------------------------------
  void keep_tokens(uint64_t ticket, TokenRecord&& r) {
    tokens[r.key] = std::move(r.tokens);
    token_order.emplace_back(ticket, r.key);
    // Bounded by the ring: a record older than that is never asked for (its block was stored
    // and published long ago, or never committed).
    while (token_order.size() > options.token_ring.records) {
      tokens.erase(token_order.front().second);
      token_order.pop_front();
    }
  }

  // Reads every token record written so far. Called after the events it must cover were read:
  // a client writes the record before it commits the block, so the block's record is complete.
  void drain_tokens() {
    if (!ring) return;
    const auto now = clock_or_steady(options.clock).now();
    uint64_t lost = 0;
    TokenRecord rec;
    for (size_t n = pending_tickets.size(); n > 0; --n) {
      auto [ticket, since] = pending_tickets.front();
      pending_tickets.pop_front();
      switch (ring->read(ticket, &rec)) {
        case TokenRing::Read::kRecord: keep_tokens(ticket, std::move(rec)); break;
        case TokenRing::Read::kPending:
          if (now - since < kPendingRecordPatience) {
            pending_tickets.emplace_back(ticket, since);
          } else {
            ++lost;
          }
          break;
        case TokenRing::Read::kLost: ++lost; break;
      }
    }
    const uint64_t head = ring->head();
    const uint64_t records = ring->geometry().records;
    if (head - token_cursor > records) {  // lapped while this thread was away
      lost += head - records - token_cursor;
      token_cursor = head - records;
    }
    for (; token_cursor < head; ++token_cursor) {
      switch (ring->read(token_cursor, &rec)) {
        case TokenRing::Read::kRecord: keep_tokens(token_cursor, std::move(rec)); break;
        case TokenRing::Read::kPending: pending_tickets.emplace_back(token_cursor, now); break;
        case TokenRing::Read::kLost: ++lost; break;
      }
    }
    if (lost > 0) count([&](VllmPublisherStats& s) { s.tokens_lost += lost; });
  }

  std::vector<TokenId> take_tokens(const BlockKey& key) {
    auto it = tokens.find(key);
    if (it == tokens.end()) return {};
    std::vector<TokenId> out = std::move(it->second);
    tokens.erase(it);  // its token_order entry finds nothing when it ages out
    return out;
  }

  // --- publishing -------------------------------------------------------------------------
  // The pods to publish under now: configured ones and live engines that named themselves.
  std::vector<std::string> current_pods() const {
    std::vector<std::string> out = options.pod_ids;
    if (ring) {
      for (auto& [tag, id] : ring->engines()) {
        if (index.owner_alive(tag) && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(std::move(id));
      }
    }
    if (out.empty()) out.push_back(options.fallback_pod);
    return out;
  }

  // Follows engines coming and going. One that appears is told what the node holds (as the other
  // pods were, so every topic says the same); one that leaves has the node's blocks withdrawn from
  // its topic, so a consumer does not route to a dead engine for them.
  void refresh_pods() {
    std::vector<std::string> now = current_pods();
    if (now == pods) return;
    std::vector<std::string> fresh, gone;
    for (const std::string& p : now) {
      if (std::find(pods.begin(), pods.end(), p) == pods.end()) fresh.push_back(p);
    }
    for (const std::string& p : pods) {
      if (std::find(now.begin(), now.end(), p) == now.end()) gone.push_back(p);
    }
    pods = std::move(now);
    count([&](VllmPublisherStats& s) { s.pods = pods; });
    if (!fresh.empty()) {
      std::vector<Held> all = published_blocks();
      order_roots_first(all);
      announce(all, fresh);
    }
    if (!gone.empty()) withdraw(published_blocks(), gone);
  }

  void send(uint16_t ns_id, VllmBatchWriter& writer, const std::vector<std::string>& to) {
    if (writer.events() == 0) return;
    const uint64_t n = writer.events();
    auto payload = std::make_shared<const std::string>(writer.finish(now_seconds()));
    const std::string& model = namespaces.at(ns_id).spec().model_id;
    for (const std::string& pod : to) {
      const std::string topic = fmt::format("kv@{}@{}", pod, model);
      const uint64_t s = seq++;
      pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(seq_bytes(s)), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(*payload), zmq::send_flags::none);
      replay.record(s, std::make_shared<const std::string>(topic), payload);
    }
    count([&](VllmPublisherStats& st) {
      st.messages += to.size();
      st.events += n;
      st.next_seq = seq;
    });
  }

  std::optional<uint64_t> parent_hash(const Namespace& ns, uint64_t parent_lo) const {
    if (parent_lo == ns.root().lo) return std::nullopt;  // a first block
    return parent_lo;
  }

  uint8_t publishable(uint8_t tiers) const { return options.publish_hbm ? tiers : tiers & ~tier_bit(Tier::kHbm); }

  VllmStored stored_event(const BlockKey& key, const PublishedBlock& p, Tier tier,
                          std::vector<TokenId> block_tokens) const {
    const Namespace& ns = namespaces.at(p.ns);
    return {{key.lo}, parent_hash(ns, p.parent_lo), std::move(block_tokens), ns.block_tokens(),
            tier,     ns.spec().adapter_id,         ns.spec().cache_salt};
  }

  // The node's resident blocks of published namespaces, in their published tiers.
  std::vector<Held> held_now() {
    std::vector<Held> out;
    uint64_t unknown = 0;
    index.for_each_block([&](const BlockInfo& b) {
      if (namespaces.count(b.namespace_id) == 0) {
        ++unknown;
        return;
      }
      const uint8_t tiers = publishable(b.tiers);
      if (tiers != 0) out.push_back({b.key, {b.parent_lo, b.namespace_id, tiers, {}}});
    });
    count([&](VllmPublisherStats& s) { s.unknown_namespace += unknown; });
    return out;
  }

  std::vector<Held> published_blocks() const {
    std::vector<Held> out;
    out.reserve(published.size());
    for (const auto& [key, p] : published) out.push_back({key, p});
    return out;
  }

  // A BlockStored per block and tier, each with the block's token ids when known, to `to`, in
  // the blocks' order.
  void announce(const std::vector<Held>& blocks, const std::vector<std::string>& to) {
    std::unordered_map<uint16_t, VllmBatchWriter> writers;
    uint64_t stored = 0, with = 0;
    for (const Held& h : blocks) {
      VllmBatchWriter& w = writers.try_emplace(h.p.ns, options.encoding, options.media).first->second;
      for (Tier t : kTierOrder) {
        if ((h.p.tiers & tier_bit(t)) == 0) continue;
        with += h.p.tokens.empty() ? 0 : 1;
        w.stored(stored_event(h.key, h.p, t, h.p.tokens));
        ++stored;
        if (w.events() >= options.max_batch_events) send(h.p.ns, w, to);
      }
    }
    for (auto& [id, w] : writers) send(id, w, to);
    count([&](VllmPublisherStats& s) {
      s.blocks_stored += stored;
      s.with_tokens += with;
      s.without_tokens += stored - with;
    });
  }

  // BlockRemoved for each block's listed tiers, to `to`.
  void withdraw(const std::vector<Held>& blocks, const std::vector<std::string>& to) {
    std::map<std::pair<uint16_t, Tier>, std::vector<uint64_t>> hashes;
    uint64_t removed = 0;
    for (const Held& h : blocks) {
      for (Tier t : kTierOrder) {
        if ((h.p.tiers & tier_bit(t)) == 0) continue;
        hashes[{h.p.ns, t}].push_back(h.key.lo);
        ++removed;
      }
    }
    for (auto& [where, list] : hashes) {
      VllmBatchWriter w(options.encoding, options.media);
      for (size_t i = 0; i < list.size(); i += kRemovedHashesPerEvent) {
        const size_t end = std::min(list.size(), i + kRemovedHashesPerEvent);
        w.removed({std::vector<uint64_t>(list.begin() + static_cast<ptrdiff_t>(i),
                                         list.begin() + static_cast<ptrdiff_t>(end)),
                   where.second});
        if (w.events() >= options.max_batch_events) send(where.first, w, to);
      }
      send(where.first, w, to);
    }
    count([&](VllmPublisherStats& s) {
      s.blocks_removed += removed;
      s.withdrawn += removed;
    });
  }

  // Brings every pod's view to the node's content: re-announces every resident block (root
  // first), then withdraws what was published and is no longer held, and publishes events from
  // this point of the log on. On start (after what a previous run left) and when the log lost events.
  void resync() {
    const uint64_t as_of = log.next_seq();
    drain_tokens();
    std::vector<Held> now = held_now();
    for (Held& h : now) {  // the tokens published before, or the client's record
      auto before = published.find(h.key);
      h.p.tokens = before != published.end() && !before->second.tokens.empty() ? std::move(before->second.tokens)
                                                                               : take_tokens(h.key);
    }
    order_roots_first(now);
    announce(now, pods);
    PublishedBlocks next;
    next.reserve(now.size());
    for (const Held& h : now) next.emplace(h.key, h.p);
    std::vector<Held> gone;
    for (const auto& [key, p] : published) {
      auto it = next.find(key);
      const uint8_t lost = p.tiers & ~(it == next.end() ? uint8_t{0} : it->second.tiers);
      if (lost != 0) gone.push_back({key, {p.parent_lo, p.ns, lost, {}}});
    }
    withdraw(gone, pods);
    published = std::move(next);
    cursor = as_of;
    count([](VllmPublisherStats& s) { ++s.snapshots; });
  }

  // --- the state a clean stop leaves for the next start --------------------------------------
  void write_state() const {
    if (options.state_file.empty()) return;
    if (!write_publisher_state(options.state_file, {pods, published})) {
      spdlog::warn("kvtierd: vLLM publisher: cannot write {}; the next start cannot withdraw blocks gone meanwhile",
                   options.state_file);
    }
  }

  // Loads a clean stop's state into `pods` and `published`; false when there is none.
  bool read_state() {
    if (options.state_file.empty()) return false;
    std::optional<PublisherState> state = read_publisher_state(options.state_file);
    if (!state) return false;
    pods = std::move(state->pods);
    published.clear();
    for (auto& [key, block] : state->blocks) {
      if (namespaces.count(block.ns) != 0) published.emplace(key, std::move(block));  // others have no topic now
    }
    return true;
  }

  // One namespace's events of a read, merged as vLLM sends them: consecutive stores of a chain
  // in one tier become one BlockStored, consecutive removals in one tier one BlockRemoved.
  struct Pending {
    std::vector<std::variant<VllmStored, VllmRemoved>> events;
    uint64_t last_stored_hash = 0;
  };

  void add_stored(Pending& p, VllmStored&& e) {
    if (!p.events.empty()) {
      if (auto* last = std::get_if<VllmStored>(&p.events.back()); last != nullptr && last->tier == e.tier &&
                                                                  e.parent == p.last_stored_hash &&
                                                                  last->tokens.empty() == e.tokens.empty()) {
        last->hashes.push_back(e.hashes[0]);
        last->tokens.insert(last->tokens.end(), e.tokens.begin(), e.tokens.end());
        p.last_stored_hash = e.hashes[0];
        return;
      }
    }
    p.last_stored_hash = e.hashes[0];
    p.events.emplace_back(std::move(e));
  }

  void add_removed(Pending& p, uint64_t hash, Tier tier) {
    if (!p.events.empty()) {
      if (auto* last = std::get_if<VllmRemoved>(&p.events.back()); last != nullptr && last->tier == tier) {
        last->hashes.push_back(hash);
        return;
      }
    }
    p.events.emplace_back(VllmRemoved{{hash}, tier});
  }

  void publish_events(const std::vector<events::Event>& evs) {
    std::unordered_map<uint16_t, Pending> by_ns;
    std::vector<uint16_t> order;  // namespaces in the order their first event came
    uint64_t stored = 0, removed = 0, with = 0, without = 0, unknown = 0;
    for (const events::Event& e : evs) {
      auto ns = namespaces.find(e.namespace_id);
      if (ns == namespaces.end()) {
        ++unknown;
        continue;
      }
      auto [it, fresh] = by_ns.try_emplace(e.namespace_id);
      if (fresh) order.push_back(e.namespace_id);
      Pending& p = it->second;
      const uint8_t gained = publishable(e.tiers_after & ~e.tiers_before);
      const uint8_t lost = publishable(e.tiers_before & ~e.tiers_after);
      if (gained != 0) {
        PublishedBlock& pub_state = published[e.key];
        pub_state.parent_lo = e.parent_lo;
        pub_state.ns = e.namespace_id;
        if (std::vector<TokenId> recorded = take_tokens(e.key); !recorded.empty())
          pub_state.tokens = std::move(recorded);
        for (Tier t : kTierOrder) {
          if ((gained & tier_bit(t)) == 0) continue;
          pub_state.tiers |= tier_bit(t);
          VllmStored s = stored_event(e.key, pub_state, t, pub_state.tokens);
          (s.tokens.empty() ? without : with) += 1;
          ++stored;
          add_stored(p, std::move(s));
        }
      }
      if (lost != 0) {
        // Only what was published is withdrawn (a block stored before a resync's snapshot and
        // removed since was never announced).
        auto pub_state = published.find(e.key);
        if (pub_state == published.end()) continue;
        for (Tier t : kTierOrder) {
          if ((lost & pub_state->second.tiers & tier_bit(t)) == 0) continue;
          pub_state->second.tiers &= ~tier_bit(t);
          ++removed;
          add_removed(p, e.key.lo, t);
        }
        if (pub_state->second.tiers == 0) published.erase(pub_state);
      }
    }
    for (uint16_t id : order) {
      VllmBatchWriter w(options.encoding, options.media);
      for (auto& ev : by_ns[id].events) {
        if (auto* s = std::get_if<VllmStored>(&ev)) {
          w.stored(*s);
        } else {
          w.removed(std::get<VllmRemoved>(ev));
        }
        if (w.events() >= options.max_batch_events) send(id, w, pods);
      }
      send(id, w, pods);
    }
    count([&](VllmPublisherStats& s) {
      s.blocks_stored += stored;
      s.blocks_removed += removed;
      s.with_tokens += with;
      s.without_tokens += without;
      s.unknown_namespace += unknown;
    });
  }

  void run() {
    try {
      // A clean stop's state first: its pods' topics are what consumers know; those not here now
      // have the node's blocks withdrawn, the rest are brought to what the node holds.
      std::vector<std::string> now = current_pods();
      if (read_state()) {
        std::vector<std::string> gone;
        for (const std::string& p : pods) {
          if (std::find(now.begin(), now.end(), p) == now.end()) gone.push_back(p);
        }
        if (!gone.empty()) withdraw(published_blocks(), gone);
      }
      pods = std::move(now);
      count([&](VllmPublisherStats& s) { s.pods = pods; });
      resync();
      while (!stopping.load(std::memory_order_relaxed)) {
        if (const size_t answered = replay.serve(); answered > 0) {
          count([&](VllmPublisherStats& st) { st.replay_requests += answered; });
        }
        refresh_pods();
        if (!log.wait_for(cursor, std::chrono::milliseconds(10))) continue;
        events::EventRead r = log.read(cursor, options.max_batch_events);
        if (r.resync) {
          spdlog::warn("kvtierd: vLLM publisher: events before seq {} are gone; announcing every block again", cursor);
          resync();
          continue;
        }
        drain_tokens();
        publish_events(r.events);
        cursor = r.next_seq;
      }
      write_state();
    } catch (const zmq::error_t& e) {
      // Only a context torn down under the thread gets here; the daemon keeps serving.
      spdlog::error("kvtierd: vLLM publisher stopped: {}", e.what());
    }
  }
};

VllmEventPublisher::VllmEventPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

VllmEventPublisher::~VllmEventPublisher() {
  impl_->stopping = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<std::unique_ptr<VllmEventPublisher>> VllmEventPublisher::start(events::EventLog& log, BlockIndex& index,
                                                                      std::vector<Namespace> namespaces,
                                                                      VllmPublisherOptions options) {
  if (options.pod_ids.empty() && options.fallback_pod.empty()) {
    return Status::invalid_argument("the vLLM publisher needs a pod id or a fallback");
  }
  if (options.replay_batches == 0 || options.max_batch_events == 0) {
    return Status::invalid_argument("the vLLM publisher's replay_batches and max_batch_events must be positive");
  }
  auto impl = std::make_unique<Impl>(log, index, std::move(options));
  for (Namespace& ns : namespaces) impl->namespaces.emplace(ns.index_id(), std::move(ns));
  auto ring = TokenRing::open_or_create(impl->options.token_ring_name, impl->options.token_ring);
  if (!ring.ok()) return ring.status().with_context("the vLLM publisher's token ring");
  impl->ring = std::move(ring).value();
  impl->token_cursor = impl->ring->head();  // older records belong to blocks stored before this start
  try {
    // A subscriber that is slow gets messages dropped at the high-water mark; the seq shows it the
    // gap and the replay socket fills it. Keep it generous.
    impl->pub.set(zmq::sockopt::sndhwm, 100000);
    impl->pub.set(zmq::sockopt::linger, 0);
    if (impl->options.connect) {
      impl->pub.connect(impl->options.endpoint);
    } else {
      impl->pub.bind(impl->options.endpoint);
    }
    if (!impl->options.replay_endpoint.empty()) impl->replay.bind(impl->ctx, impl->options.replay_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::unavailable(
        fmt::format("vLLM publisher on {} (replay {}): {}", impl->options.endpoint,
                    impl->options.replay_endpoint.empty() ? "none" : impl->options.replay_endpoint, e.what()));
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<VllmEventPublisher>(new VllmEventPublisher(std::move(impl)));
}

VllmPublisherStats VllmEventPublisher::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

void VllmEventPublisher::visit_counters(CounterVisitor& v) const {
  const VllmPublisherStats s = stats();
  v.counter("vllm_messages_total", "Messages the vLLM-format publisher sent (one per pod per batch).", s.messages);
  v.counter("vllm_events_total", "vLLM events in those messages.", s.events);
  const std::array<LabelledCount, 3> blocks = {{{R"(event="stored",tokens="yes")", s.with_tokens},
                                                {R"(event="stored",tokens="no")", s.without_tokens},
                                                {R"(event="removed",tokens="no")", s.blocks_removed}}};
  v.counters("vllm_blocks_total", "Block hashes published, by event and whether token ids went with them.", blocks);
  v.counter("vllm_tokens_lost_total",
            "Token records overwritten or torn before the publisher read them (raise events.vllm.token_ring).",
            s.tokens_lost);
  v.counter("vllm_unknown_namespace_total",
            "Node events of namespaces the daemon's configuration does not name (not published).", s.unknown_namespace);
  v.counter("vllm_snapshots_total", "Times the publisher announced every resident block again (start, lost events).",
            s.snapshots);
  v.counter("vllm_withdrawn_total",
            "Block removals the publisher computed itself: blocks gone across a restart or lost events, and the "
            "node's blocks under the topic of an engine that left.",
            s.withdrawn);
  v.counter("vllm_replay_requests_total", "Requests answered on the replay socket.", s.replay_requests);
}

}  // namespace kvtier::publisher
