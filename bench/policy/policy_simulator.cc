#include "policy/policy_simulator.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <list>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "index/chain_admission.h"
#include "index/index_mechanics.h"
#include "kvtier/block_index.h"
#include "kvtier/eviction_policy.h"
#include "policy/simulated_ssd.h"
#include "server/node/tier_mover.h"
#include "tiers/tier_store.h"

namespace kvtier::policy {
namespace {

using workload::kTraceBlockTokens;
using workload::TraceRequest;

constexpr BlockKey kRoot{0x6b76746965722d72ULL, 0x6f6f742d706f6c69ULL};  // the chains' common parent

uint64_t tokens_of(const TraceRequest& r, size_t block) {
  return std::min<uint64_t>(kTraceBlockTokens, r.input_length - block * uint64_t{kTraceBlockTokens});
}

// The references' accounting of one request: its blocks, its tokens, and the prefix `cached`
// (keyed by hash id) holds, as host hits.
template <typename Cached>
void count_host_prefix(const TraceRequest& r, const Cached& cached, SimulationResult& out) {
  ++out.requests;
  out.block_refs += r.hash_ids.size();
  out.input_tokens += r.input_length;
  for (size_t i = 0; i < r.hash_ids.size() && cached.contains(r.hash_ids[i]); ++i) {
    ++out.host_hit_blocks;
    out.host_hit_tokens += tokens_of(r, i);
  }
}

// A tier as the study sees it: space, no bytes (a block's payload is its token count, so
// "bytes" are tokens). The mover copies zeros it never looks at.
class SimulatedTier final : public tiers::TierStore {
 public:
  SimulatedTier(Tier tier, uint64_t capacity) : tier_(tier), capacity_(capacity), zeros_(kTraceBlockTokens) {}

  Tier tier() const override { return tier_; }
  uint64_t capacity_bytes() const override { return capacity_; }
  uint64_t used_bytes() const override { return used_; }
  bool contains(const BlockKey&, uint64_t locator) const override { return locator != 0 && locator <= next_locator_; }
  Result<tiers::TierSpace> reserve(const tiers::TierBlock& block) override {
    used_ += block.payload_bytes;
    return tiers::TierSpace{++next_locator_, zeros_};
  }
  Result<uint64_t> insert(const tiers::TierBlock& block, std::span<const uint8_t>) override {
    used_ += block.payload_bytes;
    return ++next_locator_;
  }
  Status commit(uint64_t) override { return {}; }
  void abandon(const BlockKey&, uint64_t) override { used_ -= std::min<uint64_t>(used_, kTraceBlockTokens); }
  std::span<const uint8_t> view(uint64_t, uint32_t payload_bytes) const override {
    return {zeros_.data(), std::min<size_t>(payload_bytes, zeros_.size())};
  }
  void read(std::span<tiers::TierRead> reads) override {
    for (tiers::TierRead& r : reads) r.status = {};
  }
  void remove(const BlockKey&, uint64_t) override { used_ -= std::min<uint64_t>(used_, kTraceBlockTokens); }
  Status flush() override { return {}; }
  void recover(const std::function<void(const tiers::TierBlock&, uint64_t)>&) const override {}
  void visit_counters(tiers::CounterVisitor& v) const override {
    v.gauge("policy_study_used_tokens", "Tokens the simulated tier holds.", static_cast<double>(used_));
  }

  uint64_t over() const { return used_ > capacity_ ? used_ - capacity_ : 0; }

