#include "load/load_queue.h"

#include <fmt/format.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <ctime>

#include "common/robust_mutex.h"
#include "common/shared_segment.h"
#include "common/versioned_segment.h"

namespace kvtier {
namespace {

constexpr uint64_t kMagic = 0x6b76746c6f616471ULL;  // "kvtloadq"
constexpr uint32_t kVersion = 3;

// Process-shared futex (no FUTEX_PRIVATE_FLAG: waiters are in other processes).
void futex_wait(const std::atomic<uint32_t>* word, uint32_t expected, std::chrono::milliseconds timeout) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
  syscall(SYS_futex, reinterpret_cast<const uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}
void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace

struct LoadQueue::Header {
  uint64_t magic;
  uint32_t version;
  uint32_t capacity;
  pthread_mutex_t lock;     // guards head and tail
  pthread_mutex_t serving;  // held by the daemon serving loads
  uint64_t head;            // next to pop
  uint64_t tail;            // next to push
  std::atomic<uint32_t> requests;
  std::atomic<uint32_t> completions;
  std::atomic<uint32_t> room_requests;
  std::atomic<uint32_t> room_passes;
  std::atomic<uint64_t> pushed;
  std::atomic<uint64_t> refused;
  std::atomic<uint64_t> handled;  // keys before this ring position are handled
};

namespace {

constexpr SegmentFormat kFormat{"load queue", kMagic, kVersion, kVersion, sizeof(LoadQueue::Header)};
// The daemon creates the queue at start; a client attaching meanwhile waits this long for it.
constexpr auto kCreatorWait = std::chrono::seconds(1);

}  // namespace

LoadQueue::LoadQueue(std::unique_ptr<SharedSegment> seg) : seg_(std::move(seg)) {}
LoadQueue::~LoadQueue() { stop_serving(); }

LoadQueue::Header& LoadQueue::header() const { return *static_cast<Header*>(seg_->address()); }
BlockKey* LoadQueue::ring() const {
  return reinterpret_cast<BlockKey*>(static_cast<uint8_t*>(seg_->address()) + round_up(sizeof(Header), 64));
}

Result<std::unique_ptr<LoadQueue>> LoadQueue::attach(const std::string& name) {
  KVTIER_ASSIGN_OR_RETURN(AttachedSegment attached, attach_segment(name, kFormat, kCreatorWait));
  const auto* h = static_cast<const Header*>(attached.segment->address());
  if (attached.segment->size() < round_up(sizeof(Header), 64) + uint64_t{h->capacity} * sizeof(BlockKey)) {
    return Status::corruption(fmt::format("load queue '{}' is smaller than its {} keys", name, h->capacity));
  }
  return std::unique_ptr<LoadQueue>(new LoadQueue(std::move(attached.segment)));
}

Result<std::unique_ptr<LoadQueue>> LoadQueue::open_or_create(const std::string& name, uint32_t capacity) {
  if (capacity == 0) return Status::invalid_argument("load queue capacity must be positive");
  auto attached = attach(name);
  if (attached.status().code() == StatusCode::kUnavailable) {
    KVTIER_RETURN_IF_ERROR(destroy(name));  // its creator died before publishing it: nothing in it
  } else if (attached.ok() || attached.status().code() != StatusCode::kNotFound) {
    return attached;
  }
  auto seg = create_segment(name, round_up(sizeof(Header), 64) + uint64_t{capacity} * sizeof(BlockKey), kFormat);
  if (!seg.ok()) return seg.status();
  auto* h = static_cast<Header*>((*seg)->address());
  KVTIER_RETURN_IF_ERROR(init_robust_mutex(&h->lock));
  KVTIER_RETURN_IF_ERROR(init_robust_mutex(&h->serving));
  h->capacity = capacity;
  publish_segment(**seg, kFormat);
  return std::unique_ptr<LoadQueue>(new LoadQueue(std::move(seg).value()));
}

Status LoadQueue::destroy(const std::string& name) { return SharedSegment::destroy(name); }

Result<uint64_t> LoadQueue::push(std::span<const BlockKey> keys) {
  Header& h = header();
  if (lock_robust(&h.lock) == LockOutcome::kOwnerDied) mark_consistent(&h.lock);  // head/tail are single words
  const bool fits = h.tail - h.head + keys.size() <= h.capacity;
  if (fits) {
    for (const BlockKey& k : keys) ring()[h.tail++ % h.capacity] = k;
  }
  const uint64_t ticket = h.tail;
  unlock_robust(&h.lock);
  if (!fits) {
    h.refused.fetch_add(1, std::memory_order_relaxed);
    return Status::resource_exhausted(fmt::format("the node's load queue is full ({} keys)", h.capacity));
  }
  h.pushed.fetch_add(keys.size(), std::memory_order_relaxed);
  h.requests.fetch_add(1, std::memory_order_release);
  futex_wake_all(&h.requests);
  return ticket;
}

uint64_t LoadQueue::handled_through() const { return header().handled.load(std::memory_order_acquire); }

size_t LoadQueue::pop(std::span<BlockKey> out, uint64_t* end) {
  Header& h = header();
  if (lock_robust(&h.lock) == LockOutcome::kOwnerDied) mark_consistent(&h.lock);
  size_t n = 0;
  while (n < out.size() && h.head < h.tail) out[n++] = ring()[h.head++ % h.capacity];
  *end = h.head;
  unlock_robust(&h.lock);
  return n;
}

bool LoadQueue::served() const {
  Header& h = header();
  const LockOutcome o = try_lock_robust(&h.serving);
  if (o == LockOutcome::kBusy) return true;
  if (o == LockOutcome::kOwnerDied) mark_consistent(&h.serving);
  unlock_robust(&h.serving);
  return false;
}

Status LoadQueue::start_serving() {
  Header& h = header();
  const LockOutcome o = try_lock_robust(&h.serving);
  if (o == LockOutcome::kBusy) return Status::already_exists("another process serves this node's loads");
  if (o == LockOutcome::kOwnerDied) mark_consistent(&h.serving);
  serving_ = true;
  return {};
}

void LoadQueue::stop_serving() {
  if (!serving_) return;
  serving_ = false;
  unlock_robust(&header().serving);
}

uint32_t LoadQueue::requests() const { return header().requests.load(std::memory_order_acquire); }
uint32_t LoadQueue::completions() const { return header().completions.load(std::memory_order_acquire); }

void LoadQueue::wait_for_requests(uint32_t seen, std::chrono::milliseconds timeout) const {
  if (requests() == seen) futex_wait(&header().requests, seen, timeout);
}

void LoadQueue::wait_for_completion(uint32_t seen, std::chrono::milliseconds timeout) const {
  if (completions() == seen) futex_wait(&header().completions, seen, timeout);
}

void LoadQueue::request_room() {
  Header& h = header();
  h.room_requests.fetch_add(1, std::memory_order_release);
  futex_wake_all(&h.room_requests);
}

uint32_t LoadQueue::room_passes() const { return header().room_passes.load(std::memory_order_acquire); }
uint32_t LoadQueue::room_requests() const { return header().room_requests.load(std::memory_order_acquire); }

void LoadQueue::wait_for_room(uint32_t seen, std::chrono::milliseconds timeout) const {
  if (room_passes() == seen) futex_wait(&header().room_passes, seen, timeout);
}

void LoadQueue::wait_for_room_request(uint32_t seen, std::chrono::milliseconds timeout) const {
  if (room_requests() == seen) futex_wait(&header().room_requests, seen, timeout);
}

void LoadQueue::room_made() {
  Header& h = header();
  h.room_passes.fetch_add(1, std::memory_order_release);
  futex_wake_all(&h.room_passes);
}

void LoadQueue::complete(uint64_t end) {
  Header& h = header();
  h.handled.store(end, std::memory_order_release);
  h.completions.fetch_add(1, std::memory_order_release);
  futex_wake_all(&h.completions);
}

}  // namespace kvtier
