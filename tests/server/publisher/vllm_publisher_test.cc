// kvtierd's vLLM-format event publisher end to end: the real daemon with events.vllm on, blocks
// written through the client library with their token ids, and a ZMQ subscriber that reads the
// stream the way llm-d's vLLM adapter does (three frames, topic kv@<pod>@<model>, positional
// msgpack fields). Stored chains with tokens per pod, demotion and eviction per medium, replay,
// the map encoding, a client killed while recording tokens, engines naming themselves (and
// dying: the node's blocks withdrawn from their topic), and daemon restarts (every block
// announced again root first, what went away meanwhile withdrawn; never AllBlocksCleared).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <msgpack.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "daemon_process.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "node_test_support.h"
#include "server/indexer/vllm_events.h"

namespace kvtier::node {
namespace {

using testing::Daemon;
using testing::ScratchDir;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kEndOfReplay = ~uint64_t{0};
const std::string kModel = "node-test/model";

struct PublishingNode {
  ScratchDir dir;
  std::string node = "vpub" + std::to_string(::getpid());
  std::string address = "127.0.0.1:" + std::to_string(testing::free_port());
  int metrics_port = testing::free_port();
  std::string pub = "tcp://127.0.0.1:" + std::to_string(testing::free_port());
  std::string replay = "tcp://127.0.0.1:" + std::to_string(testing::free_port());
  std::string config = dir / "node.yaml";
  Daemon daemon;
  std::unique_ptr<Client> client;
  std::optional<NamespaceHandle> ns;

  explicit PublishingNode(const std::string& encoding = "array", const std::string& pods = "pod-a, pod-b",
                          const std::string& more = "", bool start_now = true) {
    std::ostringstream sections;
    sections << "index: {capacity: 16384}\nhost: {bytes: 8MiB, slab_bytes: 1MiB}\n"
             << "ssd: {dir: " << (dir / "ssd") << ", bytes: 64MiB, region_bytes: 2MiB, admission: {min_accesses: 1}}\n"
             << "server: {grpc_address: \"" << address << "\", metrics_address: \"127.0.0.1:" << metrics_port << "\"}\n"
             << "events: {vllm: {enabled: true, endpoint: \"" << pub << "\", replay_endpoint: \"" << replay
             << "\", pod_ids: \"" << pods << "\", " << more << "encoding: " << encoding
             << ", token_ring: 4096, max_block_tokens: 64}}\n";
    testing::write_node_config(config, node, sections.str());
    if (start_now) start();
  }
  void start() {
    daemon = Daemon::start(config);
    client = Client::open(client_options()).value();
    ns = client->register_namespace(testing::small_namespace()).value();
  }
  ClientOptions client_options() const { return testing::daemon_client_options(node); }
  ~PublishingNode() {
    client.reset();
    if (daemon.pid > 0) daemon.stop();
    testing::destroy_daemon_segments(node);
  }

  // Puts the chain of `tokens`' whole blocks, each with its token ids.
  std::vector<BlockKey> put_with_tokens(const std::vector<TokenId>& tokens) {
    const auto keys = client->keys(*ns, tokens);
    const uint32_t bt = ns->ns.block_tokens();
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto bytes = ssd::testing::block_bytes(keys[i], ns->ns.bytes_per_block());
      EXPECT_TRUE(client
                      ->put(*ns, keys[i], i == 0 ? ns->ns.root() : keys[i - 1], bytes,
                            std::span<const TokenId>(tokens).subspan(i * bt, bt))
                      .ok());
    }
    return keys;
  }

