// ReadLeases: the blocks the node keeps pinned for remote readers between an OpenRead and the
// reader's ucp_gets (docs/transport.md#leases). A lease ends when its reader releases it, when its
// session (the ReadBlocks stream) ends for any reason, reader death included, or when its time is
// up: a reader that hangs cannot keep blocks from eviction for longer than that. Thread-safe; a
// reaper thread ends leases whose time is up.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/counter_visitor.h"
#include "kvtier/client.h"
#include "kvtier/result.h"

namespace kvtier::transport {

class ReadLeases {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ReadLeases(uint32_t max_leases);
  ~ReadLeases();  // ends every lease
  ReadLeases(const ReadLeases&) = delete;
  ReadLeases& operator=(const ReadLeases&) = delete;

  uint64_t new_session() { return next_session_.fetch_add(1, std::memory_order_relaxed); }
  // Holds `blocks` pinned for `session` until released, the session ends or `ttl` passes.
  // resource_exhausted when max_leases are held (the blocks are released at once).
  Result<uint64_t> grant(uint64_t session, std::vector<HostBlock> blocks, std::chrono::milliseconds ttl);
  // False when the lease is not (or no longer) this session's.
  bool release(uint64_t session, uint64_t lease);
  // Ends every lease of the session; returns how many there were.
  size_t end_session(uint64_t session);
  // Ends the leases whose time is up at `now` (the reaper does this; tests call it directly).
  size_t expire(Clock::time_point now);

  size_t open() const;
  // leases_total{end}, read_leases_open, read_leased_blocks.
  void visit_counters(CounterVisitor& visitor) const;

 private:
  struct Lease {
    uint64_t session = 0;
    Clock::time_point deadline;
    std::vector<HostBlock> blocks;
  };
  void reap();
  // Ends the leases `ends` picks; `counter` counts them.
  template <typename Ends>
  size_t end_leases_if(Ends ends, std::atomic<uint64_t>& counter);

  const uint32_t max_leases_;
  std::atomic<uint64_t> next_session_{1};
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  uint64_t next_lease_ = 1;
  std::map<uint64_t, Lease> leases_;
  size_t leased_blocks_ = 0;
  // How leases ended (and refusals): released, session_ended, expired, refused.
  std::atomic<uint64_t> granted_{0}, released_{0}, session_ended_{0}, expired_{0}, refused_{0};
  std::thread reaper_;
};

}  // namespace kvtier::transport
