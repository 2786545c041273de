// Shared pieces of the SSD-tier tests: a scratch directory on a real disk (O_DIRECT needs one),
// deterministic block bytes, and small store options.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "kvtier/block_key.h"
#include "tiers/ssd/ssd_store.h"

namespace kvtier::ssd::testing {

// A fresh directory under the test's working directory (the build tree: a real file system),
// removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> n{0};
    path_ = std::filesystem::current_path() / ("ssd-scratch-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline BlockKey test_key(uint64_t i) { return BlockKey{0x5eed000000000000ULL ^ (i * 0x9E3779B97F4A7C15ULL), i + 1}; }

// Bytes derived from the key and position, so a reader can verify a block it gets back.
inline std::vector<uint8_t> block_bytes(const BlockKey& key, size_t n) {
  std::vector<uint8_t> out(n);
  uint64_t x = key.hi ^ key.lo;
  for (size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    out[i] = static_cast<uint8_t>(x >> 56);
  }
  return out;
}

inline SsdStoreOptions small_store(const ScratchDir& dir, uint64_t regions = 8) {
  SsdStoreOptions o;
  o.files = {dir / "data-0.kvt"};
  o.region_bytes = 1ULL << 20;
  o.bytes = regions * o.region_bytes;
  o.metadata_dir = dir / "catalog";
  o.io_bytes = 256 << 10;
  o.queue_depth = 4;
  o.write_buffers = 2;
  o.flush_after_ms = 60000;  // tests flush explicitly
  return o;
}

}  // namespace kvtier::ssd::testing