  void evict(v1::Tier tier) {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto admin = v1::Admin::NewStub(channel);
    grpc::ClientContext c;
    v1::EvictRequest r;
    r.set_tier(tier);
    r.set_bytes(64ULL << 20);
    v1::EvictResponse out;
    ASSERT_TRUE(admin->Evict(&c, r, &out).ok());
  }
};

// One event as llm-d's vLLM adapter reads it: positional fields of the array form.
struct LlmdEvent {
  std::string tag;
  std::vector<uint64_t> hashes;
  std::optional<uint64_t> parent;
  std::vector<uint32_t> tokens;
  uint32_t block_size = 0;
  std::string medium;
};

struct Message {
  std::string topic;
  uint64_t seq = 0;
  std::string payload;
  std::vector<LlmdEvent> events;
};

uint64_t big_endian(const zmq::message_t& m) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<const uint8_t*>(m.data())[i];
  return v;
}

std::vector<LlmdEvent> decode_positional(const std::string& payload) {
  std::vector<LlmdEvent> out;
  const msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
  const msgpack::object_array& batch = h.get().via.array;
  const msgpack::object_array& evs = batch.ptr[1].via.array;
  for (uint32_t i = 0; i < evs.size; ++i) {
    const msgpack::object_array& f = evs.ptr[i].via.array;
    LlmdEvent e;
    e.tag = f.ptr[0].as<std::string>();
    if (e.tag == "BlockStored") {
      e.hashes = f.ptr[1].as<std::vector<uint64_t>>();
      if (!f.ptr[2].is_nil()) e.parent = f.ptr[2].as<uint64_t>();
      e.tokens = f.ptr[3].as<std::vector<uint32_t>>();
      e.block_size = f.ptr[4].as<uint32_t>();
      e.medium = f.ptr[6].as<std::string>();
    } else if (e.tag == "BlockRemoved") {
      e.hashes = f.ptr[1].as<std::vector<uint64_t>>();
      e.medium = f.ptr[2].as<std::string>();
    }
    out.push_back(std::move(e));
  }
  return out;
}

class Subscriber {
 public:
  explicit Subscriber(const std::string& endpoint, bool positional = true) : positional_(positional) {
    sub_.set(zmq::sockopt::subscribe, "kv@");
    sub_.set(zmq::sockopt::rcvtimeo, 100);
    sub_.set(zmq::sockopt::linger, 0);
    sub_.connect(endpoint);
  }

  // Receives until `done(messages)` holds or `timeout` passes; returns whether it held.
  template <typename Done>
  bool until(Done done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    while (!done(messages)) {
      if (Clock::now() > deadline) return false;
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(sub_, std::back_inserter(frames))) continue;
      EXPECT_EQ(frames.size(), 3U);
      EXPECT_EQ(frames[1].size(), 8U);
      Message m;
      m.topic = frames[0].to_string();
      m.seq = big_endian(frames[1]);
      m.payload = frames[2].to_string();
      if (positional_) m.events = decode_positional(m.payload);
      messages.push_back(std::move(m));
    }
    return true;
  }

  // Stored events of `topic` for any of `hashes`, in arrival order.
  std::vector<LlmdEvent> events(const std::string& topic, const std::string& tag) const {
    std::vector<LlmdEvent> out;
    for (const Message& m : messages) {
      if (m.topic != topic) continue;
      for (const LlmdEvent& e : m.events) {
        if (e.tag == tag) out.push_back(e);
      }
    }
    return out;
  }

  std::vector<Message> messages;

 private:
  bool positional_;
  zmq::context_t ctx_{1};
  zmq::socket_t sub_{ctx_, zmq::socket_type::sub};
};

// Hashes an event list mentions, by medium.
std::map<std::string, std::vector<uint64_t>> hashes_by_medium(const std::vector<LlmdEvent>& events) {
  std::map<std::string, std::vector<uint64_t>> out;
  for (const LlmdEvent& e : events) out[e.medium].insert(out[e.medium].end(), e.hashes.begin(), e.hashes.end());
  return out;
}

bool covers(const std::vector<uint64_t>& have, const std::vector<BlockKey>& keys) {
  for (const BlockKey& k : keys) {
    if (std::find(have.begin(), have.end(), k.lo) == have.end()) return false;
  }
  return true;
}

