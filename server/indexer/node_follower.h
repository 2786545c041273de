// NodeFollower: keeps the cluster index in step with one kvtierd node, over its Events service.
//
// It loads a snapshot (the node's resident keys per tier, replacing whatever the index held for
// that node), then subscribes from the snapshot's sequence number and applies events in order.
// A resync marker, a gap in the sequence or a new epoch (the node restarted) sends it back to a
// snapshot, so a restarted node's stale blocks never survive. When the node cannot be reached its
// blocks are kept for the grace period, then dropped; it is retried with backoff all along.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cluster/cluster_index.h"
#include "common/clock.h"
#include "server/security/client_credentials.h"

namespace kvtier::indexer {

struct FollowerOptions {
  std::string address;                     // host:port of the node's gRPC server
  std::chrono::milliseconds grace{30000};  // how long an unreachable node's blocks are kept
  std::chrono::milliseconds max_backoff{2000};
  uint32_t max_batch_events = 0;  // per Subscribe batch; 0: the node's default
  const Clock* clock = nullptr;   // what the grace period is judged by (null: the steady clock)
  // TLS, a client certificate, a bearer token for the node's read role; null: plaintext.
  std::shared_ptr<const security::ClientCredentials> credentials;
};

enum class FollowerState : uint8_t { kConnecting = 1, kSyncing = 2, kFollowing = 3, kDown = 4 };

struct FollowerStatus {
  std::string address;
  std::string node;  // as the node names itself; empty until first reached
  FollowerState state = FollowerState::kConnecting;
  uint64_t epoch = 0;
  uint64_t next_seq = 0;
  uint64_t events = 0;
  uint64_t snapshots = 0;
  uint64_t restarts = 0;
  uint64_t down_ms = 0;
};

class NodeFollower {
 public:
  NodeFollower(cluster::ClusterIndex& index, FollowerOptions options);
  ~NodeFollower();
  NodeFollower(const NodeFollower&) = delete;
  NodeFollower& operator=(const NodeFollower&) = delete;

  // Stops following and, with drop_entries, removes the node's blocks from the index.
  void stop(bool drop_entries);
  FollowerStatus status() const;

 private:
  enum class Outcome : uint8_t { kResync, kUnreachable, kStopped };

  void run();
  Outcome load_snapshot();
  Outcome follow();
  void mark_down();
  void forget_node();                           // drops the node's entries and its slot
  bool sleep_for(std::chrono::milliseconds d);  // false when stopping

  cluster::ClusterIndex& index_;
  const FollowerOptions options_;
  std::shared_ptr<grpc::Channel> channel_;

  mutable std::mutex mu_;  // status_, call_, slot_
  std::condition_variable wake_;
  FollowerStatus status_;
  std::optional<cluster::NodeSlot> slot_;
  grpc::ClientContext* call_ = nullptr;  // the open call, cancelled by stop()
  std::optional<Clock::time_point> down_since_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kvtier::indexer
