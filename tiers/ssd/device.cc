#include "tiers/ssd/device.h"

#include <fmt/format.h>

#include <cerrno>
#include <vector>

namespace kvtier::ssd {

Status Device::run(std::span<IoOp> ops) {
  for (const IoOp& op : ops) {
    if (op.offset % kIoAlign != 0 || op.length % kIoAlign != 0 || op.length == 0 ||
        reinterpret_cast<uintptr_t>(op.data) % kIoAlign != 0) {
      return Status::invalid_argument(
          fmt::format("{}: I/O at offset {} length {} is not {}-byte aligned", name_, op.offset, op.length, kIoAlign));
    }
    if (op.offset > size_ || op.length > size_ - op.offset) {
      return Status::invalid_argument(
          fmt::format("{}: I/O at offset {} length {} is past the end ({} bytes)", name_, op.offset, op.length, size_));
    }
  }
  run_impl(ops);
  // Continue short transfers (a device may legally return fewer bytes than asked); give up on
  // one that makes no progress.
  std::vector<IoOp> rest;
  std::vector<size_t> owner;
  for (int round = 0; round < 8; ++round) {
    rest.clear();
    owner.clear();
    for (size_t i = 0; i < ops.size(); ++i) {
      IoOp& op = ops[i];
      if (op.result < 0 || static_cast<uint32_t>(op.result) >= op.length) continue;
      short_.fetch_add(1, std::memory_order_relaxed);
      if (op.result == 0 || op.result % kIoAlign != 0) {
        op.result = -EIO;
        continue;
      }
      const auto done = static_cast<uint32_t>(op.result);
      rest.push_back(IoOp{op.kind, op.offset + done, op.data + done, op.length - done, 0});
      owner.push_back(i);
    }
    if (rest.empty()) break;
    run_impl(rest);
    for (size_t j = 0; j < rest.size(); ++j) {
      IoOp& op = ops[owner[j]];
      op.result = rest[j].result < 0 ? rest[j].result : op.result + rest[j].result;
    }
  }
  for (IoOp& op : ops) {
    if (op.result >= 0 && static_cast<uint32_t>(op.result) < op.length) op.result = -EIO;
    if (op.result < 0) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const bool read = op.kind == IoOp::Kind::kRead;
    (read ? reads_ : writes_).fetch_add(1, std::memory_order_relaxed);
    (read ? read_bytes_ : write_bytes_).fetch_add(op.length, std::memory_order_relaxed);
  }
  return {};
}

Status Device::sync() { return sync_impl(); }

DeviceStats Device::stats() const {
  DeviceStats s;
  s.reads = reads_.load(std::memory_order_relaxed);
  s.writes = writes_.load(std::memory_order_relaxed);
  s.read_bytes = read_bytes_.load(std::memory_order_relaxed);
  s.write_bytes = write_bytes_.load(std::memory_order_relaxed);
  s.errors = errors_.load(std::memory_order_relaxed);
  s.short_transfers = short_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace kvtier::ssd
