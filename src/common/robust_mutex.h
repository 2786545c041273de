// Process-shared robust pthread mutexes: when an owner dies, the next locker is told (EOWNERDEAD)
// instead of waiting forever.
#pragma once

#include <pthread.h>

#include "kvtier/status.h"

namespace kvtier {

Status init_robust_mutex(pthread_mutex_t* m);

enum class LockOutcome {
  kAcquired,   // the lock is ours; the state it protects is consistent
  kOwnerDied,  // the lock is ours; the previous owner died holding it: repair, then mark_consistent
  kBusy,       // (try_lock only) someone alive holds it
};

// Blocks until acquired. Aborts only on an unrecoverable mutex (a kvtier bug).
LockOutcome lock_robust(pthread_mutex_t* m);
LockOutcome try_lock_robust(pthread_mutex_t* m);
void mark_consistent(pthread_mutex_t* m);
void unlock_robust(pthread_mutex_t* m);

}  // namespace kvtier
