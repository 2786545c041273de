// VllmEventPublisher: kvtierd's node events in vLLM's KV-event wire format, so consumers of an
// unmodified vLLM engine's stream (llm-d's precise prefix-cache scorer, kvtier-indexer's vLLM
// ingest, Dynamo-style routers) see what the node caches without speaking kvtier's gRPC.
//
// ZMQ PUB [topic, seq (8 bytes, big-endian), msgpack EventBatch], topic kv@<pod>@<model> as
// llm-d expects it; a ROUTER replay socket answers [start_seq] with the buffered batches from
// there and the end marker, as vLLM does. Block hashes are the low 64 bits of kvtier's keys
// (opaque: llm-d computes its own keys from the token ids); token ids come from the node's token
// ring, written by clients when they store a block. The seq restarts at 0 with each daemon start,
// as an engine's does.
//
// The publisher never sends AllBlocksCleared: consumers (llm-d, Dynamo) apply it to everything
// they hold for the pod, the engine's own GPU blocks included, which the node does not own. It
// keeps what it has told consumers instead and corrects that with BlockStored / BlockRemoved: on
// start (against the state a clean stop wrote), when the node's event log lost events, when an
// engine appears (told what the node holds) and when one leaves (the node's blocks withdrawn from
// its topic).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/counter_visitor.h"
#include "events/event_log.h"
#include "events/token_ring.h"
#include "kvtier/block_index.h"
#include "kvtier/namespace.h"
#include "kvtier/result.h"
#include "server/publisher/vllm_event_encoder.h"

namespace kvtier::publisher {

struct VllmPublisherOptions {
  std::string endpoint = "tcp://*:5557";         // PUB
  bool connect = false;                          // connect to a consumer that binds (llm-d's zmqEndpoint)
  std::string replay_endpoint = "tcp://*:5558";  // ROUTER, always bound; empty: no replay
  // Each batch goes out once per pod (topic kv@<pod>@<model>): the engines on this node, which
  // share its host and SSD tiers. Those listed here, and every live engine that names itself
  // (ClientOptions::engine_id); when there are none, `fallback_pod` (the node name).
  std::vector<std::string> pod_ids;
  std::string fallback_pod;
  VllmEncoding encoding = VllmEncoding::kMap;  // vLLM 0.32's form; llm-d-kv-cache reads kArray
  VllmMedia media;
  bool publish_hbm = false;  // engines publish their own GPU blocks; the node adds CPU and STORAGE
  uint32_t replay_batches = 10000;
  uint32_t max_batch_events = 1024;
  std::string token_ring_name;  // the node's token ring (created by the publisher)
  TokenRing::Geometry token_ring;
  // Where a clean stop writes what the stream had told consumers, for the next start to withdraw
  // what is gone meanwhile; empty: nowhere.
  std::string state_file;
  // How long a token record still being written is waited for (null: the steady clock).
  const Clock* clock = nullptr;
};

struct VllmPublisherStats {
  uint64_t messages = 0;           // published (one per pod per batch)
  uint64_t events = 0;             // vLLM events in them
  uint64_t blocks_stored = 0;      // BlockStored hashes
  uint64_t blocks_removed = 0;     // BlockRemoved hashes
  uint64_t with_tokens = 0;        // stored hashes sent with their token ids
  uint64_t without_tokens = 0;     // stored hashes whose tokens no client recorded (or already sent)
  uint64_t tokens_lost = 0;        // token records overwritten or torn before the publisher read them
  uint64_t unknown_namespace = 0;  // node events of namespaces the daemon's config does not name
  uint64_t snapshots = 0;          // every resident block announced again (start, lost events)
  uint64_t withdrawn = 0;          // removals the publisher computed (resync, a pod leaving, start)
  uint64_t replay_requests = 0;
  uint64_t next_seq = 0;
  std::vector<std::string> pods;  // published under now
};

class VllmEventPublisher {
 public:
  // Opens the token ring and the sockets, then publishes from the log's current position on
  // (after a snapshot of `index`). Namespaces not listed are counted and not published.
  static Result<std::unique_ptr<VllmEventPublisher>> start(events::EventLog& log, BlockIndex& index,
                                                           std::vector<Namespace> namespaces,
                                                           VllmPublisherOptions options);
  ~VllmEventPublisher();
  VllmEventPublisher(const VllmEventPublisher&) = delete;
  VllmEventPublisher& operator=(const VllmEventPublisher&) = delete;

  VllmPublisherStats stats() const;
  void visit_counters(CounterVisitor& visitor) const;  // named vllm_* in /metrics

 private:
  struct Impl;  // the publishing thread's state (vllm_event_publisher.cc)
  explicit VllmEventPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvtier::publisher
