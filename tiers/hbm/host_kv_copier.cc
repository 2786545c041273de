// The host copier: memcpy on the calling thread, through the same chunk arithmetic as the CUDA
// kernel (chunk_copy.h). A copy is complete when start() returns.
#include <fmt/format.h>

#include <cstring>
#include <mutex>
#include <unordered_set>

#include "kvtier/paged_kv.h"
#include "tiers/hbm/chunk_copy.h"

namespace kvtier {
namespace {

class HostKvCopier final : public KvCopier {
 public:
  explicit HostKvCopier(PagedKvLayout layout) : KvCopier(std::move(layout)), specs_(hbm::chunk_specs(this->layout())) {}

  const char* method() const override { return "host"; }

  Result<KvCopyTicket> start(KvCopyDirection direction, std::span<const KvBlockCopy> blocks, KvTensorRange range,
                             uintptr_t /*after_stream: host copies follow the caller*/) override {
    auto checked = check(blocks, range);
    if (!checked.ok()) return checked.status();
    const bool offload = direction == KvCopyDirection::kOffload;
    for (const KvBlockCopy& b : blocks) {
      for (uint32_t t = checked->first; t < checked->first + checked->count; ++t) {
        const hbm::ChunkSpec& c = specs_[t];
        auto* engine =
            reinterpret_cast<uint8_t*>(hbm::engine_chunk(c, b.block_id));  // NOLINT(performance-no-int-to-ptr)
        auto* host = reinterpret_cast<uint8_t*>(hbm::host_chunk(c, reinterpret_cast<uint64_t>(b.host)));  // NOLINT
        if (offload) {
          std::memcpy(host, engine, c.bytes);
        } else {
          std::memcpy(engine, host, c.bytes);
        }
      }
    }
    std::lock_guard lock(mu_);
    const KvCopyTicket ticket{next_++};
    outstanding_.insert(ticket.id);
    return ticket;
  }

  Status wait(KvCopyTicket ticket) override {
    std::lock_guard lock(mu_);
    if (outstanding_.erase(ticket.id) == 0) return unknown(ticket);
    return Status{};
  }

  Result<bool> done(KvCopyTicket ticket) override {
    std::lock_guard lock(mu_);
    if (!outstanding_.contains(ticket.id)) return unknown(ticket);
    return true;
  }

  Status order_before(KvCopyTicket ticket, uintptr_t /*stream*/) override { return done(ticket).status(); }

 private:
  static Status unknown(KvCopyTicket ticket) {
    return Status::invalid_argument(
        fmt::format("copy ticket {} is unknown (never started, or already waited)", ticket.id));
  }

  std::vector<hbm::ChunkSpec> specs_;
  std::mutex mu_;
  uint64_t next_ = 1;
  std::unordered_set<uint64_t> outstanding_;
};

}  // namespace

Result<std::unique_ptr<KvCopier>> make_host_kv_copier(PagedKvLayout layout) {
  KVTIER_RETURN_IF_ERROR(layout.validate());
  return std::unique_ptr<KvCopier>(new HostKvCopier(std::move(layout)));
}

}  // namespace kvtier
