#include "index/reuse_learning.h"

#include <array>

namespace kvtier::index {

namespace {

// Returns and forgettings a class needs before its own densities are trusted.
constexpr double kMinEvidence = 64.0 * kEventWeight;

using Counts = std::array<double, kAgeBuckets>;

// One class's counts, which are halved as they are read: recent turnovers weigh most. A return
// counted meanwhile by an acquiring process may be lost; the counts are hints.
void take_counts(ReuseLearning& learning, uint32_t c, Counts& returned, Counts& forgotten) {
  for (uint32_t b = 0; b < kAgeBuckets; ++b) {
    std::atomic_ref<uint32_t> stored(learning.returned[c][b]);
    const uint32_t r = stored.load(std::memory_order_relaxed);
    const uint32_t f = learning.forgotten[c][b];
    returned[b] = r;
    forgotten[b] = f;
    stored.store(r / 2, std::memory_order_relaxed);
    learning.forgotten[c][b] = f / 2;
  }
}

// The share of a class's blocks that come back at each age bucket, as a survival estimate
// (Kaplan-Meier): a forgotten block had not come back by the age it was forgotten at and says
// nothing after; a return at age t is one of the blocks still unreturned at t. What is left of
// the whole (returned as the result) never comes back.
double return_shares(const Counts& returned, const Counts& forgotten, double at_risk, Counts& share) {
  double surviving = 1;
  for (uint32_t b = 0; b < kAgeBuckets; ++b) {
    const double hazard = at_risk > 0 ? returned[b] / at_risk : 0;
    share[b] = surviving * hazard;
    surviving -= share[b];
    at_risk -= returned[b] + forgotten[b];
  }
  return surviving;
}

// From the oldest bucket down: the returns still ahead of a block of each age, over the ticks it
// would stay for them. A block that never comes back stays until `horizon`, the oldest age seen.
void densities(const Counts& share, double never, double horizon, float* density) {
  double returns_ahead = 0, stay_ahead = never * horizon, share_ahead = never;
  for (uint32_t b = kAgeBuckets; b-- > 0;) {
    const double age = age_bucket_middle(b);
    const double stay = stay_ahead - share_ahead * std::min(age, horizon);
    density[b] = stay > 0 ? static_cast<float>(returns_ahead / stay) : 0.0F;
    returns_ahead += share[b];
    share_ahead += share[b];
    stay_ahead += share[b] * age;
  }
  // Never denser with age: an older block of a class goes before a younger one. A density that
  // rose with age would have the policy take the blocks engines have just written.
  for (uint32_t b = 1; b < kAgeBuckets; ++b) density[b] = std::min(density[b], density[b - 1]);
}

}  // namespace

double age_bucket_middle(uint32_t bucket) {
  if (bucket < 8) return bucket;
  const uint32_t octave = 3 + (bucket - 8) / 4;
  const double unit = static_cast<double>(uint64_t{1} << octave) / 4;  // a quarter octave
  return static_cast<double>(uint64_t{1} << octave) + unit * ((bucket - 8) % 4) + unit / 2;
}

void after_insert(ReuseLearning* learning, uint64_t live_entries, uint32_t now) {
  if (learning == nullptr) return;
  if (++learning->inserts_since_update < std::max<uint64_t>(1024, 2 * live_entries)) return;
  update_densities(*learning, now);
}

void update_densities(ReuseLearning& learning, uint32_t now) {
  // The last two turnovers took `now - last_update_tick`: four take twice that.
  const uint32_t elapsed = now - learning.last_update_tick;
  learning.horizon_ticks = elapsed > UINT32_MAX / 2 ? UINT32_MAX : 2 * std::max<uint32_t>(elapsed, 1);
  learning.last_update_tick = now;
  const uint32_t horizon_bucket = age_bucket(learning.horizon_ticks);
  for (uint32_t c = 0; c < kReuseClasses; ++c) {
    Counts returned{}, forgotten{}, share{};
    take_counts(learning, c, returned, forgotten);
    // Back later than the horizon: not back in time to have been worth keeping.
    for (uint32_t b = horizon_bucket + 1; b < kAgeBuckets; ++b) {
      forgotten[horizon_bucket] += returned[b] + forgotten[b];
      returned[b] = forgotten[b] = 0;
    }
    double at_risk = 0;
    uint32_t oldest = 0;
    for (uint32_t b = 0; b < kAgeBuckets; ++b) {
      at_risk += returned[b] + forgotten[b];
      if (returned[b] + forgotten[b] > 0) oldest = b;
    }
    // Too little evidence: the class below's densities (blocks used more often are at least as
    // likely to come back), or none at all for the first class.
    if (at_risk < kMinEvidence) {
      for (uint32_t b = 0; b < kAgeBuckets; ++b) learning.density[c][b] = c == 0 ? -1.0F : learning.density[c - 1][b];
      continue;
    }
    const double never = return_shares(returned, forgotten, at_risk, share);
    densities(share, never, age_bucket_middle(oldest), learning.density[c]);
  }
  learning.inserts_since_update = 0;
  ++learning.updates;
}

}  // namespace kvtier::index
