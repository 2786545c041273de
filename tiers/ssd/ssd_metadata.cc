#include "tiers/ssd/ssd_metadata.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <cstring>
#include <filesystem>

namespace kvtier::ssd {
namespace {

constexpr char kRegionPrefix = 'R';
constexpr char kBlockPrefix = 'B';
constexpr size_t kBlockValueBytes = 8 + 2 + 4 + 4 + 4 + 4 + 4 + 8 + 1;

template <typename T>
void put_le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF));
}
template <typename T>
T get_le(const char*& p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  p += sizeof(T);
  return static_cast<T>(v);
}

std::string encode(const SealedRegion& r) {
  std::string v;
  put_le(v, r.gen);
  put_le(v, r.seal_seq);
  return v;
}
std::string encode(const StoredBlock& b) {
  std::string v;
  put_le(v, b.parent_lo);
  put_le(v, b.namespace_id);
  put_le(v, b.payload_bytes);
  put_le(v, b.region);
  put_le(v, b.region_gen);
  put_le(v, b.offset);
  put_le(v, b.stored_bytes);
  put_le(v, b.checksum);
  put_le(v, static_cast<uint8_t>(b.codec));
  return v;
}

Status to_status(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return {};
  if (s.IsNoSpace()) return Status::resource_exhausted(fmt::format("{}: {}", what, s.ToString()));
  if (s.IsCorruption()) return Status::corruption(fmt::format("{}: {}", what, s.ToString()));
  return Status::io_error(fmt::format("{}: {}", what, s.ToString()));
}

}  // namespace

std::string region_record_key(uint32_t region) {
  std::string k(1, kRegionPrefix);
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>((region >> (8 * i)) & 0xFF));  // big-endian: sorted
  return k;
}

std::string block_record_key(const BlockKey& key) {
  const auto bytes = key.to_bytes();
  std::string k(1, kBlockPrefix);
  k.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return k;
}

Result<std::unique_ptr<SsdMetadata>> SsdMetadata::open(const std::string& dir, bool start_empty_if_unreadable,
                                                       bool sync_writes, rocksdb::Env* env) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::io_error(fmt::format("creating SSD metadata directory {}: {}", dir, ec.message()));
  rocksdb::Options options;
  if (env != nullptr) options.env = env;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  options.max_open_files = 64;
  options.keep_log_file_num = 2;
  options.recycle_log_file_num = 2;
  // The catalogue is small (tens of bytes per block) but rewritten all the time (every region
  // written or reclaimed): RocksDB's 64 MiB memtables would fill with its churn before a flush and
  // sit in the daemon's memory (kvtier-bench soak: private RSS +75 % in a minute). 1 MiB ones
  // flush often and cheaply (every few seconds under the soak's 250 reclaims a second), and their
  // fill-and-flush sawtooth stays a small part of the daemon's private memory.
  options.write_buffer_size = 1U << 20;
  options.max_write_buffer_number = 2;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  auto meta = std::unique_ptr<SsdMetadata>(new SsdMetadata());
  if (!s.ok()) {
    if (!start_empty_if_unreadable) {
      return Status::io_error(fmt::format(
          "the SSD tier's metadata database in {} cannot be opened: {}. Fix the directory, or start with an empty "
          "SSD tier (kvtierd --ssd-start-empty; ssd.start_empty_if_unreadable: true)",
          dir, s.ToString()));
    }
    // The tier is a cache: losing its catalogue loses hits, never correctness.
    (void)rocksdb::DestroyDB(dir, options);
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir, ec);
    s = rocksdb::DB::Open(options, dir, &raw);
    if (!s.ok()) return to_status(s, fmt::format("recreating SSD metadata in {}", dir));
    meta->recreated_ = true;
  }
  meta->db_.reset(raw);
  meta->sync_ = sync_writes;
  return meta;
}

SsdMetadata::~SsdMetadata() {
  if (db_) (void)db_->Close();
}

