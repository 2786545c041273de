#include "index/process_membership.h"

#include <fmt/format.h>
#include <unistd.h>

#include "common/process_id.h"
#include "common/robust_mutex.h"

namespace kvtier::index {
namespace {

constexpr uint32_t state_value(ProcessState s) { return static_cast<uint32_t>(s); }

}  // namespace

ProcessMembership::ProcessMembership(std::shared_ptr<IndexSegment> seg, uint32_t slot)
    : seg_(std::move(seg)), slot_(slot), pid_(current_pid()) {}

// Claims a free slot under the writer lock; nullptr when every slot is taken.
Result<std::unique_ptr<ProcessMembership>> ProcessMembership::try_claim(const std::shared_ptr<IndexSegment>& seg) {
  IndexWriter writer(*seg);
  IndexWriter::Lock lock(writer);
  SegmentHeader& h = seg->header();
  const uint32_t busy = h.live_mask.load(std::memory_order_relaxed) | h.draining_mask.load(std::memory_order_relaxed);
  for (uint32_t p = 0; p < kMaxProcesses; ++p) {
    ProcessSlot& ps = seg->process(p);
    if ((busy & (1u << p)) != 0 || ps.state.load(std::memory_order_relaxed) != state_value(ProcessState::kFree)) {
      continue;
    }
    ps.state.store(state_value(ProcessState::kClaiming), std::memory_order_release);  // recovery frees it if we die
    KVTIER_RETURN_IF_ERROR(init_robust_mutex(&ps.liveness));
    ps.generation.fetch_add(1, std::memory_order_acq_rel);
    ps.pid = static_cast<uint32_t>(current_pid());
    ps.attached_at = seg->now_ticks();
    std::unique_ptr<ProcessMembership> m(new ProcessMembership(seg, p));
    m->generation_ = ps.generation.load(std::memory_order_acquire);
    m->start_keeper();
    ps.state.store(state_value(ProcessState::kLive), std::memory_order_release);
    h.live_mask.fetch_or(1u << p, std::memory_order_acq_rel);
    return m;
  }
  return std::unique_ptr<ProcessMembership>();
}

Result<std::unique_ptr<ProcessMembership>> ProcessMembership::join(const std::shared_ptr<IndexSegment>& seg) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto claimed = try_claim(seg);
    if (!claimed.ok() || *claimed) return claimed;
    reclaim_dead_processes(*seg, -1);  // full: dead processes may hold slots nobody reclaimed yet
  }
  return Status::resource_exhausted(
      fmt::format("index '{}' has all {} process slots in use by live processes", seg->name(), kMaxProcesses));
}

void ProcessMembership::start_keeper() {
  pthread_mutex_t* liveness = &seg_->process(slot_).liveness;
  keeper_ = new std::thread([this, liveness] {
    if (lock_robust(liveness) == LockOutcome::kOwnerDied) mark_consistent(liveness);
    std::unique_lock<std::mutex> lk(mu_);
    holding_ = true;
    cv_.notify_all();
    cv_.wait(lk, [this] { return stop_; });
    unlock_robust(liveness);
  });
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return holding_; });
}

void ProcessMembership::stop_keeper() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  keeper_->join();
  delete keeper_;
  keeper_ = nullptr;
}

void ProcessMembership::leave(bool pins_outstanding) {
  if (left_ || current_pid() != pid_) return;  // a forked child does not own its parent's slot
  left_ = true;
  // Release the liveness mutex before the slot is freed: a process that claims the slot
  // re-initialises that mutex, which must not happen while our keeper still holds it.
  stop_keeper();
  IndexWriter writer(*seg_);
  IndexWriter::Lock lock(writer);
  ProcessSlot& ps = seg_->process(slot_);
  // In the moment between, a maintainer may have judged us gone and reclaimed the slot already.
  if (ps.state.load(std::memory_order_acquire) != state_value(ProcessState::kLive) ||
      ps.generation.load(std::memory_order_acquire) != generation_) {
    return;
  }
  if (pins_outstanding) {
    writer.reclaim_process(slot_);
  } else {
    writer.drop_hbm_of_process(slot_);
    seg_->header().live_mask.fetch_and(~bit(), std::memory_order_acq_rel);
    ps.state.store(state_value(ProcessState::kFree), std::memory_order_release);
  }
}

ProcessMembership::~ProcessMembership() {
  if (current_pid() != pid_) return;  // forked child: the keeper thread is not ours to join
  leave(/*pins_outstanding=*/false);
}

// Under the writer lock throughout: slots are claimed (and their liveness mutexes initialised)
// only under it, so no probe here can meet a mutex being re-initialised. The probes never block.
uint32_t reclaim_dead_processes(IndexSegment& seg, int self_slot) {
  uint32_t reclaimed = 0;
  IndexWriter writer(seg);
  IndexWriter::Lock lock(writer);
  for (uint32_t p = 0; p < kMaxProcesses; ++p) {
    if (static_cast<int>(p) == self_slot) continue;
    ProcessSlot& ps = seg.process(p);
    const uint32_t state = ps.state.load(std::memory_order_acquire);
    bool dead = state == state_value(ProcessState::kDraining);  // an interrupted reclaim
    if (state == state_value(ProcessState::kLive)) {
      switch (try_lock_robust(&ps.liveness)) {
        case LockOutcome::kBusy: break;  // its keeper holds it: alive
        case LockOutcome::kOwnerDied:
          mark_consistent(&ps.liveness);
          unlock_robust(&ps.liveness);
          dead = true;
          break;
        case LockOutcome::kAcquired:  // nobody holds it: the owner is gone
          unlock_robust(&ps.liveness);
          dead = true;
          break;
      }
    }
    if (!dead) continue;
    writer.reclaim_process(p);
    ++reclaimed;
  }
  return reclaimed;
}

}  // namespace kvtier::index
