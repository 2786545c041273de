// LoadQueue: how engine processes ask the node daemon to bring SSD blocks up into host memory.
//
// A small shared-memory ring of block keys (<prefix>-<node>-loads). Clients push the keys they
// want and wait on a futex for the daemon's completion counter; the daemon pops them in batches,
// reads them from SSD with io_uring and commits them into the host arena (docs/ssd.md,
// "Promotion"). The ring's lock is robust: a client killed while pushing loses nothing but its
// own request. The daemon holds a robust "serving" mutex while it runs, so a client can tell at
// once that nobody is serving loads instead of waiting for a timeout.
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
  Status push(std::span<const BlockKey> keys);
  // Whether a daemon is serving loads now.
  bool served() const;
  uint32_t completions() const;
  // Waits until the completion counter moves past `seen`, or the timeout passes.
  void wait_for_completion(uint32_t seen, std::chrono::milliseconds timeout) const;

  // --- the daemon ---
  // Marks this process as the server; held until stop_serving() (same thread) or death.
  Status start_serving();
  void stop_serving();
  // Takes up to out.size() keys, oldest first.
  size_t pop(std::span<BlockKey> out);
  uint32_t requests() const;
  // Waits until the request counter moves past `seen`, or the timeout passes.
  void wait_for_requests(uint32_t seen, std::chrono::milliseconds timeout) const;
  // Tells waiting clients that a batch finished.
  void complete();

 private:
  struct Header;
  LoadQueue(std::unique_ptr<SharedSegment> seg);
  Header& header() const;
  BlockKey* ring() const;
  std::unique_ptr<SharedSegment> seg_;
  bool serving_ = false;
};

}  // namespace kvtier
