#include "server/indexer/vllm_engine_follower.h"

#include <spdlog/spdlog.h>

#include <unordered_set>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "kvtier/key_profile.h"
#include "server/indexer/vllm_events.h"

namespace kvtier::indexer {
namespace {

constexpr uint64_t kEndOfReplay = ~uint64_t{0};  // vLLM's end marker: seq 0xFF×8, empty payload
constexpr int kPollMs = 200;

std::optional<uint64_t> big_endian_u64(const zmq::message_t& m) {
  if (m.size() != 8) return std::nullopt;
  const auto* p = static_cast<const uint8_t*>(m.data());
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// A published or replayed message: [topic, seq, payload], or [seq, payload] from older vLLM.
struct Published {
  uint64_t seq = 0;
  const zmq::message_t* payload = nullptr;
};
std::optional<Published> parse_frames(const std::vector<zmq::message_t>& frames, size_t first) {
  const size_t n = frames.size() - first;
  if (n == 3 || n == 2) {
    const auto seq = big_endian_u64(frames[frames.size() - 2]);
    if (seq) return Published{*seq, &frames.back()};
  }
  return std::nullopt;
}

}  // namespace

VllmEngineFollower::VllmEngineFollower(cluster::ClusterIndex& index, VllmEngine engine, uint64_t key_space,
                                       const Clock* clock)
    : index_(index), engine_(std::move(engine)), key_space_(key_space), clock_(clock_or_steady(clock)) {
  status_.name = engine_.name;
  status_.endpoint = engine_.endpoint;
  slot_ = index_.add_node(engine_.name).value();  // the config names at most a few thousand engines
  thread_ = std::thread([this] { run(); });
}

VllmEngineFollower::~VllmEngineFollower() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

VllmFollowerStatus VllmEngineFollower::status() const {
  std::lock_guard lock(mu_);
  VllmFollowerStatus s = status_;
  s.receiving = last_batch_ && clock_.now() - *last_batch_ < std::chrono::seconds(10);
  return s;
}

void VllmEngineFollower::run() {
  zmq::context_t ctx(1);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, engine_.topic);
  sub.set(zmq::sockopt::rcvtimeo, kPollMs);
  sub.set(zmq::sockopt::linger, 0);
  sub.connect(engine_.endpoint);
  std::optional<zmq::socket_t> replay;
  std::optional<uint64_t> expected;  // unknown until the first batch
  std::vector<BlockKey> keys;
  // KV-cache groups whose BlockStored named a kind that holds no whole prefix. vLLM's removals
  // carry only the group, so it is learned from the stores (a group never seen is applied).
  std::unordered_set<uint32_t> other_groups;

