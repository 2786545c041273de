// The production Device: a file or block device opened with O_DIRECT and driven by io_uring.
// Each run() borrows a ring from a small pool, so a region flush and a batch of promotion
// reads proceed side by side instead of queueing behind one another.
#include <fcntl.h>
#include <fmt/format.h>
#include <liburing.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "tiers/ssd/device.h"

namespace kvtier::ssd {
namespace {

// Prepares `op` from byte `moved` on (a continued short transfer resumes there).
void prep(io_uring_sqe* sqe, int fd, const IoOp& op, uint32_t moved) {
  if (op.kind == IoOp::Kind::kRead) {
    io_uring_prep_read(sqe, fd, op.data + moved, op.length - moved, op.offset + moved);
  } else {
    io_uring_prep_write(sqe, fd, op.data + moved, op.length - moved, op.offset + moved);
  }
}

class UringFileDevice final : public Device {
 public:
  UringFileDevice(std::string path, int fd, uint64_t size, uint32_t depth)
      : Device(std::move(path), size), fd_(fd), depth_(depth) {}
  ~UringFileDevice() override {
    for (auto& ring : rings_) io_uring_queue_exit(ring.get());
    ::close(fd_);
  }

  bool detached() const override {
    struct stat st {};
    return ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 0;
  }

 protected:
  void run_impl(std::span<IoOp> ops, const OnDone& completed) override {
    io_uring* ring = borrow();
    if (ring == nullptr) {
      for (size_t i = 0; i < ops.size(); ++i) {
        ops[i].result = -ENOMEM;
        if (completed) completed(i);
      }
      return;
    }
    size_t next = 0, done = 0, in_flight = 0;
    std::vector<size_t> reaped;
    reaped.reserve(depth_);
    // Queues ops until `depth_` are in flight; returns how many were queued.
    const auto fill = [&] {
      size_t queued = 0;
      while (next < ops.size() && in_flight < depth_) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        if (sqe == nullptr) break;
        prep(sqe, fd_, ops[next], 0);
        io_uring_sqe_set_data64(sqe, next);
        ++next;
        ++in_flight;
        ++queued;
      }
      return queued;
    };
    fill();
    while (done < ops.size()) {
      const int rc = io_uring_submit_and_wait(ring, 1);
      if (rc < 0 && rc != -EINTR && in_flight == 0) {
        // The ring itself failed before anything was in flight: fail what is left.
        for (size_t i = next; i < ops.size(); ++i) {
          ops[i].result = rc;
          if (completed) completed(i);
        }
        break;
      }
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      reaped.clear();
      io_uring_for_each_cqe(ring, head, cqe) {
        const auto i = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
        ops[i].result = cqe->res;
        reaped.push_back(i);
      }
      io_uring_cq_advance(ring, static_cast<unsigned>(reaped.size()));
      done += reaped.size();
      in_flight -= reaped.size();
      // Refill and submit before the callbacks, so the device works while they run.
      if (fill() > 0) io_uring_submit(ring);
      if (completed) {
        for (size_t i : reaped) completed(i);
      }
    }
    give_back(ring);
  }

