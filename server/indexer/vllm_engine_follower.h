// VllmEngineFollower: feeds an unmodified vLLM engine's KV events into the cluster index.
//
// vLLM publishes batches on a ZMQ PUB socket as [topic, seq (8 bytes, big-endian), payload] and
// keeps recent batches for replay on a ROUTER socket. The follower applies batches in sequence;
// on a gap it asks the replay socket for the missing ones; a sequence that goes backwards means
// the engine restarted, so everything it reported before is dropped. vLLM has no snapshot: blocks
// reported before the follower joined (or lost past the replay window) stay unknown until the
// engine reports them again, and a gap that cannot be replayed drops the engine's entries rather
// than keep ones that may be stale.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cluster/cluster_index.h"
#include "common/clock.h"
#include "server/indexer/indexer_config.h"

namespace kvtier::indexer {

struct VllmFollowerStatus {
  std::string name;
  std::string endpoint;
  bool receiving = false;  // a batch arrived in the last 10 s
  uint64_t next_seq = 0;
  uint64_t batches = 0;
  uint64_t events = 0;
  uint64_t malformed = 0;       // payloads or events that could not be read (skipped)
  uint64_t unknown_events = 0;  // event types this indexer does not know (skipped)
  uint64_t gaps = 0;            // sequence gaps seen
  uint64_t replayed = 0;        // batches recovered from the replay socket
  uint64_t restarts = 0;        // the sequence went backwards
  // Events of KV-cache groups that hold no whole prefix (a hybrid model's sliding-window or Mamba
  // group): not applied, since the same block hashes name the full-attention group's blocks and a
  // window's removals would take keys that group still holds.
  uint64_t other_group_events = 0;
};

class VllmEngineFollower {
 public:
  // `clock` (null: the steady clock) judges whether batches are still arriving.
  VllmEngineFollower(cluster::ClusterIndex& index, VllmEngine engine, uint64_t key_space, const Clock* clock = nullptr);
  ~VllmEngineFollower();
  VllmEngineFollower(const VllmEngineFollower&) = delete;
  VllmEngineFollower& operator=(const VllmEngineFollower&) = delete;

  VllmFollowerStatus status() const;

 private:
  void run();

  cluster::ClusterIndex& index_;
  const VllmEngine engine_;
  const uint64_t key_space_;
  cluster::NodeSlot slot_ = 0;
  mutable std::mutex mu_;
  VllmFollowerStatus status_;
  const Clock& clock_;
  std::optional<Clock::time_point> last_batch_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kvtier::indexer