// PUB drops what it sends before a subscription reaches it: put throwaway blocks until the
// subscriber hears one, then start clean.
void join(PublishingNode& n, Subscriber& s) {
  uint32_t seed = 900;
  ASSERT_TRUE(s.until(
      [&](const std::vector<Message>& m) {
        if (!m.empty()) return true;
        n.put_with_tokens(testing::tokens(16, seed++));
        return false;
      },
      std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  (void)s.until([](const std::vector<Message>&) { return false; }, std::chrono::milliseconds(100));
  s.messages.clear();
}

TEST(VllmPublisher, StoredChainsCarryTheirTokensUnderEveryPodsTopic) {
  PublishingNode n;
  Subscriber s(n.pub);
  join(n, s);
  const auto tokens = testing::tokens(5 * 16, 7);
  const auto keys = n.put_with_tokens(tokens);
  const std::string topic_a = "kv@pod-a@" + kModel, topic_b = "kv@pod-b@" + kModel;
  ASSERT_TRUE(s.until([&](const std::vector<Message>&) {
    return covers(hashes_by_medium(s.events(topic_a, "BlockStored"))["CPU"], keys) &&
           covers(hashes_by_medium(s.events(topic_b, "BlockStored"))["CPU"], keys);
  })) << "stored blocks reached both pods' topics";

  for (const std::string& topic : {topic_a, topic_b}) {
    // However the publisher batched them, each event is a run of the chain: its parent is the
    // block before its first (none for the first block), and its tokens are its blocks' tokens.
    size_t next = 0;
    for (const LlmdEvent& e : s.events(topic, "BlockStored")) {
      ASSERT_EQ(e.medium, "CPU");
      ASSERT_EQ(e.block_size, 16U);
      ASSERT_EQ(e.hashes[0], keys[next].lo);
      if (next == 0) {
        EXPECT_FALSE(e.parent.has_value());
      } else {
        EXPECT_EQ(e.parent, keys[next - 1].lo);
      }
      ASSERT_EQ(e.tokens.size(), e.hashes.size() * 16);
      EXPECT_TRUE(std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin() + static_cast<long>(next * 16)));
      for (size_t i = 0; i < e.hashes.size(); ++i) EXPECT_EQ(e.hashes[i], keys[next + i].lo);
      next += e.hashes.size();
    }
    EXPECT_EQ(next, keys.size());
  }
  // One sequence across the socket, gap-free.
  for (size_t i = 1; i < s.messages.size(); ++i) EXPECT_EQ(s.messages[i].seq, s.messages[i - 1].seq + 1);
  EXPECT_GE(n.client->stats().tokens_recorded, 5U + 1U);  // and the blocks join() needed
}

TEST(VllmPublisher, DemotionAndEvictionAreStoredAndRemovedPerMedium) {
  // Media named as Dynamo's router reads them.
  PublishingNode n("array", "pod-a", "host_medium: CPU_PINNED, ssd_medium: DISK, ");
  Subscriber s(n.pub);
  join(n, s);
  const auto keys = n.put_with_tokens(testing::tokens(3 * 16, 21));
  const std::string topic = "kv@pod-a@" + kModel;
  ASSERT_TRUE(s.until(
      [&](const auto&) { return covers(hashes_by_medium(s.events(topic, "BlockStored"))["CPU_PINNED"], keys); }));

  n.evict(v1::TIER_HOST);  // demotes to SSD
  ASSERT_TRUE(s.until([&](const auto&) {
    return covers(hashes_by_medium(s.events(topic, "BlockStored"))["DISK"], keys) &&
           covers(hashes_by_medium(s.events(topic, "BlockRemoved"))["CPU_PINNED"], keys);
  })) << "a demotion is a store on SSD and a removal from host memory";
  for (const LlmdEvent& e : s.events(topic, "BlockStored")) {
    if (e.medium == "DISK") {
      // Every store carries the block's tokens: Dynamo computes its keys from them and drops a
      // store without them.
      EXPECT_EQ(e.tokens.size(), e.hashes.size() * 16);
    }
  }
  n.evict(v1::TIER_SSD);
  ASSERT_TRUE(
      s.until([&](const auto&) { return covers(hashes_by_medium(s.events(topic, "BlockRemoved"))["DISK"], keys); }));

  // Blocks of a namespace the daemon does not serve are not published, only counted.
  NamespaceSpec other = testing::small_namespace();
  other.model_id = "not-configured/model";
  auto ons = n.client->register_namespace(other).value();
  const auto okeys = n.client->keys(ons, testing::tokens(16, 5));
  ASSERT_TRUE(
      n.client->put(ons, okeys[0], ons.ns.root(), ssd::testing::block_bytes(okeys[0], ons.ns.bytes_per_block())).ok());
  std::string page;
  for (auto deadline = Clock::now() + std::chrono::seconds(5); Clock::now() < deadline;) {
    page = testing::http_get(n.metrics_port, "/metrics");
    if (page.find("kvtier_vllm_unknown_namespace_total 1") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(page.find("kvtier_vllm_unknown_namespace_total 1"), std::string::npos) << page;
  EXPECT_NE(page.find(R"(kvtier_vllm_blocks_total{event="stored",tokens="yes"})"), std::string::npos);
  for (const Message& m : s.messages) EXPECT_EQ(m.topic, topic);
}

TEST(VllmPublisher, ReplayAnswersFromTheAskedSeqThenTheEndMarker) {
  PublishingNode n("array", "pod-a");
  Subscriber s(n.pub);
  join(n, s);
  for (uint32_t i = 0; i < 4; ++i) (void)n.put_with_tokens(testing::tokens(2 * 16, 40 + i));
  ASSERT_TRUE(s.until([&](const auto& m) {
    size_t stored = 0;
    for (const Message& msg : m) {
      for (const LlmdEvent& e : msg.events) stored += e.tag == "BlockStored" ? e.hashes.size() : 0;
    }
    return stored >= 8;
  }));
  const uint64_t from = s.messages.front().seq;

  zmq::context_t ctx{1};
  zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
  dealer.set(zmq::sockopt::rcvtimeo, 5000);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(n.replay);
  uint8_t start[8];
  for (int i = 0; i < 8; ++i) start[i] = static_cast<uint8_t>(from >> (8 * (7 - i)));
  dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(start, sizeof(start)), zmq::send_flags::none);
  std::map<uint64_t, std::string> replayed;
  for (;;) {
    std::vector<zmq::message_t> frames;
    ASSERT_TRUE(zmq::recv_multipart(dealer, std::back_inserter(frames))) << "replay answered";
    ASSERT_EQ(frames.size(), 4U);  // "", topic, seq, payload
    EXPECT_EQ(frames[0].size(), 0U);
    const uint64_t seq = big_endian(frames[2]);
    if (seq == kEndOfReplay) {
      EXPECT_EQ(frames[3].size(), 0U);
      break;
    }
    EXPECT_EQ(frames[1].to_string(), "kv@pod-a@" + kModel);
    replayed[seq] = frames[3].to_string();
  }
  ASSERT_FALSE(replayed.empty());
  EXPECT_EQ(replayed.begin()->first, from);
  uint64_t expect = from;
  for (const auto& [seq, payload] : replayed) EXPECT_EQ(seq, expect++);
  for (const Message& m : s.messages) {
    ASSERT_TRUE(replayed.count(m.seq)) << m.seq;
    EXPECT_EQ(replayed[m.seq], m.payload) << "replay sends the bytes that were published";
  }
}

TEST(VllmPublisher, MapEncodingReadsBackThroughAVllmDecoder) {
  PublishingNode n("map", "pod-m");
  Subscriber s(n.pub, /*positional=*/false);
  join(n, s);
  const auto keys = n.put_with_tokens(testing::tokens(3 * 16, 60));
  std::vector<uint64_t> seen;
  ASSERT_TRUE(s.until([&](const std::vector<Message>& msgs) {
    seen.clear();
    for (const Message& m : msgs) {
      auto batch = indexer::decode_vllm_batch({reinterpret_cast<const uint8_t*>(m.payload.data()), m.payload.size()});
      EXPECT_TRUE(batch.ok());
      if (!batch.ok()) continue;
      EXPECT_EQ(batch->malformed_events, 0U);
      for (const auto& e : batch->events) {
        if (e.kind != indexer::VllmEvent::Kind::kStored) continue;
        EXPECT_EQ(e.tier, Tier::kHost);
        EXPECT_EQ(e.token_count, e.hashes.size() * 16);
        seen.insert(seen.end(), e.hashes.begin(), e.hashes.end());
      }
    }
    return covers(seen, keys);
  }));
}

TEST(VllmPublisher, AClientKilledWhileRecordingTokensStopsNothing) {
  PublishingNode n("array", "pod-k");
  // A writer SIGKILLed wherever it is, possibly between its ring ticket and its last word.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto c = Client::open(n.client_options());
    if (!c.ok()) ::_exit(2);
    auto ns = (*c)->register_namespace(testing::small_namespace()).value();
    for (uint32_t seed = 5000;; ++seed) {
      const auto t = testing::tokens(16, seed);
      const auto k = (*c)->keys(ns, t);
      (void)(*c)->put(ns, k[0], ns.ns.root(), ssd::testing::block_bytes(k[0], ns.ns.bytes_per_block()), t);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);

  Subscriber s(n.pub);
  join(n, s);
  const auto tokens = testing::tokens(4 * 16, 77);
  const auto keys = n.put_with_tokens(tokens);
  const std::string topic = "kv@pod-k@" + kModel;
  ASSERT_TRUE(
      s.until([&](const auto&) { return covers(hashes_by_medium(s.events(topic, "BlockStored"))["CPU"], keys); }));
  size_t with_tokens = 0;
  for (const LlmdEvent& e : s.events(topic, "BlockStored")) {
    for (size_t i = 0; i < e.hashes.size(); ++i) {
      if (std::find_if(keys.begin(), keys.end(), [&](const BlockKey& k) { return k.lo == e.hashes[i]; }) == keys.end())
        continue;
      ASSERT_EQ(e.tokens.size(), e.hashes.size() * 16);
      ++with_tokens;
    }
  }
  EXPECT_EQ(with_tokens, keys.size());
}

TEST(VllmPublisher, EnginesThatNameThemselvesArePublishedAsWhileTheyLive) {
  PublishingNode n("array", "");
  const auto first = n.put_with_tokens(testing::tokens(2 * 16, 31));
  Subscriber s(n.pub);
  join(n, s);  // under the node's name: no pod is configured and no engine has named itself
  EXPECT_EQ(s.messages.size(), 0U);
  const std::string node_topic = "kv@" + n.node + "@" + kModel;

  // An engine process names itself, then is killed.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t engine = ::fork();
  ASSERT_GE(engine, 0);
  if (engine == 0) {
    ClientOptions co = n.client_options();
    co.engine_id = "10.1.2.3";
    auto c = Client::open(co);
    const char byte = c.ok() ? 'y' : 'n';
    (void)::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');
  const std::string engine_topic = "kv@10.1.2.3@" + kModel;
  // The engine's topic starts with the node's whole content, then carries new blocks.
  ASSERT_TRUE(s.until(
      [&](const auto&) { return covers(hashes_by_medium(s.events(engine_topic, "BlockStored"))["CPU"], first); }));
  // The node's name left the pods: its topic has the node's blocks withdrawn.
  ASSERT_TRUE(s.until(
      [&](const auto&) { return covers(hashes_by_medium(s.events(node_topic, "BlockRemoved"))["CPU"], first); }));
  const auto second = n.put_with_tokens(testing::tokens(2 * 16, 32));
  ASSERT_TRUE(s.until(
      [&](const auto&) { return covers(hashes_by_medium(s.events(engine_topic, "BlockStored"))["CPU"], second); }));
  for (const LlmdEvent& e : s.events(engine_topic, "BlockStored")) {
    if (e.hashes[0] == second[0].lo) {
      EXPECT_EQ(e.tokens.size(), e.hashes.size() * 16);
    }
  }

  ::kill(engine, SIGKILL);
  ::waitpid(engine, nullptr, 0);
  // Once the node reclaims the dead engine's slot, blocks go out under the node's name again.
  uint32_t seed = 33;
  std::vector<BlockKey> later;
  ASSERT_TRUE(s.until(
      [&](const auto&) {
        if (!later.empty() && covers(hashes_by_medium(s.events(node_topic, "BlockStored"))["CPU"], later)) return true;
        later = n.put_with_tokens(testing::tokens(16, seed++));
        return false;
      },
      std::chrono::seconds(15)));
  for (const LlmdEvent& e : s.events(engine_topic, "BlockStored")) EXPECT_NE(e.hashes[0], later[0].lo);
  // The dead engine's topic has the node's blocks withdrawn (a consumer must not route to it for
  // them; the ones the loop above evicted went out as removals already).
  ASSERT_TRUE(s.until([&](const auto&) {
    const auto removed = hashes_by_medium(s.events(engine_topic, "BlockRemoved"))["CPU"];
    return covers(removed, first) && covers(removed, second);
  }));
  // Only the node's own blocks are ever withdrawn, never everything the pod holds.
  for (const Message& m : s.messages) {
    for (const LlmdEvent& e : m.events) EXPECT_NE(e.tag, "AllBlocksCleared") << m.topic;
  }
}

TEST(VllmPublisher, ATakenEndpointStopsTheDaemonFromStarting) {
  // An operator who configured events expects them: a node that cannot publish must not come up
  // silent. The endpoint is held by a plain listening socket.
  PublishingNode n("array", "pod-a", "", /*start_now=*/false);
  const int port = std::stoi(n.pub.substr(n.pub.rfind(':') + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  try {
    n.daemon = Daemon::start(n.config);
    ADD_FAILURE() << "kvtierd started with its vLLM endpoint taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("vLLM publisher on " + n.pub), std::string::npos) << e.what();
  }
  ::close(fd);
  // Freed, the same configuration serves.
  n.start();
  EXPECT_TRUE(n.put_with_tokens(testing::tokens(16, 3)).size() == 1);
}

// Everything published since the daemon started, read back from the replay socket.
std::vector<LlmdEvent> replay_all(const PublishingNode& n, std::vector<uint64_t>* seqs,
                                  const std::function<bool(const std::vector<LlmdEvent>&)>& enough) {
  zmq::context_t ctx{1};
  zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
  dealer.set(zmq::sockopt::rcvtimeo, 5000);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(n.replay);
  const uint8_t zero[8] = {};
  std::vector<LlmdEvent> events;
  // The start's announcements go out as the daemon starts; ask until they are there to replay.
  for (auto deadline = Clock::now() + std::chrono::seconds(10); Clock::now() < deadline;) {
    events.clear();
    seqs->clear();
    dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer.send(zmq::buffer(zero, sizeof(zero)), zmq::send_flags::none);
    for (;;) {
      std::vector<zmq::message_t> frames;
      EXPECT_TRUE(zmq::recv_multipart(dealer, std::back_inserter(frames)));
      if (frames.size() < 4) return events;
      const uint64_t seq = big_endian(frames[2]);
      if (seq == kEndOfReplay) break;
      seqs->push_back(seq);
      for (auto& e : decode_positional(frames[3].to_string())) events.push_back(std::move(e));
    }
    if (enough(events)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return events;
}

std::vector<uint64_t> hashes_of(const std::vector<LlmdEvent>& events, const std::string& tag,
                                const std::string& medium) {
  std::vector<uint64_t> out;
  for (const LlmdEvent& e : events) {
    if (e.tag == tag && e.medium == medium) out.insert(out.end(), e.hashes.begin(), e.hashes.end());
  }
  return out;
}

TEST(VllmPublisher, ARestartStartsTheSeqAgainAndAnnouncesEveryResidentBlockRootFirstWithoutAClear) {
  PublishingNode n("array", "pod-r");
  const auto keys = n.put_with_tokens(testing::tokens(6 * 16, 88));
  const auto branch = n.put_with_tokens([] {
    auto t = testing::tokens(6 * 16, 88);
    for (size_t i = 4 * 16; i < t.size(); ++i) t[i] += 1;  // shares the first four blocks
    return t;
  }());
  n.client.reset();
  ASSERT_EQ(n.daemon.stop(), 0);
  n.start();  // a warm restart: the blocks are still in host memory

  std::vector<uint64_t> seqs;
  const auto events = replay_all(n, &seqs, [&](const auto& evs) {
    const auto stored = hashes_of(evs, "BlockStored", "CPU");
    return covers(stored, keys) && covers(stored, branch);
  });
  ASSERT_FALSE(seqs.empty());
  EXPECT_EQ(seqs.front(), 0U) << "the seq restarts with the daemon, as an engine's does";
  std::vector<uint64_t> announced;
  for (const LlmdEvent& e : events) {
    EXPECT_NE(e.tag, "AllBlocksCleared") << "consumers would drop the engines' own GPU blocks with it";
    if (e.tag != "BlockStored") continue;
    // Root first: a block's parent was announced before it (llm-d drops a block whose parent it
    // does not know).
    if (e.parent) {
      EXPECT_NE(std::find(announced.begin(), announced.end(), *e.parent), announced.end())
          << "block " << e.hashes[0] << " came before its parent " << *e.parent;
    }
    announced.insert(announced.end(), e.hashes.begin(), e.hashes.end());
  }
  EXPECT_TRUE(covers(announced, keys)) << "every resident block is announced again";
  EXPECT_TRUE(covers(announced, branch));
}

TEST(VllmPublisher, ARestartWithdrawsWhatWentAwayWhileTheDaemonWasDown) {
  PublishingNode n("array", "pod-w");
  const auto on_ssd = n.put_with_tokens(testing::tokens(3 * 16, 71));
  n.evict(v1::TIER_HOST);  // demoted: published as STORAGE, withdrawn from CPU
  const auto in_memory = n.put_with_tokens(testing::tokens(2 * 16, 72));
  {
    // The publisher has published both before the stop writes its state.
    Subscriber s(n.pub);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  n.client.reset();
  ASSERT_EQ(n.daemon.stop(), 0);
  ASSERT_TRUE(std::filesystem::exists(std::filesystem::path(n.dir / "ssd") / "vllm-published"))
      << "a clean stop records what it published";
  // The host arena goes (the node's shared memory was wiped); the SSD blocks come back from disk.
  testing::destroy_daemon_segments(n.node);
  n.start();

  std::vector<uint64_t> seqs;
  const auto events = replay_all(n, &seqs, [&](const auto& evs) {
    return covers(hashes_of(evs, "BlockRemoved", "CPU"), in_memory) &&
           covers(hashes_of(evs, "BlockStored", "STORAGE"), on_ssd);
  });
  EXPECT_TRUE(covers(hashes_of(events, "BlockRemoved", "CPU"), in_memory))
      << "blocks lost with host memory are withdrawn on the next start";
  EXPECT_TRUE(covers(hashes_of(events, "BlockStored", "STORAGE"), on_ssd));
  for (const uint64_t h : hashes_of(events, "BlockRemoved", "STORAGE")) {
    EXPECT_EQ(std::find_if(on_ssd.begin(), on_ssd.end(), [&](const BlockKey& k) { return k.lo == h; }), on_ssd.end());
  }
  for (const LlmdEvent& e : events) EXPECT_NE(e.tag, "AllBlocksCleared");
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(n.dir / "ssd") / "vllm-published"))
      << "the state is read once";
}

}  // namespace
}  // namespace kvtier::node
