// VllmReplayBuffer: the last messages the vLLM publisher sent, and its answers on vLLM's replay
// socket (a ZMQ ROUTER). A subscriber that sees a gap in the sequence numbers asks with
// [identity, "", start_seq] and gets every kept message from start_seq on as
// [identity, "", topic, seq, payload], then the end marker (seq 0xFF×8, empty payload).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

namespace kvtier::publisher {

// A sequence number as vLLM frames it: 8 bytes, big-endian.
std::string seq_bytes(uint64_t seq);

class VllmReplayBuffer {
 public:
  explicit VllmReplayBuffer(size_t capacity) : capacity_(capacity) {}

  // Binds the replay socket; throws zmq::error_t as the socket does. Without one, serve() answers
  // nothing (messages are kept all the same).
  void bind(zmq::context_t& ctx, const std::string& endpoint);
  // Keeps a sent message, dropping the oldest past the capacity.
  void record(uint64_t seq, std::shared_ptr<const std::string> topic, std::shared_ptr<const std::string> payload);
  // Answers every request waiting on the socket, without blocking. Returns how many it answered.
  size_t serve();

 private:
  struct Sent {
    uint64_t seq;
    std::shared_ptr<const std::string> topic;
    std::shared_ptr<const std::string> payload;
  };
  size_t capacity_;
  std::deque<Sent> sent_;
  std::optional<zmq::socket_t> router_;
};

}  // namespace kvtier::publisher
