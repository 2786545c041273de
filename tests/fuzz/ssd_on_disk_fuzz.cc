// Fuzz target: the SSD tier's files read back after damage on disk (docs/ssd.md#faults). A
// pristine tier (two data files, raw and zstd blocks in sealed regions, its RocksDB catalogue) is
// restored for each input, which then damages it: bytes of the data files (file identity blocks,
// block bytes) XORed, files cut short, catalogue values XORed, replaced, deleted, or copied under
// other keys (an entry naming key A with block B's place). The tier is then opened (recovery), every
// block read, new blocks written and read, and the tier reopened and read again. It must never crash,
// and every read that succeeds must return the bytes that were stored under that key.
//
// The input is a list of commands, each an opcode byte and its operands (see apply()); it ends
// where the bytes do. The empty input is the intact tier: every block must come back.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "kvtier/block_key.h"
#include "tiers/ssd/ssd_metadata.h"
#include "tiers/ssd/ssd_store.h"

namespace {

namespace fs = std::filesystem;
using kvtier::BlockKey;
using kvtier::ssd::block_record_key;
using kvtier::ssd::Codec;
using kvtier::ssd::region_record_key;
using kvtier::ssd::SsdMetadata;
using kvtier::ssd::SsdRead;
using kvtier::ssd::SsdStore;
using kvtier::ssd::SsdStoreOptions;

constexpr uint64_t kRegionBytes = 1ULL << 20;

BlockKey key_of(uint64_t i) { return BlockKey{0xD15CULL << 48 ^ (i * 0x9E3779B97F4A7C15ULL), i + 1}; }

// Bytes derived from the key: compressible (a repeating pattern) or not.
std::vector<uint8_t> bytes_of(const BlockKey& key, size_t n, bool compressible) {
  std::vector<uint8_t> out(n);
  uint64_t x = key.hi ^ key.lo;
  for (size_t i = 0; i < n; ++i) {
    if (compressible) {
      out[i] = static_cast<uint8_t>((x >> (8 * (i % 8))) + i / 512);
    } else {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      out[i] = static_cast<uint8_t>(x >> 56);
    }
  }
  return out;
}

struct Block {
  BlockKey key;
  std::vector<uint8_t> bytes;
};

// Reads operands from the input; past its end every read yields zeros and done() is true.
class Operands {
 public:
  Operands(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(byte()) << (8 * i);
    return v;
  }
  std::string bytes(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

struct Fixture {
  // In memory where there is a tmpfs: RocksDB syncs its files on every open, three opens per input.
  fs::path root = (fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path()) /
                  ("kvtier-fuzz-ssd-" + std::to_string(::getpid()));
  SsdStoreOptions options;
  std::vector<Block> blocks;                // what the pristine tier holds
  std::vector<std::vector<uint8_t>> files;  // the pristine data files
  fs::path pristine_catalogue = root / "pristine-catalogue";

  Fixture() {
    spdlog::set_level(spdlog::level::err);  // damaged files are expected here: no warning per input
    fs::remove_all(root);
    fs::create_directories(root / "work");
    options.files = {(root / "work" / "a.kvt").string(), (root / "work" / "b.kvt").string()};
    options.metadata_dir = (root / "work" / "catalog").string();
    options.region_bytes = kRegionBytes;
    options.bytes = 4 * kRegionBytes;
    options.io_bytes = 256 << 10;
    options.queue_depth = 4;
    options.write_buffers = 2;
    options.direct_io = false;  // tmpfs has no O_DIRECT
    options.flush_after_ms = 600000;
    options.start_empty_if_unreadable = true;
    {
      auto store = SsdStore::open(options);
      if (!store.ok()) std::abort();
      // Region 0 (file a): raw blocks of odd sizes; region 1 (file b): zstd blocks, one that does not
      // shrink and so is stored raw; both sealed, the other two regions free.
      const size_t raw_sizes[] = {4096, 5000, 1, 65536, 12288, 300000};
      const size_t zstd_sizes[] = {65536, 20000, 4096, 131072};
      uint64_t i = 0;
      const auto put = [&](size_t n, Codec codec, bool compressible) {
        Block b{key_of(i), bytes_of(key_of(i), n, compressible)};
        const uint64_t parent = i == 0 ? 0 : key_of(i - 1).lo;
        ++i;
        if (!(*store)->insert({b.key, parent, 3}, b.bytes, codec).ok()) std::abort();
        blocks.push_back(std::move(b));
      };
      for (size_t n : raw_sizes) put(n, Codec::kNone, false);
      if (!(*store)->flush().ok()) std::abort();
      for (size_t n : zstd_sizes) put(n, Codec::kZstd, true);
      put(8192, Codec::kZstd, false);
      if (!(*store)->flush().ok()) std::abort();
    }
    for (const std::string& f : options.files) {
      std::ifstream in(f, std::ios::binary);
      files.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
    fs::copy(options.metadata_dir, pristine_catalogue, fs::copy_options::recursive);
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  void restore() const {
    fs::remove_all(options.metadata_dir);
    fs::copy(pristine_catalogue, options.metadata_dir, fs::copy_options::recursive);
    for (size_t i = 0; i < files.size(); ++i) {
      std::ofstream out(options.files[i], std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(files[i].data()), static_cast<std::streamsize>(files[i].size()));
    }
  }

  const Block* expected(const BlockKey& key) const {
    for (const Block& b : blocks) {
      if (b.key == key) return &b;
    }
    return nullptr;
  }
};

void xor_into(std::string& value, size_t at, const std::string& with) {
  if (value.empty()) return;
  for (size_t i = 0; i < with.size(); ++i) value[(at + i) % value.size()] ^= with[i];
}

// Applies the input's commands to the restored tier; returns the keys it named that the tier
// never held (they are read too, and must not be served).
std::vector<BlockKey> apply(const Fixture& f, Operands& in) {
  std::vector<BlockKey> foreign;
  std::unique_ptr<SsdMetadata> meta;
  const auto catalogue = [&]() -> SsdMetadata* {
    if (!meta) {
      auto m = SsdMetadata::open(f.options.metadata_dir, false, false);
      if (!m.ok()) std::abort();  // the files were restored intact
      meta = std::move(m).value();
    }
    return meta.get();
  };
  // XORs the input's next bytes (an offset, a length, the bytes) into a record, if it exists.
  const auto xor_record = [&](const std::string& k) {
    auto v = catalogue()->get(k);
    const uint8_t at = in.byte();
    const std::string with = in.bytes(in.byte() % 16);
    if (!v.ok()) return;
    xor_into(*v, at, with);
    (void)catalogue()->put(k, *v);
  };
  const auto some_block = [&](uint8_t sel) -> const BlockKey& { return f.blocks[sel % f.blocks.size()].key; };
  const auto some_key = [&](uint8_t sel) {
    if (sel < 0x80) return some_block(sel);
    std::string raw = in.bytes(16);
    raw.resize(16, '\0');
    foreign.push_back(BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(raw.data())));
    return foreign.back();
  };
  while (!in.done()) {
    switch (in.byte() % 8) {
      case 0: {  // XOR bytes into a data file (identity block, block bytes, free space)
        const auto& file = f.options.files[in.byte() % f.options.files.size()];
        const uint32_t at = in.u32();
        const std::string with = in.bytes(in.byte());
        std::fstream io(file, std::ios::binary | std::ios::in | std::ios::out);
        const auto size = static_cast<size_t>(fs::file_size(file));
        if (size == 0) break;
        std::string got(with.size(), '\0');
        const size_t from = at % size;
        io.seekg(static_cast<std::streamoff>(from));
        io.read(got.data(), static_cast<std::streamsize>(std::min(with.size(), size - from)));
        got.resize(static_cast<size_t>(io.gcount()));
        for (size_t i = 0; i < got.size(); ++i) got[i] ^= with[i];
        io.clear();
        io.seekp(static_cast<std::streamoff>(from));
        io.write(got.data(), static_cast<std::streamsize>(got.size()));
        break;
      }
      case 1: {  // cut a data file short
        const auto& file = f.options.files[in.byte() % f.options.files.size()];
        fs::resize_file(file, in.u32() % (fs::file_size(file) + 1));
        break;
      }
      case 2:  // XOR bytes into a block's catalogue entry
        xor_record(block_record_key(some_block(in.byte())));
        break;
      case 3: {  // copy a block's entry under another key (a stored one, or one never stored)
        auto v = catalogue()->get(block_record_key(some_block(in.byte())));
        const BlockKey to = some_key(in.byte());
        if (v.ok()) (void)catalogue()->put(block_record_key(to), *v);
        break;
      }
      case 4: {  // a block entry's value replaced by arbitrary bytes
        const BlockKey k = some_key(in.byte());
        (void)catalogue()->put(block_record_key(k), in.bytes(in.byte() % 64));
        break;
      }
      case 5: {  // a region record XORed, replaced or deleted (regions 0..5: two past the tier)
        const std::string k = region_record_key(in.byte() % 6);
        const uint8_t how = in.byte();
        if (how % 3 == 0) {
          (void)catalogue()->release_region(static_cast<uint8_t>(k[4]), {});
        } else if (how % 3 == 1) {
          xor_record(k);
        } else {
          (void)catalogue()->put(k, in.bytes(in.byte() % 32));
        }
        break;
      }
      case 6: {  // a block entry deleted
        (void)catalogue()->drop_block(some_block(in.byte()));
        break;
      }
      default: {  // the layout or a file's recorded identity XORed
        const uint8_t which = in.byte();
        xor_record(which % 3 == 2 ? std::string("L") : "F" + std::to_string(which % 3));
        break;
      }
    }
  }
  return foreign;
}

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};

// Reads every key in one batch; any read that succeeds must be the key's stored bytes.
// Returns how many succeeded.
size_t read_and_check(const Fixture& f, SsdStore& store, const std::vector<BlockKey>& keys) {
  const size_t room = kRegionBytes + kvtier::ssd::kIoAlign;  // no entry's payload passes a region
  std::vector<std::unique_ptr<uint8_t, AlignedFree>> buffers;
  std::vector<SsdRead> reads;
  for (const BlockKey& k : keys) {
    void* p = nullptr;
    if (posix_memalign(&p, kvtier::ssd::kIoAlign, room) != 0) std::abort();
    buffers.emplace_back(static_cast<uint8_t*>(p));
    reads.push_back(SsdRead{k, {buffers.back().get(), room}, {}, 0});
  }
  store.read(reads);
  size_t ok = 0;
  for (const SsdRead& r : reads) {
    if (!r.status.ok()) continue;
    const Block* want = f.expected(r.key);
    if (want == nullptr || r.bytes != want->bytes.size() ||
        std::memcmp(r.out.data(), want->bytes.data(), r.bytes) != 0) {
      __builtin_trap();  // wrong bytes served
    }
    ++ok;
  }
  return ok;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer names the entry point
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  f.restore();
  Operands in(data, size);
  std::vector<BlockKey> keys;
  for (const Block& b : f.blocks) keys.push_back(b.key);
  for (const BlockKey& k : apply(f, in)) keys.push_back(k);

  auto store = SsdStore::open(f.options);
  if (!store.ok()) {
    if (size == 0) __builtin_trap();  // the intact tier must open
    return 0;
  }
  const size_t served = read_and_check(f, **store, keys);
  if (size == 0 && served != f.blocks.size()) __builtin_trap();  // and serve every block

  // The recovered tier keeps working: new blocks written over whatever recovery freed are read
  // back intact, and the old ones are still right or gone.
  const size_t stored = f.blocks.size();
  std::vector<BlockKey> added;
  for (uint64_t i = 0; i < 3; ++i) {
    Block b{key_of(1000 + i), bytes_of(key_of(1000 + i), 200000, i == 1)};
    if ((*store)->insert({b.key, 0, 3}, b.bytes, i == 1 ? Codec::kZstd : Codec::kNone).ok()) {
      added.push_back(b.key);
      f.blocks.push_back(std::move(b));
    }
  }
  const bool flushed = (*store)->flush().ok();
  if (read_and_check(f, **store, added) != added.size() && flushed) __builtin_trap();  // a new block lost
  (void)read_and_check(f, **store, keys);
  store->reset();
  {
    keys.insert(keys.end(), added.begin(), added.end());
    auto reopened = SsdStore::open(f.options);
    if (reopened.ok()) (void)read_and_check(f, **reopened, keys);
  }
  f.blocks.resize(stored);
  return 0;
}
