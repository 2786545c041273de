// Lock-free lookups: plain loads from the mapped segment, no writes to shared memory, no waiting
// (docs/index.md, "Concurrency").
#pragma once

#include <cstdint>
#include <span>

#include "index/entry_access.h"
#include "index/index_segment.h"
#include "kvtier/block_index.h"

namespace kvtier::index {

enum class ProbeOutcome : uint8_t { kFound, kAbsent, kUnreadable };

struct Probe {
  ProbeOutcome outcome = ProbeOutcome::kAbsent;
  uint64_t slot = kNoSlot;
  uint64_t ctl = 0;
  uint8_t tiers = 0;
};

// Reads only what a probe needs (ctl, key, tiers) under the seqlock.
inline bool read_key(const IndexEntry& e, uint64_t& hi, uint64_t& lo, uint8_t& tiers, uint64_t& ctl) {
  for (int spin = 0; spin < kReaderSpins; ++spin) {
    const uint64_t c1 = e.ctl.load(std::memory_order_acquire);
    if (version_odd(c1)) {
      cpu_relax();
      continue;
    }
    hi = load_acquire(e.key_hi);
    lo = load_acquire(e.key_lo);
    tiers = load_acquire(e.tiers);
    const uint64_t c2 = e.ctl.load(std::memory_order_relaxed);
    if (version_of(c1) == version_of(c2)) {
      ctl = c2;
      return true;
    }
  }
  return false;
}

// Walks the key's probe run over the tags, reading an entry only where the tag matches. A slot a
// dead writer left mid-write is skipped (it may hold any key), and then reaching an empty tag
// answers "unreadable" rather than "absent".
inline Probe probe_key(const IndexSegment& seg, const BlockKey& key) {
  Probe p;
  bool skipped = false;
  const uint8_t want = tag_of(key.hi);
  uint64_t s = seg.home(key.lo);
  for (uint64_t n = 0; n < seg.slots(); ++n, s = seg.next(s)) {
    const uint8_t tag = load_acquire(seg.tag(s));
    if (tag == 0) break;
    if (tag != want) continue;
    uint64_t hi = 0, lo = 0, ctl = 0;
    uint8_t tiers = 0;
    if (!read_key(seg.entry(s), hi, lo, tiers, ctl)) {
      skipped = true;
      continue;
    }
    if (tiers != 0 && lo == key.lo && hi == key.hi) {
      p.outcome = ProbeOutcome::kFound;
      p.slot = s;
      p.ctl = ctl;
      p.tiers = tiers;
      return p;
    }
  }
  p.outcome = skipped ? ProbeOutcome::kUnreadable : ProbeOutcome::kAbsent;
  return p;
}

inline void prefetch_tag(const IndexSegment& seg, const BlockKey& key) {
  __builtin_prefetch(&seg.tag(seg.home(key.lo)), 0, 3);
}
// Reads the (by now cached) tags of the key's run and prefetches the entry whose tag matches:
// the slot a hit will read, which at 75% load is often not the home slot.
inline void prefetch_entry(const IndexSegment& seg, const BlockKey& key) {
  constexpr int kMaxScan = 16;
  const uint8_t want = tag_of(key.hi);
  uint64_t s = seg.home(key.lo);
  for (int n = 0; n < kMaxScan; ++n, s = seg.next(s)) {
    const uint8_t tag = load_relaxed(seg.tag(s));
    if (tag == want) {
      __builtin_prefetch(&seg.entry(s), 0, 3);
      return;
    }
    if (tag == 0) return;  // a miss: no entry will be read
  }
}

// A probe that came up empty is only a miss if no backward shift ran meanwhile (a shift can
// move the key across the reader's path). Bounded: after a few tries the answer is "miss".
template <typename ProbeFn>
inline Probe probe_confirmed(const IndexSegment& seg, const BlockKey& key, uint64_t& shift_seen, uint64_t& probes,
                             ProbeFn probe) {
  const auto& shift_seq = seg.header().shift_seq.value;
  Probe p = probe(seg, key);
  ++probes;
  for (int retry = 0; retry < 4 && p.outcome != ProbeOutcome::kFound; ++retry) {
    const uint64_t now = shift_seq.load(std::memory_order_acquire);
    if (p.outcome == ProbeOutcome::kAbsent && now == shift_seen && (now & 1) == 0) break;
    shift_seen = now;
    for (int spin = 0; (shift_seen & 1) != 0 && spin < 64; ++spin) {
      cpu_relax();
      shift_seen = shift_seq.load(std::memory_order_acquire);
    }
    p = probe(seg, key);
    ++probes;
  }
  return p;
}

// Longest resident prefixes of a key chain, software-pipelined: tag lines are prefetched 16 keys
// ahead; 6 keys ahead those tags are read to prefetch the one entry line a hit will touch; so the
// memory misses of consecutive probes overlap instead of queueing.
inline PrefixMatch match_prefix(const IndexSegment& seg, std::span<const BlockKey> keys, uint64_t& probes) {
  constexpr size_t kTagsAhead = 16;
  constexpr size_t kEntriesAhead = 6;
  PrefixMatch m;
  bool run[kNumTiers] = {true, true, true};
  uint64_t shift_seen = seg.header().shift_seq.value.load(std::memory_order_acquire);
  for (size_t i = 0; i < keys.size() && i < kTagsAhead; ++i) prefetch_tag(seg, keys[i]);
  for (size_t i = 0; i < keys.size() && i < kEntriesAhead; ++i) prefetch_entry(seg, keys[i]);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i + kTagsAhead < keys.size()) prefetch_tag(seg, keys[i + kTagsAhead]);
    if (i + kEntriesAhead < keys.size()) prefetch_entry(seg, keys[i + kEntriesAhead]);
    const Probe p = probe_confirmed(seg, keys[i], shift_seen, probes, probe_key);
    if (p.outcome != ProbeOutcome::kFound) break;
    m.overall = i + 1;
    for (Tier t : kAllTiers) {
      const size_t ti = tier_index(t);
      run[ti] = run[ti] && (p.tiers & tier_bit(t)) != 0;
      if (run[ti]) m.per_tier[ti] = i + 1;
    }
  }
  return m;
}

}  // namespace kvtier::index
