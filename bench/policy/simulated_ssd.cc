#include "policy/simulated_ssd.h"

#include <algorithm>

namespace kvtier::policy {

SimulatedSsd::SimulatedSsd(uint64_t capacity, uint32_t regions, bool reinsert_hot)
    : capacity_(capacity),
      region_bytes_(std::max<uint64_t>(1, capacity / std::max<uint32_t>(regions, 1))),
      regions_(std::max<uint32_t>(regions, 1)),
      reinsert_hot_(reinsert_hot) {}

uint64_t SimulatedSsd::used_bytes() const { return std::min(capacity_, written_.size() * region_bytes_); }

Result<tiers::TierSpace> SimulatedSsd::reserve(const tiers::TierBlock&) {
  return Status::failed_precondition("SSD blocks are written through insert()");
}

Result<uint64_t> SimulatedSsd::insert(const tiers::TierBlock& block, std::span<const uint8_t>) {
  if (!blocks_.contains(block.key) && !place(block.key, block.payload_bytes)) {
    return Status::resource_exhausted("the simulated SSD tier could not free a region");
  }
  return ++next_locator_;
}

// Appends to the region being filled, opening another when it is full (bounded: were every
// block rewritten, reclaiming would free nothing).
bool SimulatedSsd::place(const BlockKey& key, uint32_t bytes) {
  if (bytes > region_bytes_) return false;
  for (uint32_t opened = 0; opened <= regions_; ++opened) {
    if (!written_.empty() && written_.back().bytes + bytes <= region_bytes_) {
      append(key, bytes);
      return true;
    }
    open_region();
  }
  return false;
}

void SimulatedSsd::append(const BlockKey& key, uint32_t bytes) {
  Region& r = written_.back();
  r.bytes += bytes;
  r.keys.push_back(key);
  blocks_[key] = Stored{r.seq, bytes, 0};  // a rewritten block must be read again to be rewritten again
}

// With every region written, the oldest is reclaimed first: its blocks read since written are
// rewritten into the new region (as far as it has room, as the store rewrites only into space it
// has), the others are lost.
void SimulatedSsd::open_region() {
  std::vector<std::pair<BlockKey, uint32_t>> hot;
  if (written_.size() >= regions_) {
    const Region victim = std::move(written_.front());
    written_.pop_front();
    for (const BlockKey& key : victim.keys) {
      auto it = blocks_.find(key);
      if (it == blocks_.end() || it->second.region != victim.seq) continue;  // removed, or rewritten since
      if (reinsert_hot_ && it->second.hits > 0) {
        hot.emplace_back(key, it->second.bytes);
      } else {
        lost_.push_back(key);
      }
      blocks_.erase(it);
    }
  }
  written_.push_back(Region{next_seq_++, 0, {}});
  for (const auto& [key, bytes] : hot) {
    if (written_.back().bytes + bytes > region_bytes_) {
      lost_.push_back(key);
      continue;
    }
    append(key, bytes);
    ++reinserted_;
  }
}

void SimulatedSsd::read(std::span<tiers::TierRead> reads) {
  for (tiers::TierRead& r : reads) {
    auto it = blocks_.find(r.block.key);
    if (it == blocks_.end()) {
      r.status = Status::not_found("not on the simulated SSD");
      continue;
    }
    ++it->second.hits;
    r.status = {};
  }
}

void SimulatedSsd::erase(const BlockKey& key) { blocks_.erase(key); }

std::vector<BlockKey> SimulatedSsd::take_lost() {
  std::vector<BlockKey> out;
  out.swap(lost_);
  return out;
}

void SimulatedSsd::visit_counters(tiers::CounterVisitor& v) const {
  v.gauge("policy_study_ssd_blocks", "Blocks the simulated SSD tier holds.", static_cast<double>(blocks_.size()));
}

}  // namespace kvtier::policy
