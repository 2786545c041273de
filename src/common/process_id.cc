#include "common/process_id.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>

namespace kvtier {
namespace {

std::atomic<pid_t> cached_pid{0};

void refresh_after_fork() { cached_pid.store(::getpid(), std::memory_order_relaxed); }

// Registered once, at first use; the handler keeps the cache right in every forked child.
pid_t init_cache() {
  ::pthread_atfork(nullptr, nullptr, refresh_after_fork);
  refresh_after_fork();
  return cached_pid.load(std::memory_order_relaxed);
}

}  // namespace

pid_t current_pid() {
  static const pid_t registered = init_cache();
  (void)registered;
  return cached_pid.load(std::memory_order_relaxed);
}

}  // namespace kvtier