uint64_t SsdMetadata::memory_bytes() const {
  uint64_t total = 0;
  for (const std::string& property :
       {rocksdb::DB::Properties::kSizeAllMemTables, rocksdb::DB::Properties::kEstimateTableReadersMem,
        rocksdb::DB::Properties::kBlockCacheUsage}) {
    uint64_t value = 0;
    if (db_->GetIntProperty(property, &value)) total += value;
  }
  return total;
}

Result<std::string> SsdMetadata::get(std::string_view key) const {
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return Status::not_found(fmt::format("metadata key '{}'", key));
  KVTIER_RETURN_IF_ERROR(to_status(s, "reading SSD metadata"));
  return value;
}

Status SsdMetadata::put(std::string_view key, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  return to_status(db_->Put(wo, rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size())),
                   "writing SSD metadata");
}

Status SsdMetadata::clear_catalogue() {
  rocksdb::WriteBatch batch;
  for (char prefix : {kRegionPrefix, kBlockPrefix}) {
    const std::string begin(1, prefix), end(1, static_cast<char>(prefix + 1));
    batch.DeleteRange(rocksdb::Slice(begin), rocksdb::Slice(end));
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  return to_status(db_->Write(wo, &batch), "clearing SSD metadata");
}

Status SsdMetadata::commit_region(const SealedRegion& region, std::span<const StoredBlock> blocks) {
  rocksdb::WriteBatch batch;
  batch.Put(region_record_key(region.region), encode(region));
  for (const StoredBlock& b : blocks) batch.Put(block_record_key(b.key), encode(b));
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  return to_status(db_->Write(wo, &batch), "committing an SSD region");
}

Status SsdMetadata::release_region(uint32_t region, std::span<const BlockKey> blocks) {
  rocksdb::WriteBatch batch;
  batch.Delete(region_record_key(region));
  for (const BlockKey& k : blocks) batch.Delete(block_record_key(k));
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  return to_status(db_->Write(wo, &batch), "releasing an SSD region");
}

Status SsdMetadata::drop_block(const BlockKey& key) {
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  return to_status(db_->Delete(wo, block_record_key(key)), "dropping an SSD block");
}

Status SsdMetadata::scan(const std::function<void(const SealedRegion&)>& on_region,
                         const std::function<void(const StoredBlock&)>& on_block) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  // 'B' < 'R': read regions first so blocks can be checked against them.
  for (it->Seek(std::string(1, kRegionPrefix)); it->Valid() && it->key()[0] == kRegionPrefix; it->Next()) {
    const rocksdb::Slice k = it->key(), v = it->value();
    if (k.size() != 5 || v.size() != 12) continue;  // not ours: ignored, like a missing record
    SealedRegion r;
    r.region = (static_cast<uint32_t>(static_cast<uint8_t>(k[1])) << 24) |
               (static_cast<uint32_t>(static_cast<uint8_t>(k[2])) << 16) |
               (static_cast<uint32_t>(static_cast<uint8_t>(k[3])) << 8) | static_cast<uint8_t>(k[4]);
    const char* p = v.data();
    r.gen = get_le<uint32_t>(p);
    r.seal_seq = get_le<uint64_t>(p);
    on_region(r);
  }
  KVTIER_RETURN_IF_ERROR(to_status(it->status(), "scanning SSD regions"));
  for (it->Seek(std::string(1, kBlockPrefix)); it->Valid() && it->key()[0] == kBlockPrefix; it->Next()) {
    const rocksdb::Slice k = it->key(), v = it->value();
    if (k.size() != 17 || v.size() != kBlockValueBytes) continue;
    StoredBlock b;
    b.key = BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(k.data() + 1));
    const char* p = v.data();
    b.parent_lo = get_le<uint64_t>(p);
    b.namespace_id = get_le<uint16_t>(p);
    b.payload_bytes = get_le<uint32_t>(p);
    b.region = get_le<uint32_t>(p);
    b.region_gen = get_le<uint32_t>(p);
    b.offset = get_le<uint32_t>(p);
    b.stored_bytes = get_le<uint32_t>(p);
    b.checksum = get_le<uint64_t>(p);
    b.codec = static_cast<Codec>(get_le<uint8_t>(p));
    on_block(b);
  }
  return to_status(it->status(), "scanning SSD blocks");
}

}  // namespace kvtier::ssd
