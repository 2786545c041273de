// EventLog: the node's cache-locality events for schedulers (docs/events.md).
//
// Every residency change the index records (stored, removed, moved between tiers) becomes an
// event carrying the node id, the log's epoch (new on every daemon start) and a sequence number
// gap-free within the epoch. The log keeps the newest `ring_events` in memory for replay; a
// subscriber that asks for an older sequence, or that the index's own change ring lapped, is told
// to resynchronise from a snapshot (every resident key per tier) instead of silently missing
// events. Memory never grows past the ring, whatever subscribers do.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/counter_visitor.h"
#include "index/index_mechanics.h"
#include "kvtier/block_index.h"

namespace kvtier::events {

struct Event {
  enum class Kind : uint8_t { kStored = 1, kRemoved = 2, kMoved = 3 };
  uint64_t seq = 0;
  uint64_t timestamp_us = 0;  // when the log took it from the index (wall clock)
  Kind kind = Kind::kStored;
  BlockKey key;
  uint64_t parent_lo = 0;
  uint16_t namespace_id = 0;
  uint32_t payload_bytes = 0;
  uint8_t tiers_before = 0;  // tier_bit() sets
  uint8_t tiers_after = 0;
};

struct EventLogOptions {
  std::string node_id;
  uint32_t ring_events = 1 << 20;  // events kept for replay
};

// What read() returns: events in order from the asked sequence, or a resync marker.
struct EventRead {
  std::vector<Event> events;
  uint64_t next_seq = 0;  // where to read next
  // The asked sequence is gone (older than the ring, or lost by the index before the log saw
  // it): take a snapshot and read on from its as_of_seq.
  bool resync = false;
};

struct Snapshot {
  uint64_t epoch = 0;
  uint64_t as_of_seq = 0;  // apply events from here on top of it (re-applying one is harmless)
  std::array<std::vector<BlockKey>, kNumTiers> keys;  // resident keys per tier
};

struct EventLogStats {
  uint64_t events = 0, polls = 0, index_gaps = 0, resyncs_served = 0;
  uint64_t next_seq = 0, oldest_seq = 0;
};

class EventLog {
 public:
  // Starts a new epoch at the index's current change position: what happened before is what a
  // snapshot shows.
  EventLog(BlockIndex& index, EventLogOptions options);
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Moves new index changes into the log; returns how many events it added. The daemon's event
  // thread calls it in a loop.
  size_t poll();
  // Up to `max_events` events from `from_seq` on (copies; subscribers never hold the lock).
  EventRead read(uint64_t from_seq, size_t max_events) const;
  // Waits until an event with seq >= `seq` exists, or the timeout passes; true if one does.
  bool wait_for(uint64_t seq, std::chrono::milliseconds timeout) const;
  Snapshot snapshot() const;

  uint64_t epoch() const { return epoch_; }
  const std::string& node_id() const { return options_.node_id; }
  uint64_t next_seq() const;
  EventLogStats stats() const;
  void visit_counters(CounterVisitor& visitor) const;

 private:
  BlockIndex& index_;
  EventLogOptions options_;
  uint64_t epoch_ = 0;
  mutable std::mutex mu_;
  mutable std::condition_variable grew_;
  std::vector<Event> ring_;     // event seq s lives at ring_[s % size]
  uint64_t next_seq_ = 0;       // the next event's seq
  uint64_t index_cursor_ = 0;   // the next index change to read
  uint64_t resync_before_ = 0;  // reads from below this seq must resync (an index gap)
  mutable EventLogStats stats_;
};

}  // namespace kvtier::events
