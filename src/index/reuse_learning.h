// Reuse learning: the index's own record of how long blocks of each kind take to be used again,
// and from it the hit density of a cached block — the hits it can be expected to give per tick it
// stays — which the "hit-density" eviction policy ranks by (docs/index.md#eviction).
//
// A block's class is its use count (1 to 6+); its age, the ticks since its last use. Two kinds of
// evidence, per class and age bucket:
//   - returned: a cached block used again at that age (counted by the acquiring process, relaxed,
//     without the writer lock, and only while the node's recorded policy is hit-density: a shared
//     write on every acquisition is not paid for a policy that does not read it), or an evicted
//     block inserted again while its ghost cell remembered it (counted by the writer): what
//     keeping a block that long would have earned;
//   - forgotten: a ghost cell overwritten before its block returned, at the age it had then.
// Ghost returns are what let the index see past its own evictions: a policy that only counts its
// own hits never learns what it evicted too soon (LHD, Beckmann et al., NSDI'18, has that blind spot).
//
// Every 2 × (live entries) inserts, at least 1024 (two turnovers of the cache), the writer
// recomputes each class's densities from the counts and halves them, so the last few turnovers
// weigh most. The return ages form a survival estimate (Kaplan-Meier: a forgotten block had not
// come back by its age, and says nothing after); a return later than four turnovers counts as none,
// as holding a block that long is out of the cache's reach. A block of age a then has the returns
// still ahead of it over the ticks it would stay for them: LHD's hit density, with the reuse
// distances the ghosts reveal in place of those the policy's own evictions leave. Densities never
// rise with age within a class, so the policy never prefers a block just written to an older one
// of its kind.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>

#include "index/segment_layout.h"

namespace kvtier::index {

// Ages 0..7 a bucket each, then four buckets per octave.
constexpr uint32_t age_bucket(uint32_t age) {
  if (age < 8) return age;
  const auto octave = static_cast<uint32_t>(std::bit_width(age)) - 1;  // 3..31
  const uint32_t quarter = (age >> (octave - 2)) & 3;
  return std::min(8 + 4 * (octave - 3) + quarter, kAgeBuckets - 1);
}

// The age a bucket stands for: its middle.
double age_bucket_middle(uint32_t bucket);

constexpr uint32_t reuse_class(uint8_t uses) {
  return std::min<uint32_t>(std::max<uint32_t>(uses, 1), kReuseClasses) - 1;
}

// Counts are kept in sixteenths, so halving them leaves the fractions a rare age's few events need.
inline constexpr uint32_t kEventWeight = 16;

// A block used `uses` times so far, last `age` ticks ago, is used again. Any process, any time;
// `weight` events of kEventWeight each.
inline void observe_return(ReuseLearning* learning, uint8_t uses, uint32_t age, uint32_t weight = 1) {
  if (learning == nullptr) return;
  std::atomic_ref<uint32_t>(learning->returned[reuse_class(uses)][age_bucket(age)])
      .fetch_add(weight * kEventWeight, std::memory_order_relaxed);
}

// Acquisitions count the returns of one block in kAcquireSample (by a few of its key's bits, so the
// sample is the same blocks every time), each as kAcquireSample returns: the learning sees the same
// shares, and an acquisition makes one shared write per kAcquireSample blocks instead of one per
// block (acquire + release went from 15.9M to 15.0M blocks/s counting every block, kvtier-bench host).
inline constexpr uint32_t kAcquireSample = 8;
constexpr bool in_acquire_sample(uint64_t key_hi) { return ((key_hi >> 40) & (kAcquireSample - 1)) == 0; }

// The writer forgot an evicted block (its ghost cell went to another) `age` ticks after its last use.
inline void observe_forgotten(ReuseLearning* learning, uint8_t uses, uint32_t age) {
  if (learning == nullptr) return;
  uint32_t& n = learning->forgotten[reuse_class(uses)][age_bucket(age)];
  if (n <= UINT32_MAX - kEventWeight) n += kEventWeight;
}

// The writer, after each insert: recomputes the densities when their time has come.
void after_insert(ReuseLearning* learning, uint64_t live_entries, uint32_t now);

// Recomputes every class's densities from the counts, then halves the counts. Writer only.
void update_densities(ReuseLearning& learning, uint32_t now);

// The hit density of a block used `uses` times, last `age` ticks ago: expected hits per tick of
// residence. Negative while the index has learnt nothing of such blocks (a new segment, or one
// made before format 3).
inline float hit_density(const ReuseLearning* learning, uint8_t uses, uint32_t age) {
  if (learning == nullptr || learning->updates == 0) return -1;
  return learning->density[reuse_class(uses)][age_bucket(age)];
}

}  // namespace kvtier::index
