#include "common/robust_mutex.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

namespace kvtier {
namespace {

[[noreturn]] void die(const char* what, int err) {
  // A robust mutex only becomes unusable if someone unlocked it without repairing the state it
  // guards; continuing would serve corrupt data, so stop loudly.
  std::fprintf(stderr, "kvtier: %s: %s\n", what, std::generic_category().message(err).c_str());
  std::abort();
}

LockOutcome classify(int rc, const char* what) {
  switch (rc) {
    case 0: return LockOutcome::kAcquired;
    case EOWNERDEAD: return LockOutcome::kOwnerDied;
    case EBUSY: return LockOutcome::kBusy;
    default: die(what, rc);
  }
}

}  // namespace

Status init_robust_mutex(pthread_mutex_t* m) {
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc == 0) rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) return Status::internal("initialising a robust mutex: " + std::generic_category().message(rc));
  return {};
}

LockOutcome lock_robust(pthread_mutex_t* m) { return classify(pthread_mutex_lock(m), "locking a robust mutex"); }
LockOutcome try_lock_robust(pthread_mutex_t* m) { return classify(pthread_mutex_trylock(m), "trying a robust mutex"); }

void mark_consistent(pthread_mutex_t* m) {
  const int rc = pthread_mutex_consistent(m);
  if (rc != 0) die("marking a robust mutex consistent", rc);
}

void unlock_robust(pthread_mutex_t* m) {
  const int rc = pthread_mutex_unlock(m);
  if (rc != 0) die("unlocking a robust mutex", rc);
}

}  // namespace kvtier
