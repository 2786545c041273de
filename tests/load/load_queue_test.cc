// The load queue on its own: keys in order, a full ring refused, the serving mark, tickets and
// completions, room requests, and a ring whose creator died before publishing it.
#include "load/load_queue.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/versioned_segment.h"

namespace kvtier {
namespace {

struct ScopedQueue {
  std::string name;
  ScopedQueue() {
    static std::atomic<int> n{0};
    name = "kvtier-test-loads-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  }
  ~ScopedQueue() { (void)LoadQueue::destroy(name); }
};

BlockKey key(uint64_t i) { return {0x6c6f6164ULL, i + 1}; }

TEST(LoadQueue, KeysComeOutInOrderAndAFullRingIsRefused) {
  ScopedQueue q;
  auto daemon = LoadQueue::open_or_create(q.name, 4).value();
  auto client = LoadQueue::attach(q.name).value();
  const std::vector<BlockKey> three{key(0), key(1), key(2)};
  auto ticket = client->push(three);
  ASSERT_TRUE(ticket.ok());
  const std::vector<BlockKey> two{key(3), key(4)};
  EXPECT_EQ(client->push(two).status().code(), StatusCode::kResourceExhausted) << "4 keys of room, 5 asked";
  std::vector<BlockKey> out(8);
  uint64_t end = 0;
  ASSERT_EQ(daemon->pop(out, &end), 3u);
  EXPECT_EQ(out[0], key(0));
  EXPECT_EQ(out[2], key(2));
  EXPECT_EQ(end, *ticket);
  EXPECT_LT(client->handled_through(), *ticket);
  daemon->complete(end);
  EXPECT_GE(client->handled_through(), *ticket) << "the request is handled";
  EXPECT_TRUE(client->push(two).ok()) << "room again once popped";
}

TEST(LoadQueue, TheServingMarkIsOneDaemonsAndGoesWithIt) {
  ScopedQueue q;
  auto daemon = LoadQueue::open_or_create(q.name, 16).value();
  auto client = LoadQueue::attach(q.name).value();
  EXPECT_FALSE(client->served());
  ASSERT_TRUE(daemon->start_serving().ok());
  EXPECT_TRUE(client->served());
  auto second = LoadQueue::attach(q.name).value();
  std::atomic<int> code{0};
  std::thread([&] { code = static_cast<int>(second->start_serving().code()); }).join();
  EXPECT_EQ(code.load(), static_cast<int>(StatusCode::kAlreadyExists)) << "one server at a time";
  daemon->stop_serving();
  EXPECT_FALSE(client->served());
  // A daemon killed while serving: the mark is released by the kernel (a robust mutex).
  const pid_t child = ::fork();
  if (child == 0) {
    auto q2 = LoadQueue::attach(q.name);
    _exit(q2.ok() && (*q2)->start_serving().ok() ? (::pause(), 0) : 1);  // _exit: no inherited destructors
  }
  for (int i = 0; i < 1000 && !client->served(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_TRUE(client->served()) << "the child serves";  // and the child is killed either way
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_FALSE(client->served()) << "a killed server leaves no mark";
}

TEST(LoadQueue, RoomRequestsWakeTheDaemonAndItsPassWakesTheClient) {
  ScopedQueue q;
  auto daemon = LoadQueue::open_or_create(q.name, 16).value();
  auto client = LoadQueue::attach(q.name).value();
  const uint32_t asked = daemon->room_requests();
  const uint32_t passes = client->room_passes();
  std::thread engine([&] { client->request_room(); });
  daemon->wait_for_room_request(asked, std::chrono::seconds(5));
  engine.join();
  EXPECT_NE(daemon->room_requests(), asked);
  daemon->room_made();
  client->wait_for_room(passes, std::chrono::seconds(5));
  EXPECT_NE(client->room_passes(), passes);
}

TEST(LoadQueue, ARingWhoseCreatorDiedBeforePublishingIsReplaced) {
  ScopedQueue q;
  // What a daemon killed inside open_or_create leaves: the object, no magic.
  ASSERT_TRUE(SharedSegment::create(q.name, 1 << 16).ok());
  EXPECT_EQ(LoadQueue::attach(q.name).status().code(), StatusCode::kUnavailable);
  auto daemon = LoadQueue::open_or_create(q.name, 16);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_TRUE(LoadQueue::attach(q.name).ok());
}

}  // namespace
}  // namespace kvtier
