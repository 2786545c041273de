#include "common/process_heap.h"

#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kvtier {
namespace {

// Process-wide, as the heap is.
std::atomic<uint64_t> g_trims{0};
std::atomic<uint64_t> g_trim_ns{0};
std::atomic<uint64_t> g_resident_after_trim{0};

// RssAnon of /proc/self/status in bytes (0 if unreadable): the private pages resident now.
uint64_t private_resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "re");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "RssAnon:", 8) == 0) {
      kib = std::strtoull(line + 8, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kib << 10;
}

}  // namespace

HeapUsage read_heap_usage() {
  HeapUsage u;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 m = ::mallinfo2();
  u.allocated_bytes = m.uordblks + m.hblkhd;
  u.free_bytes = m.fordblks;
#endif
  return u;
}

void trim_heap() {
  const auto start = std::chrono::steady_clock::now();
#if defined(__GLIBC__)
  (void)::malloc_trim(0);
#endif
  const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
  g_trim_ns.fetch_add(static_cast<uint64_t>(took.count()), std::memory_order_relaxed);
  g_trims.fetch_add(1, std::memory_order_relaxed);
  g_resident_after_trim.store(private_resident_bytes(), std::memory_order_relaxed);
}

void visit_heap_counters(CounterVisitor& visitor) {
  const HeapUsage u = read_heap_usage();
  visitor.gauge("heap_allocated_bytes", "Bytes in the process's live heap allocations (malloc's count).",
                static_cast<double>(u.allocated_bytes));
  visitor.gauge("heap_free_bytes",
                "Bytes the process freed that malloc keeps for reuse (resident until a trim gives their pages back).",
                static_cast<double>(u.free_bytes));
  visitor.gauge("private_resident_after_trim_bytes",
                "The process's private resident memory right after the last heap trim: its footprint without the freed "
                "memory malloc keeps between trims (0 before the first).",
                static_cast<double>(g_resident_after_trim.load(std::memory_order_relaxed)));
  visitor.counter("heap_trims_total", "Times the process gave its heap's free pages back to the system.",
                  g_trims.load(std::memory_order_relaxed));
  visitor.counter("heap_trim_microseconds_total", "Time spent giving the heap's free pages back.",
                  g_trim_ns.load(std::memory_order_relaxed) / 1000);
}

HeapTrimmer::HeapTrimmer(std::chrono::milliseconds interval) {
  thread_ = std::thread([this, interval] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      trim_heap();
      lock.lock();
    }
  });
}

HeapTrimmer::~HeapTrimmer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace kvtier
