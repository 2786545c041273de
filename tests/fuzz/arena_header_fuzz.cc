// Fuzz target: a host arena whose header fields (sizes, offsets) were overwritten, as an engine or
// the daemon attaches to it. The input is XORed into the descriptive fields after the magic (the
// empty input is the intact header); attaching must refuse what does not add up and, when it
// accepts, reserving, committing, reading and releasing blocks must stay inside the segment.
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

#include "tiers/host/arena_layout.h"
#include "tiers/host/host_arena.h"

namespace {

using kvtier::host::ArenaHeader;
using kvtier::host::HostArena;

struct Fixture {
  std::string name = "kvtier-fuzz-" + std::to_string(::getpid()) + "-host";
  std::unique_ptr<HostArena> creator;
  uint8_t* header = nullptr;
  std::vector<uint8_t> pristine;

  Fixture() {
    (void)HostArena::destroy(name);
    kvtier::host::ArenaOptions o;
    o.segment_name = name;
    o.bytes = 4 << 20;
    o.slab_bytes = 1 << 20;
    auto a = HostArena::create(o);
    if (!a.ok()) std::abort();
    creator = std::move(a).value();
    const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
    if (fd < 0) std::abort();
    void* p = ::mmap(nullptr, sizeof(ArenaHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) std::abort();
    header = static_cast<uint8_t*>(p);
    pristine.assign(header, header + sizeof(ArenaHeader));
  }
  ~Fixture() { (void)HostArena::destroy(name); }
};

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer names the entry point
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  constexpr size_t kFrom = offsetof(ArenaHeader, format_version);
  constexpr size_t kTo = offsetof(ArenaHeader, ready);
  std::memcpy(f.header, f.pristine.data(), f.pristine.size());
  for (size_t i = 0; i < std::min(size, kTo - kFrom); ++i) f.header[kFrom + i] ^= data[i];
  auto arena = HostArena::attach(f.name);
  if (size == 0 && !arena.ok()) __builtin_trap();  // the intact header must attach
  if (arena.ok()) {
    HostArena& a = **arena;
    if (auto cls = a.size_class(96 << 10); cls.ok()) {
      if (auto loc = a.reserve(*cls, /*owner=*/1); loc.ok()) {
        std::memset(a.data(*loc), 0x5A, 96 << 10);
        if (a.commit(*loc, 1).ok()) (void)a.release(*loc);
      }
    }
    (void)a.stats();
  }
  std::memcpy(f.header, f.pristine.data(), f.pristine.size());
  return 0;
}
