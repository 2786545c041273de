// ProcessMembership: this process's slot in the index's process table, which gives it a pin bit.
//
// A keeper thread holds the slot's robust liveness mutex for as long as the process lives. When
// the process dies, however it dies, the kernel marks the mutex; maintain() in any other process
// then sees EOWNERDEAD and reclaims the slot's pins. No pids, no timeouts.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "index/index_segment.h"
#include "index/index_writer.h"
#include "kvtier/result.h"

namespace kvtier::index {

class ProcessMembership {
 public:
  static Result<std::unique_ptr<ProcessMembership>> join(const std::shared_ptr<IndexSegment>& seg);
  // Leaves the slot: wipes any pin bits still set (only if `pins_outstanding`) and frees it.
  void leave(bool pins_outstanding);
  ~ProcessMembership();

  uint32_t slot() const { return slot_; }
  uint32_t bit() const { return 1u << slot_; }
  pid_t pid() const { return pid_; }

 private:
  ProcessMembership(std::shared_ptr<IndexSegment> seg, uint32_t slot);
  static Result<std::unique_ptr<ProcessMembership>> try_claim(const std::shared_ptr<IndexSegment>& seg);
  void start_keeper();
  void stop_keeper();

  std::shared_ptr<IndexSegment> seg_;
  uint32_t slot_;
  uint64_t generation_ = 0;  // of the slot when we claimed it
  pid_t pid_;
  bool left_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_ = false;
  bool stop_ = false;
  std::thread* keeper_ = nullptr;  // a raw pointer: a forked child must leak it, never join it
};

// Finds process slots whose owner died and reclaims them (and finishes interrupted reclaims).
// `self_slot` (or -1) is never judged. Returns how many were reclaimed.
uint32_t reclaim_dead_processes(IndexSegment& seg, int self_slot);

}  // namespace kvtier::index
