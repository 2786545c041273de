// Named points inside writer operations where a test can kill the process, so every crash
// window of the journal protocol is exercised deterministically (tests/index). Production code
// never sets a hook; the check is one predictable branch on the writer path, none on readers.
#pragma once

#include <atomic>

namespace kvtier::index {

using CrashHook = void (*)(const char* point);

inline std::atomic<CrashHook>& crash_hook() {
  static std::atomic<CrashHook> hook{nullptr};
  return hook;
}

inline void crash_point(const char* point) {
  if (CrashHook h = crash_hook().load(std::memory_order_relaxed)) h(point);
}

// For tests: called at every crash point with its name.
inline void set_crash_hook_for_testing(CrashHook hook) { crash_hook().store(hook, std::memory_order_relaxed); }

}  // namespace kvtier::index
