#include "events/event_log.h"
#include "index/index_mechanics.h"

#include <algorithm>
#include <random>

namespace kvtier::events {
namespace {

uint64_t now_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// Distinct across restarts of one node and across nodes: the start time in microseconds, with
// random low bits so two starts in the same microsecond still differ.
uint64_t new_epoch() {
  std::random_device rd;
  return (now_us() << 8) | (rd() & 0xFF);
}

}  // namespace

EventLog::EventLog(BlockIndex& index, EventLogOptions options)
    : index_(index), options_(std::move(options)), epoch_(new_epoch()) {
  ring_.resize(std::max<uint32_t>(options_.ring_events, 1));
  index_cursor_ = index_.stats().change_seq;
}

size_t EventLog::poll() {
  std::array<IndexChange, 1024> batch;
  size_t added = 0;
  for (;;) {
    uint64_t next = 0;
    bool lost = false;
    const size_t n = index::IndexMechanics::read_changes(index_, index_cursor_, batch, &next, &lost);
    const uint64_t ts = now_us();
    {
      std::lock_guard lock(mu_);
      ++stats_.polls;
      if (lost) {
        // The index's ring lapped us: changes are missing between the last event and the next.
        ++stats_.index_gaps;
        resync_before_ = next_seq_ + 1;
      }
      for (size_t i = 0; i < n; ++i) {
        const IndexChange& c = batch[i];
        Event& e = ring_[next_seq_ % ring_.size()];
        e = Event{next_seq_,
                  ts,
                  static_cast<Event::Kind>(c.kind),
                  c.key,
                  c.parent_lo,
                  c.namespace_id,
                  c.payload_bytes,
                  c.tiers_before,
                  c.tiers_after};
        ++next_seq_;
      }
      stats_.events += n;
      index_cursor_ = next;
    }
    added += n;
    if (n < batch.size()) break;  // caught up
  }
  if (added > 0) grew_.notify_all();
  return added;
}

EventRead EventLog::read(uint64_t from_seq, size_t max_events) const {
  EventRead r;
  std::lock_guard lock(mu_);
  const uint64_t oldest = next_seq_ > ring_.size() ? next_seq_ - ring_.size() : 0;
  if (from_seq < oldest || from_seq < resync_before_ || from_seq > next_seq_) {
    r.resync = true;
    r.next_seq = next_seq_;
    ++stats_.resyncs_served;
    return r;
  }
  const uint64_t end = std::min(next_seq_, from_seq + max_events);
  r.events.reserve(end - from_seq);
  for (uint64_t s = from_seq; s < end; ++s) r.events.push_back(ring_[s % ring_.size()]);
  r.next_seq = end;
  return r;
}

bool EventLog::wait_for(uint64_t seq, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return grew_.wait_for(lock, timeout, [&] { return next_seq_ > seq; });
}

Snapshot EventLog::snapshot() const {
  Snapshot snap;
  snap.epoch = epoch_;
  // Events from here on are what the scan may miss; re-applying one it already saw is harmless.
  snap.as_of_seq = next_seq();
  index_.for_each_block([&](const BlockInfo& b) {
    for (Tier t : kAllTiers) {
      if (b.in(t)) snap.keys[tier_index(t)].push_back(b.key);
    }
  });
  return snap;
}

uint64_t EventLog::next_seq() const {
  std::lock_guard lock(mu_);
  return next_seq_;
}

EventLogStats EventLog::stats() const {
  std::lock_guard lock(mu_);
  EventLogStats s = stats_;
  s.next_seq = next_seq_;
  s.oldest_seq = next_seq_ > ring_.size() ? next_seq_ - ring_.size() : 0;
  return s;
}

void EventLog::visit_counters(CounterVisitor& v) const {
  const EventLogStats s = stats();
  v.counter("events_total", "Residency events logged in this epoch.", s.events);
  v.gauge("event_next_seq", "The sequence number the next event gets.", static_cast<double>(s.next_seq));
}

}  // namespace kvtier::events
