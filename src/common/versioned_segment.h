// The one protocol every kvtier shared-memory segment follows (the index, the host arena, the load
// queue, the token ring), so "a creator still initialising" means the same thing everywhere:
//   - the segment starts with a 64-bit magic and a 32-bit format version (SegmentPreamble);
//   - its creator writes everything else first and the magic last (release): a process that sees
//     the magic sees a finished segment;
//   - an attacher waits, a bounded time, for a creator that has made the object but not yet
//     published it; then another magic is "not a kvtier <what>" and a version outside the range this
//     build reads is version_mismatch, both naming the segment.
// A creator that died before publishing leaves a segment every attacher refuses as unavailable:
// the daemon replaces a load queue or token ring like that when it opens them; an index or host
// arena like that is removed with the node's segments (docs/operations.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/shared_segment.h"
#include "kvtier/result.h"

namespace kvtier {

struct SegmentPreamble {
  uint64_t magic;  // zero until published; read and written through std::atomic_ref
  uint32_t format_version;
};

struct SegmentFormat {
  std::string_view what;  // "index segment", "host arena", ...: names it in errors
  uint64_t magic;
  uint32_t oldest_version;  // the oldest this build reads
  uint32_t version;         // the one this build writes
  uint64_t header_bytes;    // a segment is at least this large
};

struct AttachedSegment {
  std::unique_ptr<SharedSegment> segment;
  uint32_t version = 0;  // the segment's format version, within the format's range
};

// A new segment of `bytes` (zeros), with the format's version written and its magic not yet:
// the caller lays out the rest, then publish_segment().
Result<std::unique_ptr<SharedSegment>> create_segment(std::string_view name, uint64_t bytes,
                                                      const SegmentFormat& format);
// Publishes a segment create_segment() made: from here on attachers accept it.
void publish_segment(const SharedSegment& segment, const SegmentFormat& format);
// Attaches a published segment of this format. not_found when there is none; unavailable when its
// creator did not publish it within `wait`; version_mismatch for another magic or version.
Result<AttachedSegment> attach_segment(std::string_view name, const SegmentFormat& format,
                                       std::chrono::milliseconds wait);

}  // namespace kvtier
