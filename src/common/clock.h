// Clock: the steady time the node's time-based decisions read (an SSD tier's backoff after a full
// disk and its idle-region flush, the admission filter's write budget, the daemon's upkeep
// cadence, the indexer's grace period for an unreachable node, the vLLM publisher's patience for a
// token record), taken from the options so a test can move time itself instead of sleeping.
// Bounded waits on condition variables and futexes, latency timers, gRPC deadlines and wall-clock
// timestamps keep the real clocks: they are waits and measurements, not decisions.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kvtier {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
};

// std::chrono::steady_clock.
const Clock& steady_clock();
// `clock`, or the steady clock when it is null (what the options hold by default).
inline const Clock& clock_or_steady(const Clock* clock) { return clock != nullptr ? *clock : steady_clock(); }

// Time that moves only when told (tests). Starts at the steady clock's now. Thread-safe.
class ManualClock final : public Clock {
 public:
  ManualClock() : ns_(std::chrono::steady_clock::now().time_since_epoch().count()) {}
  time_point now() const override { return time_point(std::chrono::steady_clock::duration(ns_.load())); }
  void advance(std::chrono::steady_clock::duration d) { ns_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> ns_;
};

}  // namespace kvtier
