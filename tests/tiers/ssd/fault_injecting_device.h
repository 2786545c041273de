// A Device wrapper that injects the faults the SSD tier must survive: errors on write (ENOSPC,
// EIO), errors on read, flipped bytes, short transfers. Faults are armed by the test and apply
// to the next matching requests.
#pragma once

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>

#include "tiers/ssd/device.h"
#include "tiers/ssd/ssd_store.h"

namespace kvtier::ssd::testing {

struct Faults {
  std::atomic<int> write_errno{0};  // nonzero: every write fails with it
  std::atomic<int> read_errno{0};   // nonzero: the next `reads_to_fail` reads fail with it
  std::atomic<int> reads_to_fail{0};
  std::atomic<int> reads_to_corrupt{0};  // the next N reads return one flipped byte
  std::atomic<int> short_reads{0};       // the next N reads return half their bytes
  std::atomic<bool> stall_reads{false};  // short reads that make no progress (0 bytes)
};

class FaultInjectingDevice final : public Device {
 public:
  FaultInjectingDevice(std::unique_ptr<Device> inner, std::shared_ptr<Faults> faults)
      : Device(inner->name(), inner->size()), inner_(std::move(inner)), faults_(std::move(faults)) {}

  bool detached() const override { return inner_->detached(); }

 protected:
  void run_impl(std::span<IoOp> ops, const OnDone& completed) override {
    if (!inner_->run(ops).ok()) {
      for (IoOp& op : ops) op.result = -EINVAL;
    } else {
      inject(ops);
    }
    if (completed) {
      for (size_t i = 0; i < ops.size(); ++i) completed(i);
    }
  }
  Status sync_impl() override { return inner_->sync(); }

 private:
  void inject(std::span<IoOp> ops) {
    for (IoOp& op : ops) {
      if (op.kind == IoOp::Kind::kWrite) {
        if (const int e = faults_->write_errno.load(); e != 0) op.result = -e;
        continue;
      }
      if (faults_->reads_to_fail.load() > 0 && faults_->reads_to_fail.fetch_sub(1) > 0) {
        op.result = -faults_->read_errno.load();
        continue;
      }
      if (faults_->reads_to_corrupt.load() > 0 && faults_->reads_to_corrupt.fetch_sub(1) > 0) {
        op.data[op.length / 3] ^= 0x5A;
        continue;
      }
      if (faults_->stall_reads.load()) {
        op.result = 0;
        continue;
      }
      if (op.length >= 2 * kIoAlign && faults_->short_reads.load() > 0 && faults_->short_reads.fetch_sub(1) > 0) {
        op.result = static_cast<int32_t>(op.length / 2 / kIoAlign * kIoAlign);
      }
    }
  }

  std::unique_ptr<Device> inner_;
  std::shared_ptr<Faults> faults_;
};

// A DeviceFactory that opens real files and wraps them.
inline DeviceFactory faulty_files(std::shared_ptr<Faults> faults) {
  return [faults](const FileDeviceOptions& o) -> Result<std::unique_ptr<Device>> {
    auto dev = open_file_device(o);
    if (!dev.ok()) return dev.status();
    return std::unique_ptr<Device>(new FaultInjectingDevice(std::move(dev).value(), faults));
  };
}

}  // namespace kvtier::ssd::testing
