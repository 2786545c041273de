// The per-entry concurrency protocol (docs/index.md, "Concurrency").
//
// Readers: load ctl (acquire), copy the fields (acquire loads, so the re-check below cannot move
// above them; plain loads on x86), reload ctl; the copy is good if the version did not change
// and was even. No standalone fences: ThreadSanitizer checks exactly this protocol. Readers never write shared memory
// and never wait: after a bounded spin on an odd version (a writer that died mid-write) they give up on the slot.
//
// Writers (one at a time, under the writer lock): begin_write makes the version odd by CAS,
// freezing the pin bits; end_write makes it even again.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "index/segment_layout.h"

namespace kvtier::index {

template <typename T>
inline T load_relaxed(const T& field) {
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_relaxed);
}
template <typename T>
inline T load_acquire(const T& field) {
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_acquire);
}
template <typename T>
inline void store_relaxed(T& field, T value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_relaxed);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Calls fn(entry field, image field) for every data field: the one list of them, so loading and
// storing can never disagree about what an entry holds.
template <typename Entry, typename Image, typename Fn>
inline void for_each_field(Entry& e, Image& img, Fn&& fn) {
  fn(e.key_hi, img.key_hi);
  fn(e.key_lo, img.key_lo);
  fn(e.parent_lo, img.parent_lo);
  fn(e.ssd_loc, img.ssd_loc);
  fn(e.host_loc, img.host_loc);
  fn(e.hbm, img.hbm);
  fn(e.payload_bytes, img.payload_bytes);
  fn(e.last_access, img.last_access);
  fn(e.ns_id, img.ns_id);
  fn(e.child_count, img.child_count);
  fn(e.tiers, img.tiers);
  fn(e.freq, img.freq);
  fn(e.flags, img.flags);
}

// Relaxed for the writer (it is alone); acquire for readers validating with the seqlock.
template <std::memory_order Order = std::memory_order_relaxed>
inline void load_fields(const IndexEntry& e, EntryImage& out) {
  for_each_field(e, out, [](const auto& field, auto& copy) {
    using T = std::remove_cvref_t<decltype(field)>;
    copy = std::atomic_ref<T>(const_cast<T&>(field)).load(Order);
  });
}

inline void store_fields(IndexEntry& e, const EntryImage& in) {
  for_each_field(e, in, [](auto& field, const auto& value) { store_relaxed(field, value); });
}

// Spins a reader allows on one odd version before it treats the slot as unreadable.
inline constexpr int kReaderSpins = 256;

// A consistent snapshot of the entry; false if a writer held it odd for the whole spin budget.
inline bool read_entry(const IndexEntry& e, EntryImage& out, uint64_t& ctl_out) {
  for (int spin = 0; spin < kReaderSpins; ++spin) {
    const uint64_t c1 = e.ctl.load(std::memory_order_acquire);
    if (version_odd(c1)) {
      cpu_relax();
      continue;
    }
    load_fields<std::memory_order_acquire>(e, out);
    const uint64_t c2 = e.ctl.load(std::memory_order_relaxed);
    if (version_of(c1) == version_of(c2)) {
      ctl_out = c2;
      return true;
    }
  }
  return false;
}

// Writer side. Returns the ctl word as it was frozen (even version, exact pins).
inline uint64_t begin_write(IndexEntry& e) {
  uint64_t c = e.ctl.load(std::memory_order_relaxed);
  // A replayed journal may find the entry already odd (the dead writer's begin_write); keep it odd.
  while (!version_odd(c) && !e.ctl.compare_exchange_weak(c, c + kVersionUnit, std::memory_order_acq_rel)) {
  }
  return c;
}

inline void end_write(IndexEntry& e) { e.ctl.fetch_add(kVersionUnit, std::memory_order_release); }

// Replaces the pin bits of an entry the caller holds odd.
inline void set_pins_while_writing(IndexEntry& e, uint32_t pins) {
  uint64_t c = e.ctl.load(std::memory_order_relaxed);
  while (!e.ctl.compare_exchange_weak(c, (c & ~kPinMask) | pins, std::memory_order_acq_rel)) {
  }
}

}  // namespace kvtier::index
