// The event log over a real shared-memory index: gap-free sequences, epochs, replay, resync
// markers, snapshots.
#include "events/event_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace kvtier::events {
namespace {

struct TestIndex {
  std::string name = "kvtier-evtest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  BlockIndex index;
  static inline int counter = 0;

  explicit TestIndex(uint64_t ring_records = 1 << 12) : index(make(name, ring_records)) {}
  ~TestIndex() { (void)BlockIndex::destroy(name); }
  static BlockIndex make(const std::string& name, uint64_t ring_records) {
    (void)BlockIndex::destroy(name);
    IndexOptions o;
    o.segment_name = name;
    o.capacity = 4096;
    o.node_name = "evtest";
    o.change_ring_records = ring_records;
    return BlockIndex::create(o).value();
  }
  void put(uint64_t i, Tier tier = Tier::kHost) {
    ASSERT_TRUE(index.insert(BlockRecord{key(i), BlockKey{0, 7}, 1, 4096, tier, i + 1}).ok());
  }
  static BlockKey key(uint64_t i) { return BlockKey{0xe0e0 + i, i * 31 + 1}; }
};

TEST(EventLog, ResidencyChangesBecomeGapFreeEvents) {
  TestIndex t;
  EventLog log(t.index, {"node-a", 1024});
  t.put(1);
  t.put(2);
  ASSERT_TRUE(t.index.insert(BlockRecord{TestIndex::key(1), BlockKey{0, 7}, 1, 4096, Tier::kSsd, 99}).ok());
  ASSERT_TRUE(t.index.drop_tier(TestIndex::key(1), Tier::kHost).ok());
  ASSERT_TRUE(t.index.remove(TestIndex::key(2)).ok());
  EXPECT_EQ(log.poll(), 5u);
  const EventRead r = log.read(0, 100);
  ASSERT_FALSE(r.resync);
  ASSERT_EQ(r.events.size(), 5u);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(r.events[i].seq, i);
  EXPECT_EQ(r.events[0].kind, Event::Kind::kStored);
  EXPECT_EQ(r.events[0].key, TestIndex::key(1));
  EXPECT_EQ(r.events[0].tiers_after, tier_bit(Tier::kHost));
  EXPECT_EQ(r.events[2].tiers_after, tier_bit(Tier::kHost) | tier_bit(Tier::kSsd));
  EXPECT_EQ(r.events[3].kind, Event::Kind::kRemoved);
  EXPECT_EQ(r.events[3].tiers_after, tier_bit(Tier::kSsd));
  EXPECT_EQ(r.events[4].tiers_after, 0) << "the block left the node";
  EXPECT_EQ(r.next_seq, 5u);
  EXPECT_EQ(log.node_id(), "node-a");
  EXPECT_TRUE(log.read(5, 10).events.empty());
}

TEST(EventLog, EachStartIsANewEpochThatBeginsAtTheIndexsCurrentPosition) {
  TestIndex t;
  t.put(1);
  EventLog first(t.index, {"n", 64});
  t.put(2);
  EventLog second(t.index, {"n", 64});
  EXPECT_NE(first.epoch(), second.epoch());
  EXPECT_EQ(first.poll(), 1u);
  EXPECT_EQ(second.poll(), 0u) << "changes before a start are what the snapshot shows";
  EXPECT_EQ(second.snapshot().keys[tier_index(Tier::kHost)].size(), 2u);
}

TEST(EventLog, ReadingOlderThanTheRingIsAResyncNotASilentGap) {
  TestIndex t;
  EventLog log(t.index, {"n", 8});
  for (uint64_t i = 0; i < 20; ++i) t.put(i);
  log.poll();
  EXPECT_TRUE(log.read(0, 100).resync);
  const EventRead r = log.read(12, 100);
  EXPECT_FALSE(r.resync);
  EXPECT_EQ(r.events.size(), 8u);
  EXPECT_TRUE(log.read(21, 10).resync) << "a sequence the log never had (another epoch's)";
  EXPECT_EQ(log.stats().oldest_seq, 12u);
}

TEST(EventLog, ChangesTheIndexLostBeforeThePollMakeCaughtUpReadersResync) {
  TestIndex t(/*ring_records=*/16);
  EventLog log(t.index, {"n", 1024});
  t.put(0);
  log.poll();
  const uint64_t caught_up = log.next_seq();
  for (uint64_t i = 1; i < 100; ++i) t.put(i);  // laps the index's 16-record ring
  log.poll();
  EXPECT_GE(log.stats().index_gaps, 1u);
  EXPECT_TRUE(log.read(caught_up, 100).resync);
  const Snapshot snap = log.snapshot();
  EXPECT_EQ(snap.keys[tier_index(Tier::kHost)].size(), 100u);
  EXPECT_FALSE(log.read(snap.as_of_seq, 100).resync) << "after a snapshot the stream goes on";
}

TEST(EventLog, SnapshotPlusLaterEventsIsTheWholeState) {
  TestIndex t;
  EventLog log(t.index, {"n", 1024});
  for (uint64_t i = 0; i < 10; ++i) t.put(i, i % 2 == 0 ? Tier::kHost : Tier::kSsd);
  log.poll();
  const Snapshot snap = log.snapshot();
  EXPECT_EQ(snap.epoch, log.epoch());
  EXPECT_EQ(snap.keys[tier_index(Tier::kHost)].size(), 5u);
  EXPECT_EQ(snap.keys[tier_index(Tier::kSsd)].size(), 5u);
  t.put(10);
  log.poll();
  const EventRead r = log.read(snap.as_of_seq, 100);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].key, TestIndex::key(10));
}

TEST(EventLog, WaitForWakesWhenEventsArrive) {
  TestIndex t;
  EventLog log(t.index, {"n", 1024});
  EXPECT_FALSE(log.wait_for(0, std::chrono::milliseconds(5)));
  std::thread poller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    t.put(1);
    log.poll();
  });
  EXPECT_TRUE(log.wait_for(0, std::chrono::seconds(5)));
  poller.join();
}

}  // namespace
}  // namespace kvtier::events
