#include "server/transport/arena_export.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>

namespace kvtier::transport {

Result<std::unique_ptr<ArenaExport>> ArenaExport::start(std::span<uint8_t> arena) {
  std::unique_ptr<ArenaExport> e(new ArenaExport());
  KVTIER_ASSIGN_OR_RETURN(e->worker_, UcxWorker::open(UcxWorker::Threads::kOne));
  e->arena_ = arena;
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  mp.address = arena.data();
  mp.length = arena.size();
  if (ucs_status_t s = ucp_mem_map(e->worker_->context(), &mp, &e->memory_); s != UCS_OK) {
    return ucx_error(s, "registering the host arena with UCX");
  }
  void* packed = nullptr;
  size_t packed_size = 0;
  if (ucs_status_t s = ucp_rkey_pack(e->worker_->context(), e->memory_, &packed, &packed_size); s != UCS_OK) {
    return ucx_error(s, "packing the host arena's remote key");
  }
  e->rkey_.assign(static_cast<const char*>(packed), packed_size);
  ucp_rkey_buffer_release(packed);
  e->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->stop_fd_ < 0) return Status::io_error("eventfd for the UCX progress thread");
  ArenaExport* raw = e.get();
  e->progress_thread_ = std::thread([raw] { raw->progress(); });
  return e;
}

// Busy while there is work and for a short spin after it (a reader's next get usually follows
// within microseconds; sleeping between them would add a wake-up to each), then sleeps on the
// worker's event fd.
void ArenaExport::progress() {
  constexpr auto kSpin = std::chrono::microseconds(50);
  ucp_worker_h w = worker_->worker();
  pollfd fds[2] = {{worker_->event_fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    auto idle_since = std::chrono::steady_clock::now();
    for (;;) {
      if (ucp_worker_progress(w) != 0) {
        idle_since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - idle_since > kSpin) {
        break;
      }
    }
    const ucs_status_t armed = ucp_worker_arm(w);
    if (armed == UCS_ERR_BUSY) continue;  // events came in meanwhile: progress them first
    fds[0].revents = fds[1].revents = 0;
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR
    if ((fds[1].revents & POLLIN) != 0) return;
  }
}

ArenaExport::~ArenaExport() {
  if (progress_thread_.joinable()) {
    const uint64_t one = 1;
    (void)::write(stop_fd_, &one, sizeof(one));
    progress_thread_.join();
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
  if (memory_ != nullptr) ucp_mem_unmap(worker_->context(), memory_);
}

}  // namespace kvtier::transport