  void stream_impl(const Source& next, const Sink& done) override {
    io_uring* ring = borrow();
    if (ring == nullptr) {
      IoOp op;
      uint64_t tag = 0;
      while (next(op, tag)) {
        op.result = -ENOMEM;
        done(op, tag);
      }
      return;
    }
    // One slot per request in flight: the op as asked, its tag, and how much is done (a short
    // transfer is continued from there).
    struct Slot {
      IoOp op;
      uint64_t tag = 0;
      uint32_t moved = 0;
    };
    std::vector<Slot> slots(depth_);
    std::vector<size_t> free_slots;
    for (size_t i = depth_; i-- > 0;) free_slots.push_back(i);
    size_t in_flight = 0;
    bool source_dry = false;
    const auto issue = [&](size_t s) {
      Slot& sl = slots[s];
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      prep(sqe, fd_, sl.op, sl.moved);
      io_uring_sqe_set_data64(sqe, s);
      ++in_flight;
    };
    const auto fill = [&] {
      size_t queued = 0;
      while (!free_slots.empty() && !source_dry) {
        const size_t s = free_slots.back();
        Slot& sl = slots[s];
        if (!next(sl.op, sl.tag)) {
          source_dry = true;  // for this round: asked again after the next completion
          break;
        }
        free_slots.pop_back();
        sl.moved = 0;
        issue(s);
        ++queued;
      }
      return queued;
    };
    fill();
    std::vector<std::pair<IoOp, uint64_t>> finished;
    while (in_flight > 0) {
      io_uring_submit_and_wait(ring, 1);
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0, seen = 0;
      finished.clear();
      io_uring_for_each_cqe(ring, head, cqe) {
        ++seen;
        --in_flight;
        const auto s = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
        Slot& sl = slots[s];
        const int res = cqe->res;
        if (res > 0 && sl.moved + static_cast<uint32_t>(res) < sl.op.length && res % kIoAlign == 0) {
          sl.moved += static_cast<uint32_t>(res);  // short: continue where it stopped
          issue(s);
          continue;
        }
        const bool whole = res >= 0 && sl.moved + static_cast<uint32_t>(res) == sl.op.length;
        sl.op.result = res < 0 ? res : (whole ? static_cast<int32_t>(sl.op.length) : -EIO);
        finished.emplace_back(sl.op, sl.tag);
        free_slots.push_back(s);
      }
      io_uring_cq_advance(ring, seen);
      // Refill and submit before the callbacks, so the device works while they run; the source
      // is asked again, since it may have work now.
      source_dry = false;
      fill();
      io_uring_submit(ring);
      for (const auto& [op, tag] : finished) done(op, tag);
      if (fill() > 0) io_uring_submit(ring);
    }
    give_back(ring);
  }

  Status sync_impl() override {
    if (::fdatasync(fd_) != 0) return Status::io_error(fmt::format("fdatasync {}: {}", name(), errno_message(errno)));
    return {};
  }

 private:
  io_uring* borrow() {
    std::lock_guard lock(mu_);
    if (!free_.empty()) {
      io_uring* r = free_.back();
      free_.pop_back();
      return r;
    }
    auto ring = std::make_unique<io_uring>();
    if (io_uring_queue_init(depth_, ring.get(), 0) != 0) return nullptr;
    rings_.push_back(std::move(ring));
    return rings_.back().get();
  }
  void give_back(io_uring* ring) {
    std::lock_guard lock(mu_);
    free_.push_back(ring);
  }

  int fd_;
  uint32_t depth_;
  std::mutex mu_;
  std::vector<std::unique_ptr<io_uring>> rings_;
  std::vector<io_uring*> free_;
};

}  // namespace

Result<std::unique_ptr<Device>> open_file_device(const FileDeviceOptions& o) {
  if (o.size == 0 || o.size % kIoAlign != 0) {
    return Status::invalid_argument(
        fmt::format("SSD file {}: size {} must be a positive multiple of {}", o.path, o.size, kIoAlign));
  }
  if (o.queue_depth == 0 || o.queue_depth > 4096) {
    return Status::invalid_argument(fmt::format("SSD queue depth {} must be in 1..4096", o.queue_depth));
  }
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | (o.direct_io ? O_DIRECT : 0);
  const int fd = ::open(o.path.c_str(), flags, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EINVAL && o.direct_io) {
      return Status::invalid_argument(fmt::format(
          "SSD file {}: the file system refuses O_DIRECT; put the SSD tier on a local disk (ext4, xfs)", o.path));
    }
    return Status::io_error(fmt::format("opening SSD file {}: {}", o.path, errno_message(err)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::io_error(fmt::format("stat {}: {}", o.path, errno_message(err)));
  }
  if (S_ISBLK(st.st_mode)) {
    uint64_t dev_bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &dev_bytes) != 0 || dev_bytes < o.size) {
      ::close(fd);
      return Status::invalid_argument(
          fmt::format("block device {} holds {} bytes, fewer than the {} configured", o.path, dev_bytes, o.size));
    }
  } else if (static_cast<uint64_t>(st.st_size) < o.size) {
    // Reserve the blocks now: a later write must not discover a full disk.
    const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(o.size));
    if (rc != 0) {
      ::close(fd);
      if (rc == ENOSPC) {
        return Status::resource_exhausted(
            fmt::format("SSD file {}: the disk has no room for {} bytes (ENOSPC)", o.path, o.size));
      }
      return Status::io_error(fmt::format("fallocate {}: {}", o.path, errno_message(rc)));
    }
  }
  return std::unique_ptr<Device>(new UringFileDevice(o.path, fd, o.size, o.queue_depth));
}

}  // namespace kvtier::ssd
