#include "common/versioned_segment.h"

#include <fmt/format.h>

#include <atomic>

namespace kvtier {
namespace {

SegmentPreamble& preamble_of(const SharedSegment& segment) { return *static_cast<SegmentPreamble*>(segment.address()); }

}  // namespace

Result<std::unique_ptr<SharedSegment>> create_segment(std::string_view name, uint64_t bytes,
                                                      const SegmentFormat& format) {
  if (bytes < format.header_bytes) {
    return Status::internal(fmt::format("{} '{}' of {} bytes cannot hold its {}-byte header", format.what, name, bytes,
                                        format.header_bytes));
  }
  KVTIER_ASSIGN_OR_RETURN(auto segment, SharedSegment::create(name, bytes));
  preamble_of(*segment).format_version = format.version;
  return segment;
}

void publish_segment(const SharedSegment& segment, const SegmentFormat& format) {
  std::atomic_ref<uint64_t>(preamble_of(segment).magic).store(format.magic, std::memory_order_release);
}

Result<AttachedSegment> attach_segment(std::string_view name, const SegmentFormat& format,
                                       std::chrono::milliseconds wait) {
  // Waits while the object is smaller than a header or its magic still reads zero.
  KVTIER_ASSIGN_OR_RETURN(auto segment, SharedSegment::attach_created(name, format.header_bytes, wait));
  if (segment->size() < format.header_bytes) {
    return Status::version_mismatch(
        fmt::format("{} '{}' is {} bytes, smaller than its header", format.what, name, segment->size()));
  }
  const SegmentPreamble& p = preamble_of(*segment);
  const uint64_t magic = std::atomic_ref<const uint64_t>(p.magic).load(std::memory_order_acquire);
  if (magic == 0) {
    return Status::unavailable(fmt::format("{} '{}' was never finished by its creator", format.what, name));
  }
  if (magic != format.magic) {
    return Status::version_mismatch(
        fmt::format("{} '{}' is not a kvtier {} (bad magic)", format.what, name, format.what));
  }
  if (p.format_version < format.oldest_version || p.format_version > format.version) {
    return Status::version_mismatch(fmt::format("{} '{}' has format version {}, this build reads {} to {}", format.what,
                                                name, p.format_version, format.oldest_version, format.version));
  }
  return AttachedSegment{std::move(segment), p.format_version};
}

}  // namespace kvtier
