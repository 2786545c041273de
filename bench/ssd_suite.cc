// `kvtier-bench ssd`: the SSD tier (io_uring, O_DIRECT, regions, RocksDB catalogue) against fio
// from Debian's package, run in the same session on the same disk with the same request size,
// queue depth and O_DIRECT:
//   write: 256 KiB KV blocks inserted and flushed (the store writes them as io_bytes requests,
//          queue_depth in flight, catalogue committed per region) vs fio sequential writes.
//   read:  random 256 KiB block reads, batched, queue_depth in flight, checksums verified, vs fio
//          random reads of 256 KiB at that depth.
//   warm restart: a writer process SIGKILLed mid-load; the fraction of the blocks it had seen
//          committed that come back intact.
//   zstd: ratio and cost on synthetic bf16 / fp16 KV data shaped like real activations.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "bench_report.h"
#include "bench_timer.h"
#include "suites.h"
#include "tiers/ssd/ssd_store.h"

namespace kvtier::bench {
namespace {

namespace fs = std::filesystem;
using ssd::SsdRead;
using ssd::SsdStore;
using ssd::SsdStoreOptions;

constexpr uint32_t kBlock = 256 << 10;
constexpr uint32_t kIoBytes = 1 << 20;
constexpr uint32_t kDepth = 16;

BlockKey key_of(uint64_t i) { return BlockKey{0xb5d0000000000000ULL ^ (i * 0x9E3779B97F4A7C15ULL), i + 1}; }

void fill(uint64_t i, uint8_t* p, size_t n) {
  uint64_t x = i * 0x2545F4914F6CDD1DULL + 1;
  for (size_t k = 0; k + 8 <= n; k += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + k, &x, 8);
  }
}

struct AlignedBuf {
  explicit AlignedBuf(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, ssd::kIoAlign, n) != 0) throw std::bad_alloc();
    data = static_cast<uint8_t*>(p);
  }
  ~AlignedBuf() { std::free(data); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  uint8_t* data = nullptr;
};

SsdStoreOptions store_options(const fs::path& dir, uint64_t bytes) {
  SsdStoreOptions o;
  o.files = {(dir / "data-0.kvt").string()};
  o.metadata_dir = (dir / "catalog").string();
  o.region_bytes = 16ULL << 20;
  o.bytes = bytes;
  o.io_bytes = kIoBytes;
  o.queue_depth = kDepth;
  o.write_buffers = 6;
  o.flush_after_ms = 60000;
  return o;
}

// Runs fio with these arguments; its output, or nothing when it failed. The output is read to the
// end before pclose, so fio never meets a closed pipe.
std::optional<std::string> fio(const std::string& args) {
  const std::string cmd = "fio " + args + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) return std::nullopt;
  return out;
}

// Bytes per second fio reported for the job's `section` ("read" or "write"), or 0.
double run_fio(const std::string& args, const char* section) {
  const auto result = fio("--output-format=json " + args);
  if (!result) return 0;
  const std::string& out = *result;
  const size_t at = out.find(fmt::format("\"{}\" : {{", section));
  const size_t bw = at == std::string::npos ? at : out.find("\"bw_bytes\" : ", at);
  return bw == std::string::npos ? 0 : std::strtod(out.c_str() + bw + 13, nullptr);
}

// Inserts `blocks` blocks into a fresh catalogue over the same data file and flushes; bytes/s.
double store_write(const fs::path& dir, uint64_t blocks, uint64_t capacity, const AlignedBuf& src) {
  fs::remove_all(dir / "catalog");
  auto store = SsdStore::open(store_options(dir, capacity));
  if (!store.ok()) {
    fmt::print(stderr, "kvtier-bench ssd: {}\n", store.status().to_string());
    return 0;
  }
  const double t0 = now_seconds();
  for (uint64_t i = 0; i < blocks; ++i) {
    std::memcpy(src.data, &i, sizeof(i));  // distinct blocks, same cost
    if (!(*store)->insert({key_of(i), 0, 1}, {src.data, kBlock}, ssd::Codec::kNone).ok()) return 0;
  }
  if (!(*store)->flush().ok()) return 0;
  return static_cast<double>(blocks * kBlock) / (now_seconds() - t0);
}

