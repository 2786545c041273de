#include "server/transport/read_leases.h"

#include <array>

namespace kvtier::transport {

ReadLeases::ReadLeases(uint32_t max_leases) : max_leases_(max_leases), reaper_([this] { reap(); }) {}

ReadLeases::~ReadLeases() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  reaper_.join();
}

Result<uint64_t> ReadLeases::grant(uint64_t session, std::vector<HostBlock> blocks, std::chrono::milliseconds ttl) {
  std::unique_lock lock(mu_);
  if (leases_.size() >= max_leases_) {
    lock.unlock();
    refused_.fetch_add(1, std::memory_order_relaxed);
    return Status::resource_exhausted(
        "the node holds server.ucx.max_leases read leases; release some, or wait for readers to finish");
  }
  const uint64_t id = next_lease_++;
  const Clock::time_point deadline = Clock::now() + ttl;
  const bool earliest = leases_.empty() || deadline < leases_.begin()->second.deadline;
  leased_blocks_ += blocks.size();
  leases_.emplace(id, Lease{session, deadline, std::move(blocks)});
  granted_.fetch_add(1, std::memory_order_relaxed);
  lock.unlock();
  if (earliest) wake_.notify_one();
  return id;
}

bool ReadLeases::release(uint64_t session, uint64_t lease) {
  std::vector<HostBlock> unpinned;  // released outside the lock
  {
    std::lock_guard lock(mu_);
    auto it = leases_.find(lease);
    if (it == leases_.end() || it->second.session != session) return false;
    unpinned = std::move(it->second.blocks);
    leased_blocks_ -= unpinned.size();
    leases_.erase(it);
  }
  released_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

template <typename Ends>
size_t ReadLeases::end_leases_if(Ends ends, std::atomic<uint64_t>& counter) {
  std::vector<std::vector<HostBlock>> unpinned;  // released after the lock
  {
    std::lock_guard lock(mu_);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (ends(it->second)) {
        leased_blocks_ -= it->second.blocks.size();
        unpinned.push_back(std::move(it->second.blocks));
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
  }
  counter.fetch_add(unpinned.size(), std::memory_order_relaxed);
  return unpinned.size();
}

size_t ReadLeases::end_session(uint64_t session) {
  return end_leases_if([session](const Lease& l) { return l.session == session; }, session_ended_);
}

size_t ReadLeases::expire(Clock::time_point now) {
  return end_leases_if([now](const Lease& l) { return l.deadline <= now; }, expired_);
}

// Sleeps until the earliest deadline (a scan per wake: leases are few, and this is off every
// reader's path).
void ReadLeases::reap() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    Clock::time_point next = Clock::now() + std::chrono::seconds(1);
    for (const auto& [id, lease] : leases_) next = std::min(next, lease.deadline);
    wake_.wait_until(lock, next);
    if (stopping_) break;
    lock.unlock();
    (void)expire(Clock::now());
    lock.lock();
  }
  std::map<uint64_t, Lease> rest = std::move(leases_);  // unpinned when `rest` goes, after the lock
  leases_.clear();
  leased_blocks_ = 0;
  lock.unlock();
}

size_t ReadLeases::open() const {
  std::lock_guard lock(mu_);
  return leases_.size();
}

void ReadLeases::visit_counters(CounterVisitor& v) const {
  size_t open = 0, blocks = 0;
  {
    std::lock_guard lock(mu_);
    open = leases_.size();
    blocks = leased_blocks_;
  }
  constexpr auto kRelaxed = std::memory_order_relaxed;
  const std::array<LabelledCount, 4> ends = {{{R"(end="released")", released_.load(kRelaxed)},
                                              {R"(end="session_ended")", session_ended_.load(kRelaxed)},
                                              {R"(end="expired")", expired_.load(kRelaxed)},
                                              {R"(end="refused")", refused_.load(kRelaxed)}}};
  v.counter("read_leases_granted_total", "Read leases granted to remote (UCX) readers.", granted_.load(kRelaxed));
  v.counters("read_leases_ended_total",
             "Read leases by how they ended: released by the reader, with its session (reader finished or died), "
             "expired; refused: over server.ucx.max_leases.",
             ends);
  v.gauge("read_leases_open", "Read leases held now.", static_cast<double>(open));
  v.gauge("read_leased_blocks", "Blocks pinned by read leases now.", static_cast<double>(blocks));
}

}  // namespace kvtier::transport
