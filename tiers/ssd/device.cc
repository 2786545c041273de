#include "tiers/ssd/device.h"

#include <fmt/format.h>

#include <cerrno>
#include <vector>

namespace kvtier::ssd {

bool Device::valid(const IoOp& op) const {
  return op.offset % kIoAlign == 0 && op.length % kIoAlign == 0 && op.length != 0 &&
         reinterpret_cast<uintptr_t>(op.data) % kIoAlign == 0 && op.offset <= size_ && op.length <= size_ - op.offset;
}

void Device::count(const IoOp& op) {
  if (op.result < 0) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const bool read = op.kind == IoOp::Kind::kRead;
  (read ? reads_ : writes_).fetch_add(1, std::memory_order_relaxed);
  (read ? read_bytes_ : write_bytes_).fetch_add(op.length, std::memory_order_relaxed);
}

Status Device::run(std::span<IoOp> ops, const OnDone& on_done) {
  for (const IoOp& op : ops) {
    if (!valid(op)) {
      return Status::invalid_argument(
          fmt::format("{}: I/O at offset {} length {} is misaligned (to {}) or past the end "
                      "({} bytes)",
                      name_, op.offset, op.length, kIoAlign, size_));
    }
  }
  // Ops that finish whole are reported at once; short ones after they are continued below.
  const auto finished = [&](size_t i) {
    const IoOp& op = ops[i];
    if (on_done && (op.result < 0 || static_cast<uint32_t>(op.result) >= op.length)) on_done(i);
  };
  run_impl(ops, on_done ? OnDone(finished) : OnDone());
  std::vector<bool> reported(ops.size());
  for (size_t i = 0; i < ops.size(); ++i)
    reported[i] = ops[i].result < 0 || static_cast<uint32_t>(ops[i].result) >= ops[i].length;
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
    run_impl(rest, {});
    for (size_t j = 0; j < rest.size(); ++j) {
      IoOp& op = ops[owner[j]];
      op.result = rest[j].result < 0 ? rest[j].result : op.result + rest[j].result;
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    IoOp& op = ops[i];
    if (op.result >= 0 && static_cast<uint32_t>(op.result) < op.length) op.result = -EIO;
    if (on_done && !reported[i]) on_done(i);
    count(op);
  }
  return {};
}

void Device::stream(const Source& next, const Sink& done) {
  // Invalid ops never reach the implementation: they finish here, at once.
  const Source checked = [&](IoOp& op, uint64_t& tag) {
    while (next(op, tag)) {
      if (valid(op)) return true;
      op.result = -EINVAL;
      count(op);
      done(op, tag);
    }
    return false;
  };
  stream_impl(checked, [&](const IoOp& op, uint64_t tag) {
    count(op);
    done(op, tag);
  });
}

void Device::stream_impl(const Source& next, const Sink& done) {
  std::vector<IoOp> batch;
  std::vector<uint64_t> tags;
  for (;;) {
    batch.clear();
    tags.clear();
    IoOp op;
    uint64_t tag = 0;
    while (batch.size() < 64 && next(op, tag)) {
      batch.push_back(op);
      tags.push_back(tag);
    }
    if (batch.empty()) return;
    run_impl(batch, {});
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].result >= 0 && static_cast<uint32_t>(batch[i].result) < batch[i].length) batch[i].result = -EIO;
      done(batch[i], tags[i]);
    }
  }
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