// Random block reads, kBatch per call (the device keeps kDepth in flight); bytes/s. False in
// *intact when a block came back wrong.
constexpr uint32_t kBatch = 32 * kDepth;
double store_read(SsdStore& store, uint64_t blocks, uint64_t reads, bool* intact) {
  std::vector<std::unique_ptr<AlignedBuf>> bufs;
  for (uint32_t i = 0; i < kBatch; ++i) bufs.push_back(std::make_unique<AlignedBuf>(kBlock));
  std::mt19937_64 rng(42);
  std::vector<SsdRead> batch(kBatch);
  const double t0 = now_seconds();
  for (uint64_t done = 0; done < reads; done += kBatch) {
    for (uint32_t j = 0; j < kBatch; ++j) batch[j] = SsdRead{key_of(rng() % blocks), {bufs[j]->data, kBlock}, {}, 0};
    store.read(batch);
    for (uint32_t j = 0; j < kBatch; ++j) {
      uint64_t id = 0;
      std::memcpy(&id, bufs[j]->data, sizeof(id));
      if (!batch[j].status.ok() || key_of(id) != batch[j].key) *intact = false;
    }
  }
  return static_cast<double>(reads * kBlock) / (now_seconds() - t0);
}

// A writer process killed with SIGKILL: the fraction of blocks it saw committed that come back.
double warm_restart_fraction(const fs::path& dir, uint64_t* committed_out) {
  const SsdStoreOptions o = store_options(dir, 512ULL << 20);
  int report[2];
  if (::pipe(report) != 0) return 0;
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(report[0]);
    auto store = SsdStore::open(o);
    if (!store.ok()) ::_exit(2);
    std::thread reporter([&] {
      uint64_t last = 0;
      for (;;) {
        const uint64_t durable = (*store)->stats().blocks_durable;
        if (durable != last && ::write(report[1], &durable, sizeof(durable)) != sizeof(durable)) ::_exit(3);
        last = durable;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    AlignedBuf src(kBlock);
    for (uint64_t i = 0; i < 1500; ++i) {
      fill(i, src.data, kBlock);
      (void)(*store)->insert({key_of(i), 0, 1}, {src.data, kBlock}, ssd::Codec::kNone);
    }
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
  ::close(report[1]);
  uint64_t committed = 0, v = 0;
  const double until = now_seconds() + 30;
  while (committed < 700 && now_seconds() < until && ::read(report[0], &v, sizeof(v)) == sizeof(v)) committed = v;
  ::kill(child, SIGKILL);  // mid-load: more regions are being filled and written
  ::waitpid(child, nullptr, 0);
  while (::read(report[0], &v, sizeof(v)) == sizeof(v)) committed = v;
  ::close(report[0]);
  *committed_out = committed;
  auto store = SsdStore::open(o);
  if (!store.ok() || committed == 0) return 0;
  AlignedBuf got(kBlock), want(kBlock);
  uint64_t intact = 0;
  for (uint64_t i = 0; i < committed; ++i) {
    SsdRead r{key_of(i), {got.data, kBlock}, {}, 0};
    (*store)->read({&r, 1});
    fill(i, want.data, kBlock);
    if (r.status.ok() && std::memcmp(got.data, want.data, kBlock) == 0) ++intact;
  }
  return static_cast<double>(intact) / static_cast<double>(committed);
}

// float → IEEE binary16, rounding to nearest even (the compilers here lack a portable _Float16).
uint16_t to_fp16(float f) {
  uint32_t x = 0;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFF;
  if (((x >> 23) & 0xFF) == 0xFF) return static_cast<uint16_t>(sign | 0x7C00 | (mant != 0 ? 0x200 : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
  uint32_t half = 0, rem = 0, mid = 0;
  if (exp <= 0) {  // subnormal
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const auto shift = static_cast<uint32_t>(14 - exp);
    half = mant >> shift;
    rem = mant & ((1U << shift) - 1);
    mid = 1U << (shift - 1);
  } else {
    half = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
    rem = mant & 0x1FFF;
    mid = 0x1000;
  }
  if (rem > mid || (rem == mid && (half & 1) != 0)) ++half;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | half);
}

// Synthetic KV activations: per (head, dim) channel a scale and offset, per token a small
// variation, as attention keys and values look; rounded to bf16 or fp16.
void kv_block(uint64_t seed, bool bf16, uint8_t* out, size_t bytes) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> noise(0.f, 1.f);
  const size_t channels = size_t{128} * 8;  // head_dim × kv heads
  std::vector<float> scale(channels), offset(channels);
  for (size_t c = 0; c < channels; ++c) {
    scale[c] = std::exp(noise(rng) * 0.8f) * 0.5f;
    offset[c] = noise(rng) * 0.3f;
  }
  auto* v = reinterpret_cast<uint16_t*>(out);
  for (size_t i = 0; i < bytes / 2; ++i) {
    const size_t c = i % channels;
    const float x = offset[c] + scale[c] * noise(rng);
    if (bf16) {
      uint32_t bits = 0;
      std::memcpy(&bits, &x, 4);
      v[i] = static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);  // round to nearest even
    } else {
      v[i] = to_fp16(x);
    }
  }
}

struct ZstdFigures {
  double ratio = 0, compress_gbps = 0, decompress_gbps = 0;
};

ZstdFigures zstd_figures(const fs::path& dir, bool bf16, uint64_t blocks) {
  fs::remove_all(dir);
  SsdStoreOptions o = store_options(dir, std::max<uint64_t>(8, blocks * kBlock / (16ULL << 20) + 6) * (16ULL << 20));
  auto store = SsdStore::open(o);
  if (!store.ok()) return {};
  std::vector<std::vector<uint8_t>> data(blocks, std::vector<uint8_t>(kBlock));
  for (uint64_t i = 0; i < blocks; ++i) kv_block(i + (bf16 ? 0 : 1000), bf16, data[i].data(), kBlock);
  ZstdFigures z;
  double t0 = now_seconds();
  for (uint64_t i = 0; i < blocks; ++i) (void)(*store)->insert({key_of(i), 0, 1}, data[i], ssd::Codec::kZstd);
  z.compress_gbps = static_cast<double>(blocks * kBlock) / (now_seconds() - t0) / 1e9;
  const ssd::SsdStats s = (*store)->stats();
  z.ratio = s.stored_bytes > 0 ? static_cast<double>(s.payload_bytes) / static_cast<double>(s.stored_bytes) : 0;
  std::vector<uint8_t> out(kBlock);
  t0 = now_seconds();  // from the region buffers: decompression cost alone
  for (uint64_t i = 0; i < blocks; ++i) {
    SsdRead r{key_of(i), out, {}, 0};
    (*store)->read({&r, 1});
    if (!r.status.ok() || out != data[i]) return {};
  }
  z.decompress_gbps = static_cast<double>(blocks * kBlock) / (now_seconds() - t0) / 1e9;
  return z;
}

}  // namespace

int run_ssd_suite(const SuiteOptions& opt) {
  if (!fio("--version")) {
    fmt::print(stderr, "kvtier-bench ssd: fio is not installed (scripts/setup installs it)\n");
    return 1;
  }
  const fs::path root = fs::current_path() / fmt::format("kvtier-bench-ssd-{}", ::getpid());
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{root};
  fs::create_directories(root / "store");
  const uint64_t write_bytes = opt.quick ? (512ULL << 20) : (2ULL << 30);
  const uint64_t blocks = write_bytes / kBlock;
  const uint64_t capacity = write_bytes + (96ULL << 20);
  const uint64_t reads = opt.quick ? 2048 : 8192;  // multiples of kBatch
  const int rounds = opt.quick ? 4 : 3;
  const std::string fio_file = (root / "fio.dat").string();
  const std::string common =
      fmt::format("--name=kvtier --filename={} --size={} --direct=1 --ioengine=io_uring", fio_file, write_bytes);

  AlignedBuf src(kBlock);
  fill(7, src.data, kBlock);
  double write_best = 0, fio_write_best = 0;
  // Alternating which goes first, so both meet the disk in the same states.
  const auto fio_write = [&] {
    fio_write_best = std::max(
        fio_write_best, run_fio(fmt::format("{} --rw=write --bs={} --iodepth={}", common, kIoBytes, kDepth), "write"));
  };
  for (int r = 0; r < rounds; ++r) {
    if (r % 2 == 0) fio_write();
    write_best = std::max(write_best, store_write(root / "store", blocks, capacity, src));
    if (r % 2 == 1) fio_write();
  }
  // Reads over the last round's blocks (flushed, so every read goes to the device).
  double read_best = 0, fio_read_best = 0;
  bool intact = true;
  {
    auto store = SsdStore::open(store_options(root / "store", capacity));
    if (!store.ok()) {
      fmt::print(stderr, "kvtier-bench ssd: {}\n", store.status().to_string());
      return 1;
    }
    const auto fio_read = [&] {
      fio_read_best = std::max(fio_read_best, run_fio(fmt::format("{} --rw=randread --bs={} --iodepth={} --io_size={}",
                                                                  common, kBlock, kDepth, reads * kBlock),
                                                      "read"));
    };
    for (int r = 0; r < rounds; ++r) {
      if (r % 2 == 0) fio_read();
      read_best = std::max(read_best, store_read(**store, blocks, reads, &intact));
      if (r % 2 == 1) fio_read();
    }
  }
  uint64_t committed = 0;
  const double recovered = warm_restart_fraction(root / "restart", &committed);
  const ZstdFigures bf16 = zstd_figures(root / "zstd", true, opt.quick ? 32 : 128);
  const ZstdFigures fp16 = zstd_figures(root / "zstd", false, opt.quick ? 32 : 128);

  const double write_vs = fio_write_best > 0 ? write_best / fio_write_best : 0;
  const double read_vs = fio_read_best > 0 ? read_best / fio_read_best : 0;
  fmt::print(
      "kvtier-bench ssd: {} MiB written per round, {} random block reads, 256 KiB blocks, {} KiB writes, "
      "queue depth {}, O_DIRECT{}\n",
      write_bytes >> 20, reads, kIoBytes >> 10, kDepth, opt.quick ? " (quick)" : "");
  Table table({"figure", "kvtier", "fio", "ratio"});
  table.add_row(
      {"write GB/s (insert + flush)", fixed(write_best / 1e9, 2), fixed(fio_write_best / 1e9, 2), fixed(write_vs, 3)});
  table.add_row({"read GB/s (random blocks, verified)", fixed(read_best / 1e9, 2), fixed(fio_read_best / 1e9, 2),
                 fixed(read_vs, 3)});
  table.add_row(
      {fmt::format("warm restart: committed blocks back ({} seen)", committed), fixed(recovered, 4), "-", "-"});
  table.add_row({"zstd ratio, bf16 KV (compress / decompress GB/s)", fixed(bf16.ratio, 3),
                 fmt::format("{:.2f} / {:.2f}", bf16.compress_gbps, bf16.decompress_gbps), "-"});
  table.add_row({"zstd ratio, fp16 KV (compress / decompress GB/s)", fixed(fp16.ratio, 3),
                 fmt::format("{:.2f} / {:.2f}", fp16.compress_gbps, fp16.decompress_gbps), "-"});
  fmt::print("{}", table.render());
  if (!intact) fmt::print("ERROR: a block read back with the wrong bytes\n");
  fmt::print("targets: write >= 0.85 x fio {}, read >= 0.85 x fio {}, warm restart 1.0 {}\n",
             write_vs >= 0.85 ? "met" : "MISSED", read_vs >= 0.85 ? "met" : "MISSED",
             recovered >= 1.0 ? "met" : "MISSED");
  if (opt.json) {
    JsonObject j;
    j.add("suite", "ssd")
        .add("write_gbytes_per_s", write_best / 1e9)
        .add("read_gbytes_per_s", read_best / 1e9)
        .add("write_vs_fio", write_vs)
        .add("read_vs_fio", read_vs)
        .add("warm_restart_blocks_recovered", recovered)
        .add("zstd_ratio", bf16.ratio)
        .add("zstd_ratio_fp16", fp16.ratio)
        .add("zstd_compress_gbytes_per_s", bf16.compress_gbps)
        .add("zstd_decompress_gbytes_per_s", bf16.decompress_gbps)
        .add("fio_write_gbytes_per_s", fio_write_best / 1e9)
        .add("fio_read_gbytes_per_s", fio_read_best / 1e9)
        .add("warm_restart_committed_blocks", static_cast<long long>(committed))
        .add("block_bytes", static_cast<long long>(kBlock))
        .add("write_request_bytes", static_cast<long long>(kIoBytes))
        .add("queue_depth", static_cast<long long>(kDepth))
        .add("reads_intact", intact)
        .add("quick", opt.quick);
    fmt::print("{}\n", j.str());
  }
  return intact ? 0 : 1;
}

}  // namespace kvtier::bench
