#include "server/publisher/vllm_replay_buffer.h"

#include <iterator>
#include <string_view>
#include <vector>
#include <zmq_addon.hpp>

namespace kvtier::publisher {
namespace {

constexpr uint64_t kEndOfReplay = ~uint64_t{0};  // vLLM's end-of-replay marker: seq 0xFF×8, empty payload

}  // namespace

std::string seq_bytes(uint64_t seq) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(seq >> (8 * (7 - i)));
  return out;
}

void VllmReplayBuffer::bind(zmq::context_t& ctx, const std::string& endpoint) {
  router_.emplace(ctx, zmq::socket_type::router);
  router_->set(zmq::sockopt::linger, 0);
  router_->bind(endpoint);
}

void VllmReplayBuffer::record(uint64_t seq, std::shared_ptr<const std::string> topic,
                              std::shared_ptr<const std::string> payload) {
  sent_.push_back({seq, std::move(topic), std::move(payload)});
  while (sent_.size() > capacity_) sent_.pop_front();
}

size_t VllmReplayBuffer::serve() {
  if (!router_) return 0;
  size_t answered = 0;
  for (;;) {
    std::vector<zmq::message_t> frames;
    const auto got = zmq::recv_multipart(*router_, std::back_inserter(frames), zmq::recv_flags::dontwait);
    if (!got) return answered;
    if (frames.size() < 2 || frames.back().size() != 8) continue;  // not a replay request
    const auto* p = static_cast<const uint8_t*>(frames.back().data());
    uint64_t start = 0;
    for (int i = 0; i < 8; ++i) start = (start << 8) | p[i];
    const zmq::message_t& identity = frames.front();
    const auto reply = [&](std::string_view topic, const std::string& seq, std::string_view payload) {
      router_->send(zmq::buffer(identity.data(), identity.size()), zmq::send_flags::sndmore);
      router_->send(zmq::message_t(), zmq::send_flags::sndmore);
      router_->send(zmq::buffer(topic), zmq::send_flags::sndmore);
      router_->send(zmq::buffer(seq), zmq::send_flags::sndmore);
      router_->send(zmq::buffer(payload), zmq::send_flags::none);
    };
    for (const Sent& s : sent_) {
      if (s.seq >= start) reply(*s.topic, seq_bytes(s.seq), *s.payload);
    }
    reply("", seq_bytes(kEndOfReplay), "");
    ++answered;
  }
}

}  // namespace kvtier::publisher
