#include "tiers/ssd/ssd_tier_store.h"

#include <vector>

namespace kvtier::ssd {

Result<uint64_t> SsdTierStore::insert(const tiers::TierBlock& block, std::span<const uint8_t> payload) {
  if (payload.size() != block.payload_bytes) return Status::invalid_argument("payload size differs from the block's");
  const auto codec = codecs_.find(block.namespace_id);
  return store_.insert({block.key, block.parent_lo, block.namespace_id}, payload,
                       codec == codecs_.end() ? Codec::kNone : codec->second);
}

void SsdTierStore::read(std::span<tiers::TierRead> reads) {
  std::vector<SsdRead> batch;
  batch.reserve(reads.size());
  for (const tiers::TierRead& r : reads) batch.push_back(SsdRead{r.block.key, r.out, {}, 0});
  store_.read(batch);
  for (size_t i = 0; i < reads.size(); ++i) {
    reads[i].status = batch[i].status;
    if (reads[i].status.ok() && batch[i].bytes != reads[i].block.payload_bytes) {
      reads[i].status = Status::corruption("the SSD copy's size differs from the index's");
    }
  }
}

void SsdTierStore::recover(const std::function<void(const tiers::TierBlock&, uint64_t)>& fn) const {
  store_.for_each([&](const StoredBlock& b, uint64_t locator) {
    fn(tiers::TierBlock{b.key, b.parent_lo, b.namespace_id, b.payload_bytes}, locator);
  });
}

void SsdTierStore::visit_counters(tiers::CounterVisitor& v) const {
  const SsdStats s = store_.stats();
  v.counter("ssd_bytes_written_total", "Bytes written to the SSD tier.", s.bytes_written);
  v.counter("ssd_bytes_read_total", "Bytes read from the SSD tier.", s.bytes_read);
  v.counter("ssd_regions_reclaimed_total", "SSD regions reclaimed for rewriting.", s.regions_reclaimed);
  v.counter("ssd_corrupt_blocks_total", "SSD blocks that failed their checksum (dropped, never served).",
            s.corrupt_blocks);
  v.counter("ssd_read_errors_total", "SSD read errors.", s.read_errors);
  v.counter("ssd_write_errors_total", "SSD region writes that failed.", s.write_errors);
  v.gauge("ssd_catalog_memory_bytes",
          "Memory RocksDB holds for the SSD catalogue: memtables, table readers, block cache (each bounded).",
          static_cast<double>(s.catalog_memory_bytes));
  v.gauge("ssd_full", "1 while the SSD tier refuses blocks after running out of space.", s.full ? 1 : 0);
}

}  // namespace kvtier::ssd