  const auto apply = [&](uint64_t seq, const zmq::message_t& payload) {
    auto batch = decode_vllm_batch({static_cast<const uint8_t*>(payload.data()), payload.size()});
    std::lock_guard lock(mu_);
    ++status_.batches;
    status_.next_seq = seq + 1;
    last_batch_ = clock_.now();
    if (!batch.ok()) {
      ++status_.malformed;
      spdlog::debug("indexer: vLLM engine {} batch {}: {}", engine_.name, seq, batch.status().to_string());
      return;
    }
    status_.malformed += batch->malformed_events;
    status_.unknown_events += batch->unknown_events;
    for (const VllmEvent& e : batch->events) {
      ++status_.events;
      if (e.kind == VllmEvent::Kind::kAllCleared) {
        (void)index_.clear_node(slot_, tier_bit(Tier::kHbm));  // vLLM's GPU prefix cache was reset
        continue;
      }
      if (e.kind == VllmEvent::Kind::kStored && !e.group_idx && !holds_prefix(e.spec_kind)) {
        ++status_.other_group_events;
        continue;
      }
      if (e.group_idx) {
        if (e.kind == VllmEvent::Kind::kStored) {
          if (holds_prefix(e.spec_kind)) {
            other_groups.erase(*e.group_idx);
          } else {
            other_groups.insert(*e.group_idx);
          }
        }
        if (other_groups.contains(*e.group_idx)) {
          ++status_.other_group_events;
          continue;
        }
      }
      keys.clear();
      for (const uint64_t h : e.hashes) keys.push_back(engine_index_key(key_space_, h));
      if (e.kind == VllmEvent::Kind::kStored) {
        index_.stored(slot_, e.tier, keys);
      } else {
        index_.removed(slot_, e.tier, keys);
      }
    }
  };
  // Asks the replay socket for batches from `from` on and applies those before `until`; returns
  // the next sequence it got to (from itself when nothing came back).
  const auto replay_range = [&](uint64_t from, uint64_t until) -> uint64_t {
    if (engine_.replay_endpoint.empty()) return from;
    try {
      if (!replay) {
        replay.emplace(ctx, zmq::socket_type::dealer);
        replay->set(zmq::sockopt::rcvtimeo, 1000);
        replay->set(zmq::sockopt::linger, 0);
        replay->connect(engine_.replay_endpoint);
      }
      uint8_t start[8];
      for (int i = 0; i < 8; ++i) start[i] = static_cast<uint8_t>(from >> (8 * (7 - i)));
      replay->send(zmq::message_t(), zmq::send_flags::sndmore);
      replay->send(zmq::buffer(start, sizeof(start)), zmq::send_flags::none);
      uint64_t next = from;
      for (;;) {
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(*replay, std::back_inserter(frames))) {
          replay.reset();  // no answer: a fresh socket next time (a DEALER keeps a stale request queued)
          break;
        }
        const auto msg = frames.empty() ? std::nullopt : parse_frames(frames, 1);  // after the empty delimiter
        if (!msg || msg->seq == kEndOfReplay) break;
        if (msg->seq < next || msg->seq >= until) continue;
        if (msg->seq != next) break;  // the engine no longer has `next`
        apply(msg->seq, *msg->payload);
        {
          std::lock_guard lock(mu_);
          ++status_.replayed;
        }
        next = msg->seq + 1;
      }
      return next;
    } catch (const zmq::error_t& e) {
      spdlog::warn("indexer: vLLM engine {} replay: {}", engine_.name, e.what());
      replay.reset();
      return from;
    }
  };

  while (!stopping_) {
    std::vector<zmq::message_t> frames;
    std::optional<size_t> got;
    try {
      got = zmq::recv_multipart(sub, std::back_inserter(frames));
    } catch (const zmq::error_t& e) {
      spdlog::warn("indexer: vLLM engine {}: {}", engine_.name, e.what());
      continue;
    }
    if (!got) continue;  // timeout: look at stopping_ again
    const auto msg = parse_frames(frames, 0);
    if (!msg) {
      std::lock_guard lock(mu_);
      ++status_.malformed;  // not [topic, seq, payload]: a truncated or foreign message
      continue;
    }
    if (expected && msg->seq < *expected) {
      spdlog::info("indexer: vLLM engine {} restarted (sequence {} after {}): its blocks are dropped", engine_.name,
                   msg->seq, *expected - 1);
      (void)index_.clear_node(slot_);
      std::lock_guard lock(mu_);
      ++status_.restarts;
      expected.reset();
    }
    const uint64_t want = expected.value_or(0);
    if (msg->seq > want) {
      if (expected) {
        std::lock_guard lock(mu_);
        ++status_.gaps;
      }
      const uint64_t reached = replay_range(want, msg->seq);
      if (reached != msg->seq && expected) {
        spdlog::warn("indexer: vLLM engine {}: batches {}..{} are lost; its blocks are dropped", engine_.name, reached,
                     msg->seq - 1);
        (void)index_.clear_node(slot_);
      }
    }
    apply(msg->seq, *msg->payload);
    expected = msg->seq + 1;
  }
}

}  // namespace kvtier::indexer
