// The process heap's figures and trimming, against glibc's malloc in this test process.
#include "common/process_heap.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace kvtier {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kGlibcMalloc = false;  // the sanitizer's allocator answers malloc, not glibc's
#else
constexpr bool kGlibcMalloc = true;
#endif

// This process's private resident memory (RssAnon), in bytes.
uint64_t private_resident_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10) << 10;
  }
  return 0;
}

// Keeps the compiler from eliding an allocation the test never reads.
void* volatile g_escape = nullptr;

class Gauges : public CounterVisitor {
 public:
  void counter(std::string_view name, std::string_view, uint64_t value) override {
    values[std::string(name)] = static_cast<double>(value);
  }
  void gauge(std::string_view name, std::string_view, double value) override { values[std::string(name)] = value; }
  void counters(std::string_view, std::string_view, std::span<const LabelledCount>) override {}
  void gauges(std::string_view, std::string_view, std::span<const LabelledLevel>) override {}
  std::map<std::string, double> values;
};

TEST(ProcessHeap, CountsLiveAllocationsAndTheirRelease) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's malloc";
  const uint64_t before = read_heap_usage().allocated_bytes;
  std::vector<void*> blocks;
  for (int i = 0; i < 256; ++i) blocks.push_back(std::malloc(16 << 10));  // 4 MiB in small allocations
  void* large = std::malloc(32 << 20);                                    // one mmapped by malloc
  g_escape = large;
  const uint64_t held = read_heap_usage().allocated_bytes;
  EXPECT_GE(held, before + (36U << 20));
  for (void* b : blocks) std::free(b);
  std::free(large);
  EXPECT_LE(read_heap_usage().allocated_bytes, held - (36U << 20));
}

// Freed memory below a live allocation stays resident until a trim gives its pages back.
TEST(ProcessHeap, ATrimGivesFreedPagesBack) {
  if (!kGlibcMalloc) GTEST_SKIP() << "not glibc's malloc";
  constexpr size_t kChunk = 64 << 10, kChunks = 1024;  // 64 MiB, each below malloc's mmap threshold
  std::vector<char*> chunks;
  for (size_t i = 0; i < kChunks; ++i) {
    chunks.push_back(static_cast<char*>(std::malloc(kChunk)));
    std::memset(chunks.back(), 1, kChunk);
  }
  // Free all but the last: it keeps the heap's top in use, so free() cannot shrink the heap.
  for (size_t i = 0; i + 1 < kChunks; ++i) std::free(chunks[i]);
  const uint64_t kept = private_resident_bytes();
  const HeapUsage usage = read_heap_usage();
  EXPECT_GE(usage.free_bytes, (kChunks - 1) * kChunk);
  trim_heap();
  EXPECT_LE(private_resident_bytes() + (32U << 20), kept) << "the trim gave back less than half of 64 MiB";
  std::free(chunks.back());
  Gauges g;
  visit_heap_counters(g);
  EXPECT_GE(g.values["heap_trims_total"], 1);
  EXPECT_TRUE(g.values.contains("heap_trim_microseconds_total"));
  // Read right after the trim: what was resident then, so not the 64 MiB freed before it.
  EXPECT_GT(g.values["private_resident_after_trim_bytes"], 0);
  EXPECT_LT(g.values["private_resident_after_trim_bytes"], static_cast<double>(kept) - (32U << 20));
  EXPECT_TRUE(g.values.contains("heap_allocated_bytes"));
  EXPECT_TRUE(g.values.contains("heap_free_bytes"));
}

TEST(ProcessHeap, TheTrimmerTrimsOnItsIntervalUntilDestroyed) {
  const auto trims = [] {
    Gauges g;
    visit_heap_counters(g);
    return g.values["heap_trims_total"];
  };
  const double before = trims();
  {
    HeapTrimmer trimmer(std::chrono::milliseconds(5));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (trims() < before + 3 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_GE(trims(), before + 3);
  }
  const double after = trims();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(trims(), after) << "trimming went on after the trimmer was destroyed";
}

}  // namespace
}  // namespace kvtier