 private:
  Tier tier_;
  uint64_t capacity_;
  uint64_t used_ = 0, next_locator_ = 0;
  std::vector<uint8_t> zeros_;
};

// The private index segment, removed however the run ends.
struct ScratchIndex {
  std::string name;
  ~ScratchIndex() { (void)BlockIndex::destroy(name); }
};

std::string scratch_name() {
  static std::atomic<uint32_t> n{0};
  return "kvtier-policy-" + std::to_string(::getpid()) + "-" + std::to_string(n.fetch_add(1));
}

}  // namespace

Result<SimulationResult> simulate(std::span<const TraceRequest> trace, const SimulationOptions& options) {
  auto policy = make_eviction_policy(options.policy);
  if (!policy.ok()) return policy.status();
  if (options.host_blocks == 0) return Status::invalid_argument("the host tier needs at least one block");
  size_t longest = 0;
  for (const TraceRequest& r : trace) longest = std::max(longest, r.hash_ids.size());

  IndexOptions io;
  ScratchIndex scratch{scratch_name()};
  io.segment_name = scratch.name;
  io.node_name = "policy-study";
  io.capacity = options.host_blocks + options.ssd_blocks + longest + 1024;
  io.change_ring_records = 1024;
  io.manual_clock = true;
  auto created = BlockIndex::create(io);
  if (!created.ok()) return created.status().with_context("the simulation's index");
  BlockIndex index = std::move(created).value();
  const uint64_t host_capacity = options.host_blocks * kTraceBlockTokens;
  KVTIER_RETURN_IF_ERROR(
      index.set_tier_capacity(Tier::kHost, host_capacity, options.host_high_watermark, options.host_low_watermark));
  KVTIER_RETURN_IF_ERROR(index.set_tier_capacity(Tier::kSsd, options.ssd_blocks * kTraceBlockTokens));
  KVTIER_RETURN_IF_ERROR(index.record_eviction_policy(options.policy));
  index.record_put_admission(options.put_admission);
  SimulatedTier host(Tier::kHost, host_capacity);
  const uint64_t ssd_capacity = options.ssd_blocks * kTraceBlockTokens;
  SimulatedTier ssd_by_policy(Tier::kSsd, ssd_capacity);
  // Regions of at least a block each.
  SimulatedSsd ssd_regions(ssd_capacity,
                           static_cast<uint32_t>(std::min<uint64_t>(options.ssd_regions, options.ssd_blocks)),
                           options.ssd_reinsert_hot);
  tiers::TierStore* ssd = nullptr;
  if (options.ssd_blocks > 0)
    ssd = options.ssd_by_policy ? static_cast<tiers::TierStore*>(&ssd_by_policy) : &ssd_regions;
  // The daemon's mover, over the simulated tiers: its victim selection, admission, demotion and
  // promotion.
  node::TierMover mover(index, host, ssd,
                        ssd::AdmissionOptions{options.ssd_min_accesses, options.ssd_ancestor_hops, 0});
  // What the SSD tier gave up: by the index's policy (the idealised tier), or lost to region
  // reclaim, which the mover forgets as the store's drop listener has it do in the daemon.
  const auto ssd_upkeep = [&] {
    if (ssd == nullptr) return uint64_t{0};
    if (options.ssd_by_policy) {
      const uint64_t over = ssd_by_policy.over();
      if (over == 0) return uint64_t{0};
      const auto r = mover.evict(Tier::kSsd, over);
      return r.ok() ? r->blocks_dropped : 0;
    }
    const std::vector<BlockKey> lost = ssd_regions.take_lost();
    for (const BlockKey& k : lost) mover.forget_ssd_block(k);
    mover.retry_ssd_drops();
    return uint64_t{lost.size()};
  };

  SimulationResult out;
  out.policy = options.policy;
  out.host_blocks = options.host_blocks;
  out.ssd_blocks = options.ssd_blocks;
  const auto started = std::chrono::steady_clock::now();
  uint32_t now = 0;
  uint64_t host_used = 0;
  index::ChainAdmission admission;  // as the engines' client judges puts
  std::vector<BlockKey> keys;
  const auto account = [&](const Result<EvictionReport>& r) {
    if (!r.ok()) return uint64_t{0};
    out.dropped += r->blocks_dropped;
    out.demoted += r->blocks_demoted;
    return r->bytes_freed;
  };
  // After each block enters host memory: the daemon's upkeep (past the high watermark, one pass
  // down to the low one), an engine's own eviction if the tier is still full, then the SSD tier's.
  const auto upkeep = [&] {
    if (mover.host_bytes_over_watermark() > 0) {
      EvictionReport report;
      const auto demoted = mover.demote(0, &report);
      host_used -= std::min(account(demoted.ok() ? Result<EvictionReport>(report) : demoted.status()), host_used);
    }
    // Still full (the upkeep found only pinned blocks): the engine's own eviction for room.
    while (host_used > host_capacity) {
      EvictionReport report;
      const auto demoted = mover.demote(host_used - host_capacity, &report);
      const uint64_t freed = account(demoted.ok() ? Result<EvictionReport>(report) : demoted.status());
      if (freed == 0) break;  // all pinned: the request is larger than the tier
      host_used -= std::min(freed, host_used);
    }
    out.ssd_lost += ssd_upkeep();
  };
  for (const TraceRequest& r : trace) {
    keys.clear();
    for (uint64_t id : r.hash_ids) keys.push_back(workload::trace_block_key(id));
    ++out.requests;
    out.block_refs += keys.size();
    out.input_tokens += r.input_length;
    KVTIER_RETURN_IF_ERROR(index::IndexMechanics::set_clock(index, ++now));
    const PrefixMatch m = index.match_prefix(keys);
    const size_t in_host = m.in(Tier::kHost);
    for (size_t i = 0; i < m.overall; ++i) {
      (i < in_host ? out.host_hit_tokens : out.ssd_hit_tokens) += tokens_of(r, i);
    }
    out.host_hit_blocks += in_host;
    out.ssd_hit_blocks += m.overall - in_host;
    // The engine holds what it reuses while it computes the rest, then writes every block it
    // lacks in host memory (loading the SSD ones back, computing the others).
    auto leases = index.acquire(keys);
    if (!leases.ok()) return leases.status();
    if (m.overall > in_host) {  // the daemon loads them for the engine
      KVTIER_RETURN_IF_ERROR(index::IndexMechanics::set_clock(index, ++now));
      const size_t loaded = mover.promote(std::span<const BlockKey>(keys).subspan(in_host, m.overall - in_host));
      out.promoted += loaded;
      host_used += loaded * kTraceBlockTokens;
      upkeep();
    }
    for (size_t i = in_host; i < keys.size(); ++i) {
      // An engine's put of a block it computed (blocks up to m.overall come back from SSD).
      const BlockKey parent = i == 0 ? kRoot : keys[i - 1];
      if (i >= m.overall && !admission.admit(index, keys[i], parent, Tier::kHost, host.used_bytes())) {
        ++out.not_admitted;
        break;
      }
      KVTIER_RETURN_IF_ERROR(index::IndexMechanics::set_clock(index, ++now));
      auto space = host.reserve({keys[i], 0, 0, kTraceBlockTokens});
      if (!space.ok()) return space.status();
      const BlockRecord rec{keys[i], parent, 0, kTraceBlockTokens, Tier::kHost, space->locator};
      const Status s = index.insert(rec);
      if (s.code() == StatusCode::kAlreadyExists) {  // held in host memory past a gap in its prefix
        host.abandon(keys[i], space->locator);
        continue;
      }
      KVTIER_RETURN_IF_ERROR(s);
      ++(i < m.overall ? out.promoted : out.inserted);  // an SSD block the load missed: written again
      host_used += kTraceBlockTokens;
      upkeep();
    }
  }
  const node::TierMoverStats moved = mover.stats();
  out.ssd_refused = moved.demote_refused + moved.admission.rejected_budget;
  out.ssd_declined = moved.demote_declined;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

SimulationResult simulate_belady(std::span<const TraceRequest> trace, uint64_t host_blocks) {
  const auto started = std::chrono::steady_clock::now();
  // Every reference's next use (as a request index), backwards.
  constexpr uint64_t kNever = UINT64_MAX;
  std::vector<std::vector<uint64_t>> next_use(trace.size());
  std::unordered_map<uint64_t, uint64_t> seen_at;
  for (size_t q = trace.size(); q-- > 0;) {
    next_use[q].resize(trace[q].hash_ids.size());
    for (size_t i = 0; i < trace[q].hash_ids.size(); ++i) {
      auto it = seen_at.find(trace[q].hash_ids[i]);
      next_use[q][i] = it == seen_at.end() ? kNever : it->second;
    }
    for (uint64_t id : trace[q].hash_ids) seen_at[id] = q;
  }
  SimulationResult out;
  out.policy = "belady";
  out.host_blocks = host_blocks;
  std::unordered_map<uint64_t, uint64_t> cached;                // id -> next use
  std::priority_queue<std::pair<uint64_t, uint64_t>> farthest;  // (next use, id); stale entries skipped
  for (size_t q = 0; q < trace.size(); ++q) {
    const TraceRequest& r = trace[q];
    count_host_prefix(r, cached, out);
    for (size_t i = 0; i < r.hash_ids.size(); ++i) {
      const uint64_t id = r.hash_ids[i];
      const uint64_t next = next_use[q][i];
      auto [it, fresh] = cached.insert_or_assign(id, next);
      if (fresh) ++out.inserted;
      farthest.emplace(next, id);
    }
    // Over capacity: the farthest next use goes, never a block of this request (their next use
    // is later than q, so one of them goes only when nothing else is left).
    while (cached.size() > host_blocks) {
      const auto [next, id] = farthest.top();
      farthest.pop();
      auto it = cached.find(id);
      if (it == cached.end() || it->second != next) continue;  // stale
      cached.erase(it);
      ++out.dropped;
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

SimulationResult simulate_exact_lru_admitting(std::span<const TraceRequest> trace, uint64_t host_blocks,
                                              std::string_view name, const BlockAdmission& admit) {
  const auto started = std::chrono::steady_clock::now();
  SimulationResult out;
  out.policy = std::string(name);
  out.host_blocks = host_blocks;
  std::list<uint64_t> order;  // most recent first
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> cached;
  for (size_t q = 0; q < trace.size(); ++q) {
    const TraceRequest& r = trace[q];
    count_host_prefix(r, cached, out);
    for (size_t i = 0; i < r.hash_ids.size(); ++i) {
      const uint64_t id = r.hash_ids[i];
      if (auto it = cached.find(id); it != cached.end()) {
        order.splice(order.begin(), order, it->second);
        continue;
      }
      if (!admit(q, i)) continue;
      order.push_front(id);
      cached[id] = order.begin();
      ++out.inserted;
      if (cached.size() > host_blocks) {
        cached.erase(order.back());
        order.pop_back();
        ++out.dropped;
      }
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

SimulationResult simulate_exact_lru(std::span<const TraceRequest> trace, uint64_t host_blocks) {
  return simulate_exact_lru_admitting(trace, host_blocks, "lru-exact", [](size_t, size_t) { return true; });
}

SimulationResult simulate_lru_oracle_admission(std::span<const TraceRequest> trace, uint64_t host_blocks) {
  // Whether each reference's block appears again later, from the end backwards.
  std::vector<std::vector<bool>> used_again(trace.size());
  std::unordered_set<uint64_t> later;
  for (size_t q = trace.size(); q-- > 0;) {
    used_again[q].resize(trace[q].hash_ids.size());
    for (size_t i = 0; i < trace[q].hash_ids.size(); ++i) used_again[q][i] = later.contains(trace[q].hash_ids[i]);
    for (uint64_t id : trace[q].hash_ids) later.insert(id);
  }
  return simulate_exact_lru_admitting(trace, host_blocks, "lru-oracle-admission",
                                      [&](size_t q, size_t i) { return static_cast<bool>(used_again[q][i]); });
}

}  // namespace kvtier::policy
