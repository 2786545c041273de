// LoadQueue: how engine processes ask the node daemon for work: bring SSD blocks up into host
// memory, and make room in host memory now.
//
// A small shared-memory segment (<prefix>-<node>-loads): a ring of block keys, and futex counters.
// Clients push the keys they want and wait for the daemon's completion counter; the daemon pops
// them in batches, reads them from SSD with io_uring and commits them into the host arena
// (docs/ssd.md, "Promotion"). A client whose put finds the arena full asks for room and waits a
// moment for a demotion pass, instead of dropping blocks the daemon would have kept on SSD. The
// ring's lock is robust: a client killed while pushing loses nothing but its own request. The
// daemon holds a robust "serving" mutex while it runs, so a client can tell at once that nobody
// serves the node instead of waiting for a timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kvtier/block_key.h"
#include "kvtier/result.h"

namespace kvtier {

class SharedSegment;

class LoadQueue {
 public:
  // The daemon: creates the segment, or attaches to the one a previous run left.
  static Result<std::unique_ptr<LoadQueue>> open_or_create(const std::string& name, uint32_t capacity);
  // Engine processes.
  static Result<std::unique_ptr<LoadQueue>> attach(const std::string& name);
  static Status destroy(const std::string& name);
  ~LoadQueue();

  // --- clients ---
  // Queues keys for loading; resource_exhausted when the ring has no room for all of them.
  // Returns the request's ticket: it is handled once handled_through() reaches it.
  Result<uint64_t> push(std::span<const BlockKey> keys);
  // Every key queued before this position has been handled (loaded, or found unloadable).
  uint64_t handled_through() const;
  // Whether a daemon is serving loads now.
  bool served() const;
  uint32_t completions() const;
  // Waits until the completion counter moves past `seen`, or the timeout passes.
  void wait_for_completion(uint32_t seen, std::chrono::milliseconds timeout) const;
  // Asks the daemon for a demotion pass now; room_passes() moves when one finished.
  void request_room();
  uint32_t room_passes() const;
  void wait_for_room(uint32_t seen, std::chrono::milliseconds timeout) const;

  // --- the daemon ---
  // Marks this process as the server; held until stop_serving() (same thread) or death.
  Status start_serving();
  void stop_serving();
  // Takes up to out.size() keys, oldest first; *end is the position after the last one taken.
  size_t pop(std::span<BlockKey> out, uint64_t* end);
  uint32_t requests() const;
  // Waits until the request counter moves past `seen`, or the timeout passes.
  void wait_for_requests(uint32_t seen, std::chrono::milliseconds timeout) const;
  // Tells waiting clients that every key before `end` (from pop) has been handled.
  void complete(uint64_t end);
  uint32_t room_requests() const;
  // Waits until a client asks for room (the counter moves past `seen`), or the timeout passes.
  void wait_for_room_request(uint32_t seen, std::chrono::milliseconds timeout) const;
  // Tells clients waiting for room that a demotion pass finished.
  void room_made();

  struct Header;  // the segment's layout (load_queue.cc)

 private:
  LoadQueue(std::unique_ptr<SharedSegment> seg);
  Header& header() const;
  BlockKey* ring() const;
  std::unique_ptr<SharedSegment> seg_;
  bool serving_ = false;
};

}  // namespace kvtier
