// Device: the seam every SSD-tier byte goes through (a file or raw block device, or a fault-
// injecting wrapper in tests). The non-virtual run() checks alignment and bounds, continues short
// transfers and keeps the statistics, so those invariants live in one place; implementations
// only issue I/O.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "kvtier/result.h"
#include "kvtier/status.h"

namespace kvtier::ssd {

// strerror, thread-safely.
inline std::string errno_message(int err) { return std::generic_category().message(err); }

// O_DIRECT granularity: offsets, lengths and buffer addresses are multiples of it.
inline constexpr uint32_t kIoAlign = 4096;

struct IoOp {
  enum class Kind : uint8_t { kRead, kWrite };
  Kind kind = Kind::kRead;
  uint64_t offset = 0;
  uint8_t* data = nullptr;
  uint32_t length = 0;
  int32_t result = 0;  // after run(): `length`, or -errno
};

struct DeviceStats {
  uint64_t reads = 0, writes = 0, read_bytes = 0, write_bytes = 0;
  uint64_t errors = 0, short_transfers = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Called with an op's index as soon as that op is finished, while others are still in flight,
  // so per-op work (checksums) overlaps the I/O. On the calling thread.
  using OnDone = std::function<void(size_t op)>;

  // Runs the ops concurrently (up to the device's queue depth in flight) and returns when all
  // are done. Each op ends with result == length or a negative errno; a short transfer is
  // continued, and one that makes no progress is -EIO. invalid_argument (nothing issued) if any
  // op is misaligned or out of bounds.
  Status run(std::span<IoOp> ops, const OnDone& on_done = {});

  // Streaming: pulls ops from `next` whenever a slot of the queue is free (next returns false
  // when it has none now) and hands each finished op, with its tag, to `done`, until `next` has
  // nothing and nothing is in flight. The queue never drains between one caller's batches, which
  // is how the SSD writer keeps pace with fio. Ops failing the alignment or bounds check finish
  // at once with -EINVAL. Callbacks run on the calling thread.
  using Source = std::function<bool(IoOp& op, uint64_t& tag)>;
  using Sink = std::function<void(const IoOp& op, uint64_t tag)>;
  void stream(const Source& next, const Sink& done);
  // Makes completed writes durable against power loss (fdatasync).
  Status sync();
  // True when the file was deleted underneath (still readable through the open descriptor, but
  // gone at the next start).
  virtual bool detached() const { return false; }

  uint64_t size() const { return size_; }
  const std::string& name() const { return name_; }
  DeviceStats stats() const;

 protected:
  Device(std::string name, uint64_t size) : name_(std::move(name)), size_(size) {}
  // Issues the ops; sets each result to the bytes moved (possibly short) or -errno, and calls
  // `completed(i)` (when set) as each op's result is in.
  virtual void run_impl(std::span<IoOp> ops, const OnDone& completed) = 0;
  virtual Status sync_impl() = 0;
  // Streams valid ops (see stream()); each op's result as for run_impl, short transfers included.
  // The default runs whatever `next` has now as one batch, and repeats.
  virtual void stream_impl(const Source& next, const Sink& done);

 private:
  bool valid(const IoOp& op) const;
  void count(const IoOp& op);
  std::string name_;
  uint64_t size_;
  std::atomic<uint64_t> reads_{0}, writes_{0}, read_bytes_{0}, write_bytes_{0}, errors_{0}, short_{0};
};

struct FileDeviceOptions {
  std::string path;
  uint64_t size = 0;          // bytes; the file is created or grown to it (fallocate)
  uint32_t queue_depth = 16;  // io_uring entries per submission ring
  bool direct_io = true;      // O_DIRECT: no page cache between the tier and the drive
};

// A regular file (created and preallocated, so a disk without the room fails here with
// resource_exhausted rather than with ENOSPC later) or a block device, driven by io_uring.
Result<std::unique_ptr<Device>> open_file_device(const FileDeviceOptions& options);

}  // namespace kvtier::ssd
