#include "server/publisher/vllm_event_publisher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <unordered_map>
#include <variant>
#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace kvtier::publisher {
namespace {

constexpr uint64_t kEndOfReplay = ~uint64_t{0};  // vLLM's end-of-replay marker: seq 0xFF×8, empty payload
// A token record still being written this long after its ticket was handed out belongs to a
// writer that died mid-record (or was stopped): it is skipped.
constexpr auto kPendingRecordPatience = std::chrono::seconds(2);

std::string big_endian(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * (7 - i)));
  return out;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The tiers kvtier has, in the order a change's events go out: gains before losses, so a block
// moving between tiers is never shown held nowhere.
constexpr Tier kTierOrder[] = {Tier::kHbm, Tier::kHost, Tier::kSsd};

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
  std::optional<zmq::socket_t> router;
  std::atomic<bool> stopping{false};
  std::thread thread;

  mutable std::mutex mu;  // guards stats
  VllmPublisherStats stats;

  // The publishing thread's own state.
  uint64_t seq = 0;
  uint64_t cursor = 0;  // next event-log seq
  uint64_t token_cursor = 0;
  std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>> pending_tickets;
  std::unordered_map<BlockKey, std::vector<TokenId>> tokens;  // recorded, not yet sent
  std::deque<std::pair<uint64_t, BlockKey>> token_order;      // (ticket, key), oldest first
  struct Sent {
    uint64_t seq;
    std::shared_ptr<const std::string> topic;
    std::shared_ptr<const std::string> payload;
  };
  std::deque<Sent> replay;

  Impl(events::EventLog& l, BlockIndex& ix, VllmPublisherOptions o) : log(l), index(ix), options(std::move(o)) {}

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
    const auto now = std::chrono::steady_clock::now();
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

  std::vector<TokenId> peek_tokens(const BlockKey& key) const {
    auto it = tokens.find(key);
    return it == tokens.end() ? std::vector<TokenId>{} : it->second;
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

  // Follows engines coming and going; one that appears gets the node's content under its topic.
  void refresh_pods() {
    std::vector<std::string> now = current_pods();
    if (now == pods) return;
    std::vector<std::string> fresh;
    for (const std::string& p : now) {
      if (std::find(pods.begin(), pods.end(), p) == pods.end()) fresh.push_back(p);
    }
    pods = std::move(now);
    count([&](VllmPublisherStats& s) { s.pods = pods; });
    if (!fresh.empty()) publish_snapshot(fresh, /*move_cursor=*/false);
  }

  void send(uint16_t ns_id, VllmBatchWriter& writer, const std::vector<std::string>& to) {
    if (writer.events() == 0) return;
    const uint64_t n = writer.events();
    auto payload = std::make_shared<const std::string>(writer.finish(now_seconds()));
    const std::string& model = namespaces.at(ns_id).spec().model_id;
    for (const std::string& pod : to) {
      const std::string topic = fmt::format("kv@{}@{}", pod, model);
      const uint64_t s = seq++;
      const std::string seq_bytes = big_endian(s);
      pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(seq_bytes), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(*payload), zmq::send_flags::none);
      replay.push_back({s, std::make_shared<const std::string>(topic), payload});
      while (replay.size() > options.replay_batches) replay.pop_front();
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

  // AllBlocksCleared, then every resident block (one BlockStored each, with its token ids while
  // the ring still has them), per namespace, to `to`. With `move_cursor`, events are published
  // from the snapshot's position on, so the snapshot is where a block's tokens go; otherwise from
  // where they were (an event applied twice changes nothing) and the tokens stay for that event.
  void publish_snapshot(const std::vector<std::string>& to, bool move_cursor) {
    const uint64_t as_of = log.next_seq();
    drain_tokens();
    std::unordered_map<uint16_t, VllmBatchWriter> writers;
    uint64_t unknown = 0;
    for (const auto& [id, ns] : namespaces) {
      writers.emplace(id, VllmBatchWriter(options.encoding, options.media)).first->second.all_cleared();
    }
    uint64_t blocks = 0, with = 0;
    index.for_each_block([&](const BlockInfo& b) {
      auto ns = namespaces.find(b.namespace_id);
      if (ns == namespaces.end()) {
        ++unknown;
        return;
      }
      VllmBatchWriter& w = writers.at(b.namespace_id);
      bool first = true;
      for (Tier t : kTierOrder) {
        if (!b.in(t) || (t == Tier::kHbm && !options.publish_hbm)) continue;
        std::vector<TokenId> block_tokens;
        if (first) block_tokens = move_cursor ? take_tokens(b.key) : peek_tokens(b.key);
        first = false;
        with += block_tokens.empty() ? 0 : 1;
        w.stored({{b.key.lo},
                  parent_hash(ns->second, b.parent_lo),
                  std::move(block_tokens),
                  ns->second.block_tokens(),
                  t,
                  ns->second.spec().adapter_id});
        ++blocks;
        if (w.events() >= options.max_batch_events) send(b.namespace_id, w, to);
      }
    });
    for (auto& [id, w] : writers) send(id, w, to);
    if (move_cursor) cursor = as_of;
    count([&](VllmPublisherStats& s) {
      ++s.snapshots;
      s.blocks_stored += blocks;
      s.with_tokens += with;
      s.without_tokens += blocks - with;
      s.unknown_namespace += unknown;
    });
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
      const uint8_t gained = e.tiers_after & ~e.tiers_before;
      const uint8_t lost = e.tiers_before & ~e.tiers_after;
      for (Tier t : kTierOrder) {
        if ((gained & tier_bit(t)) == 0 || (t == Tier::kHbm && !options.publish_hbm)) continue;
        VllmStored s{{e.key.lo}, parent_hash(ns->second, e.parent_lo), take_tokens(e.key), ns->second.block_tokens(),
                     t,          ns->second.spec().adapter_id};
        (s.tokens.empty() ? without : with) += 1;
        ++stored;
        add_stored(p, std::move(s));
      }
      for (Tier t : kTierOrder) {
        if ((lost & tier_bit(t)) == 0 || (t == Tier::kHbm && !options.publish_hbm)) continue;
        ++removed;
        add_removed(p, e.key.lo, t);
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

  // Answers replay requests: [identity, "", start_seq] → each buffered message from start_seq
  // on as [identity, "", topic, seq, payload], then the end marker.
  void serve_replay() {
    if (!router) return;
    for (;;) {
      std::vector<zmq::message_t> frames;
      const auto got = zmq::recv_multipart(*router, std::back_inserter(frames), zmq::recv_flags::dontwait);
      if (!got) return;
      if (frames.size() < 2 || frames.back().size() != 8) continue;  // not a replay request
      const auto* p = static_cast<const uint8_t*>(frames.back().data());
      uint64_t start = 0;
      for (int i = 0; i < 8; ++i) start = (start << 8) | p[i];
      const zmq::message_t& identity = frames.front();
      const auto reply = [&](std::string_view topic, const std::string& seq_bytes, std::string_view payload) {
        router->send(zmq::buffer(identity.data(), identity.size()), zmq::send_flags::sndmore);
        router->send(zmq::message_t(), zmq::send_flags::sndmore);
        router->send(zmq::buffer(topic), zmq::send_flags::sndmore);
        router->send(zmq::buffer(seq_bytes), zmq::send_flags::sndmore);
        router->send(zmq::buffer(payload), zmq::send_flags::none);
      };
      for (const Sent& s : replay) {
        if (s.seq >= start) reply(*s.topic, big_endian(s.seq), *s.payload);
      }
      reply("", big_endian(kEndOfReplay), "");
      count([](VllmPublisherStats& st) { ++st.replay_requests; });
    }
  }

  void run() {
    try {
      pods = current_pods();
      count([&](VllmPublisherStats& s) { s.pods = pods; });
      publish_snapshot(pods, /*move_cursor=*/true);
      while (!stopping.load(std::memory_order_relaxed)) {
        serve_replay();
        refresh_pods();
        if (!log.wait_for(cursor, std::chrono::milliseconds(10))) continue;
        events::EventRead r = log.read(cursor, options.max_batch_events);
        if (r.resync) {
          spdlog::warn("kvtierd: vLLM publisher: events before seq {} are gone; sending every block again", cursor);
          publish_snapshot(pods, /*move_cursor=*/true);
          continue;
        }
        drain_tokens();
        publish_events(r.events);
        cursor = r.next_seq;
      }
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
    if (!impl->options.replay_endpoint.empty()) {
      impl->router.emplace(impl->ctx, zmq::socket_type::router);
      impl->router->set(zmq::sockopt::linger, 0);
      impl->router->bind(impl->options.replay_endpoint);
    }
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

}  // namespace kvtier::publisher
