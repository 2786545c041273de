// The process's heap as glibc's malloc keeps it: what live allocations hold, what malloc keeps
// after frees, and giving that back to the system.
//
// Why trim: a busy gRPC server allocates and frees from many threads, and glibc keeps each
// thread's freed memory in that thread's arena for reuse. Under kvtier-bench soak kvtierd kept
// ~25 MiB of freed memory beside ~17 MiB of live allocations, a share that grows for minutes
// towards the threads' peaks (more arenas on more cores) and that a container's memory limit
// counts all the same.
// malloc_trim returns the whole free pages of every arena; the next allocation faults them back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "common/counter_visitor.h"

namespace kvtier {

struct HeapUsage {
  uint64_t allocated_bytes = 0;  // in live allocations, mmapped large ones included
  uint64_t free_bytes = 0;       // freed and kept by malloc (resident or, once trimmed, not)
};

// Walks every arena under its lock: for a scrape, not a hot path. All zero where the allocator is
// not glibc's (a sanitizer's, for one).
HeapUsage read_heap_usage();

// Gives the free pages of every arena back to the system (malloc_trim), counted for /metrics,
// and reads the private resident memory then. Each arena is locked while it is walked: a
// millisecond or so, so not on a request path.
void trim_heap();

// heap_allocated_bytes, heap_free_bytes, private_resident_after_trim_bytes, heap_trims_total and
// heap_trim_microseconds_total. Between trims the private memory swings with what threads allocate
// and free (±10 % in kvtier-bench soak); right after one it is the footprint, and a leak raises it.
void visit_heap_counters(CounterVisitor& visitor);

// Trims the heap every `interval` on a thread of its own until destroyed.
class HeapTrimmer {
 public:
  explicit HeapTrimmer(std::chrono::milliseconds interval);
  ~HeapTrimmer();
  HeapTrimmer(const HeapTrimmer&) = delete;
  HeapTrimmer& operator=(const HeapTrimmer&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kvtier
