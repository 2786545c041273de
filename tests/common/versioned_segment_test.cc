// The one creation protocol of the node's shared-memory segments (common/versioned_segment.h).
#include "common/versioned_segment.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace kvtier {
namespace {

struct TestHeader {
  SegmentPreamble preamble;
  uint64_t payload;
};

constexpr SegmentFormat kFormat{"test segment", 0x74736574ULL, 2, 3, sizeof(TestHeader)};

struct ScopedName {
  std::string name;
  ScopedName() {
    static std::atomic<int> n{0};
    name = "kvtier-test-versioned-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  }
  ~ScopedName() { (void)SharedSegment::destroy(name); }
};

TEST(VersionedSegment, APublishedSegmentAttachesWithItsVersion) {
  ScopedName n;
  auto made = create_segment(n.name, 4096, kFormat);
  ASSERT_TRUE(made.ok()) << made.status();
  static_cast<TestHeader*>((*made)->address())->payload = 42;
  publish_segment(**made, kFormat);
  auto attached = attach_segment(n.name, kFormat, std::chrono::milliseconds(10));
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_EQ(attached->version, 3u);
  EXPECT_EQ(static_cast<const TestHeader*>(attached->segment->address())->payload, 42u);
  EXPECT_EQ(attach_segment(n.name + "-none", kFormat, std::chrono::milliseconds(10)).status().code(),
            StatusCode::kNotFound);
}

TEST(VersionedSegment, AnAttacherWaitsForACreatorStillInitialising) {
  ScopedName n;
  auto made = create_segment(n.name, 4096, kFormat);
  ASSERT_TRUE(made.ok());
  std::thread creator([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    static_cast<TestHeader*>((*made)->address())->payload = 7;  // written before the magic
    publish_segment(**made, kFormat);
  });
  auto attached = attach_segment(n.name, kFormat, std::chrono::seconds(5));
  creator.join();
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_EQ(static_cast<const TestHeader*>(attached->segment->address())->payload, 7u);
}

TEST(VersionedSegment, UnfinishedForeignAndOtherVersionSegmentsAreClearErrors) {
  ScopedName unfinished;
  ASSERT_TRUE(create_segment(unfinished.name, 4096, kFormat).ok());  // its creator "died" before publishing
  const auto never = attach_segment(unfinished.name, kFormat, std::chrono::milliseconds(20));
  EXPECT_EQ(never.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(never.status().message().find("never finished by its creator"), std::string::npos) << never.status();

  ScopedName foreign;
  auto other = create_segment(foreign.name, 4096, SegmentFormat{"other", 0x99, 1, 1, sizeof(TestHeader)});
  ASSERT_TRUE(other.ok());
  publish_segment(**other, SegmentFormat{"other", 0x99, 1, 1, sizeof(TestHeader)});
  const auto bad_magic = attach_segment(foreign.name, kFormat, std::chrono::milliseconds(10));
  EXPECT_EQ(bad_magic.status().code(), StatusCode::kVersionMismatch);
  EXPECT_NE(bad_magic.status().message().find("bad magic"), std::string::npos) << bad_magic.status();

  for (const uint32_t version : {1u, 4u}) {
    ScopedName old;
    SegmentFormat writer = kFormat;
    writer.version = version;
    auto made = create_segment(old.name, 4096, writer);
    ASSERT_TRUE(made.ok());
    publish_segment(**made, writer);
    const auto r = attach_segment(old.name, kFormat, std::chrono::milliseconds(10));
    EXPECT_EQ(r.status().code(), StatusCode::kVersionMismatch) << version;
    EXPECT_NE(r.status().message().find("format version " + std::to_string(version) + ", this build reads 2 to 3"),
              std::string::npos)
        << r.status();
  }
}

}  // namespace
}  // namespace kvtier
