// ServiceMetrics: what the gRPC services count (requests, errors, latencies, blocks asked and
// found per tier, bytes served), for the Admin service's stats and the Prometheus endpoint.
// Lock-free: every service thread bumps relaxed atomics; readers see a recent, not a frozen, view.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

#include <grpcpp/support/status.h>

#include "common/counter_visitor.h"
#include "kvtier/tier.h"

namespace kvtier::services {

// Request latencies in fixed buckets (Prometheus histogram: cumulative when exposed).
class LatencyHistogram {
 public:
  // Upper bounds in microseconds; a last, unbounded bucket (+Inf) follows.
  static constexpr std::array<uint64_t, 14> kBoundsUs = {25,   50,    100,   250,    500,    1000,    2500,
                                                         5000, 10000, 25000, 100000, 250000, 1000000, 10000000};

  void record(std::chrono::nanoseconds elapsed) {
    const auto us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
    size_t b = 0;
    while (b < kBoundsUs.size() && us > kBoundsUs[b]) ++b;
    counts_[b].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<uint64_t>(elapsed.count()), std::memory_order_relaxed);
  }
  uint64_t count(size_t bucket) const { return counts_[bucket].load(std::memory_order_relaxed); }
  double sum_seconds() const { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9; }

 private:
  std::array<std::atomic<uint64_t>, kBoundsUs.size() + 1> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

enum class Rpc : uint8_t {
  kMatchPrefix,
  kMatchPrefixBatch,
  kSubscribe,
  kSnapshot,
  kGetBlocks,
  kPutBlocks,
  kGetStats,
  kClearNamespace,
  kEvict,
  kReadBlocks,  // each OpenRead of a session: the lease RPC
};
inline constexpr size_t kNumRpcs = 10;
std::string_view rpc_name(Rpc rpc);  // "MatchPrefix", ...

struct RpcCounters {
  std::atomic<uint64_t> ok{0}, invalid{0}, denied{0}, failed{0};  // denied: PERMISSION_DENIED or UNAUTHENTICATED
  LatencyHistogram latency;  // unary calls: the whole call; streams: until the stream ends
};

// requests_total{rpc, outcome} for a service's methods (the node's, kvtier-indexer's Scheduler).
struct NamedRpcCounters {
  std::string_view rpc;
  const RpcCounters* counters = nullptr;
};
void visit_request_counters(CounterVisitor& visitor, std::span<const NamedRpcCounters> rpcs);

struct ServiceMetrics {
  std::array<RpcCounters, kNumRpcs> rpcs;
  // Locality and block requests: blocks asked, and blocks of the matched prefix found per tier.
  std::atomic<uint64_t> blocks_asked{0};
  std::array<std::atomic<uint64_t>, kNumTiers> tier_hits{};
  std::atomic<uint64_t> blocks_served{0}, bytes_served{0}, blocks_received{0}, bytes_received{0};
  std::atomic<uint64_t> blocks_leased{0}, bytes_leased{0};  // handed to UCX readers by ReadBlocks
  std::atomic<uint64_t> events_sent{0}, resyncs_sent{0};
  std::atomic<int64_t> subscribers{0};

  RpcCounters& of(Rpc rpc) { return rpcs[static_cast<size_t>(rpc)]; }
  const RpcCounters& of(Rpc rpc) const { return rpcs[static_cast<size_t>(rpc)]; }
  // Every counter but the latency histograms (which only the exposition format has a shape for).
  void visit_counters(CounterVisitor& visitor) const;
};

// Times one call and counts its outcome when it ends (RAII: every return path is counted).
class RpcTimer {
 public:
  RpcTimer(ServiceMetrics& metrics, Rpc rpc) : RpcTimer(metrics.of(rpc)) {}
  explicit RpcTimer(RpcCounters& counters) : counters_(counters), start_(std::chrono::steady_clock::now()) {}
  RpcTimer(const RpcTimer&) = delete;
  RpcTimer& operator=(const RpcTimer&) = delete;
  ~RpcTimer() {
    counters_.latency.record(std::chrono::steady_clock::now() - start_);
    (outcome_ == 0   ? counters_.ok
     : outcome_ == 1 ? counters_.invalid
     : outcome_ == 2 ? counters_.denied
                     : counters_.failed)
        .fetch_add(1, std::memory_order_relaxed);
  }
  // The outcome from the call's status: INVALID_ARGUMENT counts as invalid, a refusal for want of
  // a role as denied, other errors as failed. Returns the status unchanged, so handlers can
  // `return timer.done(status)`.
  grpc::Status done(grpc::Status status) {
    const grpc::StatusCode code = status.error_code();
    outcome_ = status.ok()                                                                                ? 0
               : code == grpc::StatusCode::INVALID_ARGUMENT                                               ? 1
               : code == grpc::StatusCode::PERMISSION_DENIED || code == grpc::StatusCode::UNAUTHENTICATED ? 2
                                                                                                          : 3;
    return status;
  }

 private:
  RpcCounters& counters_;
  std::chrono::steady_clock::time_point start_;
  int outcome_ = 0;
};

}  // namespace kvtier::services
