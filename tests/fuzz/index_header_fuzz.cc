// Fuzz target: an index segment whose header was overwritten (a stray write, a process of another
// build, a tool) as an engine or the daemon attaches to it. The input damages the header's
// descriptive fields (sizes, offsets, identity; not the magic, which only says "published", nor the
// locks and counters after them); attaching must refuse what does not add up and, when it accepts,
// every read must stay inside the segment.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "index/index_mechanics.h"
#include "index/segment_layout.h"
#include "kvtier/block_index.h"

namespace {

struct Fixture {
  std::string name = "kvtier-fuzz-" + std::to_string(::getpid()) + "-index";
  kvtier::BlockIndex creator;
  uint8_t* header = nullptr;
  std::vector<uint8_t> pristine;

  static kvtier::BlockIndex make(const std::string& n) {
    (void)kvtier::BlockIndex::destroy(n);
    kvtier::IndexOptions o;
    o.segment_name = n;
    o.capacity = 256;
    o.change_ring_records = 64;
    auto ix = kvtier::BlockIndex::create(o);
    if (!ix.ok()) std::abort();
    return std::move(ix).value();
  }

  Fixture() : creator(make(name)) {
    // A few blocks, so lookups and the invariant check have something to read.
    kvtier::BlockRecord r;
    for (uint64_t i = 1; i <= 8; ++i) {
      r.key = {i, i * 31};
      r.parent = i == 1 ? kvtier::BlockKey{} : kvtier::BlockKey{i - 1, (i - 1) * 31};
      r.payload_bytes = 4096;
      r.tier = kvtier::Tier::kHost;
      r.locator = i;
      if (!creator.insert(r).ok()) std::abort();
    }
    const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
    if (fd < 0) std::abort();
    void* p = ::mmap(nullptr, sizeof(kvtier::index::SegmentHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) std::abort();
    header = static_cast<uint8_t*>(p);
    pristine.assign(header, header + sizeof(kvtier::index::SegmentHeader));
  }
  ~Fixture() { (void)kvtier::BlockIndex::destroy(name); }
};

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer names the entry point
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  constexpr size_t kFrom = offsetof(kvtier::index::SegmentHeader, format_version);
  constexpr size_t kTo = offsetof(kvtier::index::SegmentHeader, ready);
  std::memcpy(f.header, f.pristine.data(), f.pristine.size());
  // XORed in: the empty input is the intact header, and a mutation is a damaged field.
  for (size_t i = 0; i < std::min(size, kTo - kFrom); ++i) f.header[kFrom + i] ^= data[i];
  auto ix = kvtier::BlockIndex::attach(f.name);
  if (size == 0 && !ix.ok()) __builtin_trap();  // the intact header must attach
  if (ix.ok()) {
    (void)ix->owner_tag();  // joins the process table
    std::vector<kvtier::IndexChange> changes(16);
    uint64_t next = 0;
    bool lost = false;
    (void)kvtier::index::IndexMechanics::read_changes(*ix, 0, changes, &next, &lost);
    (void)ix->lookup(kvtier::BlockKey{3, 93});
    const std::vector<kvtier::BlockKey> chain = {{1, 31}, {2, 62}, {3, 93}};
    (void)ix->match_prefix(chain);
    if (auto leases = ix->acquire(chain); leases.ok()) leases->clear();  // pins, then their release
    (void)ix->stats();
    (void)ix->check_invariants();
  }
  std::memcpy(f.header, f.pristine.data(), f.pristine.size());
  return 0;
}
