// ArenaExport: the node's host arena, registered with UCX once, so remote readers can ucp_get
// leased blocks straight out of it (docs/transport.md). It owns a worker and the thread that
// progresses it: transports without hardware RMA (TCP) emulate a get with messages the node's
// worker answers, and every transport needs the worker progressed to accept connections.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>

#include "kvtier/result.h"
#include "server/transport/ucx_worker.h"

namespace kvtier::transport {

class ArenaExport {
 public:
  // Registers `arena` (the daemon's own mapping of the host arena) and starts the progress thread.
  static Result<std::unique_ptr<ArenaExport>> start(std::span<uint8_t> arena);
  ~ArenaExport();  // stops serving: readers' gets fail from then on
  ArenaExport(const ArenaExport&) = delete;
  ArenaExport& operator=(const ArenaExport&) = delete;

  const std::string& worker_address() const { return worker_->address(); }
  const std::string& rkey() const { return rkey_; }  // packed: readers unpack it per endpoint
  uint64_t address() const { return reinterpret_cast<uint64_t>(arena_.data()); }
  uint64_t bytes() const { return arena_.size(); }
  uint64_t tcp_segment_bytes() const { return worker_->tcp_send_segment(); }

 private:
  ArenaExport() = default;
  void progress();

  std::unique_ptr<UcxWorker> worker_;
  std::span<uint8_t> arena_;
  ucp_mem_h memory_ = nullptr;
  std::string rkey_;
  int stop_fd_ = -1;  // an eventfd: written once to stop the progress thread
  std::thread progress_thread_;
};

}  // namespace kvtier::transport
