// RemoteReader against a real kvtierd on loopback: a chain read out of the node's arena over UCX
// with verified bytes, the SSD part loaded first, and the failures docs/transport.md lists: a
// reader that dies holding leases, a lease whose time is up, a node restarted mid-read, a block
// changed while a read is in flight, eviction while leased, UCX unavailable on either end.
// ctest runs this binary twice: UCX_TLS=tcp and UCX_TLS=sm,self (the daemon inherits it).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "client/remote/remote_reader_testing.h"
#include "kvtier/remote_reader.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "served_node.h"

namespace kvtier {
namespace {

using node::testing::Daemon;
using node::testing::ScratchDir;
namespace nt = node::testing;

struct RemoteNode : nt::ServedNode {
  explicit RemoteNode(const std::string& ucx = "{lease_ms: 10000}") : ServedNode("remote", "ucx: " + ucx) {}
  size_t block_bytes() const { return ns->ns.bytes_per_block(); }
  std::vector<BlockKey> chain(size_t blocks, uint32_t seed) {
    auto keys = client->keys(*ns, nt::tokens(blocks * 16, seed));
    return keys;
  }
  // A value from the daemon's /metrics: the first sample line that starts with `series`.
  double metric(const std::string& series) const {
    const std::string page = nt::http_get(metrics_port, "/metrics");
    const size_t at = page.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::strtod(page.c_str() + at + series.size() + 2, nullptr);
  }
  // Waits up to `limit` for the metric to read `want`.
  bool metric_becomes(const std::string& series, double want, std::chrono::milliseconds limit) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (metric(series) != want) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
};

RemoteReaderOptions reader_of(const RemoteNode& n) {
  RemoteReaderOptions o;
  o.address = n.address;
  o.timeout_ms = 10000;
  return o;
}

// Every block in `dest` holds the bytes put_chain stored under its key.
::testing::AssertionResult holds_chain(const std::vector<uint8_t>& dest, const std::vector<BlockKey>& keys,
                                       size_t blocks, size_t block_bytes) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto want = ssd::testing::block_bytes(keys[i], block_bytes);
    if (std::memcmp(dest.data() + i * block_bytes, want.data(), block_bytes) != 0) {
      return ::testing::AssertionFailure() << "block " << i << " came back with other bytes";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(RemoteReader, ReadsAChainOutOfAnotherNodesArenaOverUcx) {
  RemoteNode n;
  const auto keys = n.chain(10, 5);
  nt::put_chain(*n.client, *n.ns, {keys.begin(), keys.begin() + 6});
  auto reader = RemoteReader::open(reader_of(n)).value();
  ASSERT_EQ(reader->path(), RemotePath::kUcx) << reader->fallback_reason();

  std::vector<uint8_t> dest(10 * n.block_bytes());
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->path, RemotePath::kUcx) << reader->fallback_reason();
  EXPECT_EQ(got->blocks, 6u) << "the held prefix, no more";
  EXPECT_EQ(got->held, 6u);
  EXPECT_EQ(got->bytes, 6 * n.block_bytes());
  EXPECT_EQ(got->corrupt, 0u);
  EXPECT_TRUE(holds_chain(dest, keys, 6, n.block_bytes()));
  for (Tier t : got->tiers) EXPECT_EQ(t, Tier::kHost);

  // A destination with room for three blocks gets three, whole.
  std::vector<uint8_t> small(3 * n.block_bytes() + 100);
  auto part = reader->fetch(keys, small);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->blocks, 3u);
  EXPECT_EQ(part->held, 6u);
  EXPECT_TRUE(holds_chain(small, keys, 3, n.block_bytes()));

  // A chain the node does not hold: nothing, successfully.
  auto none = reader->fetch(n.chain(4, 77), dest);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->blocks, 0u);
  EXPECT_EQ(none->held, 0u);

  EXPECT_EQ(reader->stats().ucx_fetches, 3u) << reader->fallback_reason();
  EXPECT_EQ(reader->stats().sessions, 1u) << "one read session serves every fetch";
  EXPECT_TRUE(n.metric_becomes("kvtier_read_leases_open", 0, std::chrono::seconds(5))) << "every lease released";
  EXPECT_EQ(n.metric("kvtier_ucx_reads_enabled"), 1);
  EXPECT_EQ(n.metric("kvtier_blocks_leased_total"), 12) << "a lease covers the held prefix, read or not";

  // A bad key is refused, and the session goes on.
  const auto too_many = reader->fetch(std::vector<BlockKey>(1 << 17, keys[0]), dest);
  EXPECT_EQ(too_many.status().code(), StatusCode::kInvalidArgument) << too_many.status().to_string();
  auto again = reader->fetch(keys, dest);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->blocks, 6u);
}

TEST(RemoteReader, LoadsTheSsdPartBeforeLeasingIt) {
  RemoteNode n;
  const auto keys = n.chain(8, 6);
  nt::put_chain(*n.client, *n.ns, keys);
  // The daemon demotes what Admin.Evict pushes out of host memory (min_accesses 1 here).
  auto admin = v1::Admin::NewStub(grpc::CreateChannel(n.address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ec;
  v1::EvictRequest evict;
  evict.set_tier(v1::TIER_HOST);
  evict.set_bytes(64ULL << 20);
  v1::EvictResponse evicted;
  ASSERT_TRUE(admin->Evict(&ec, evict, &evicted).ok());
  ASSERT_EQ(n.client->match(keys).in(Tier::kSsd), keys.size());
  ASSERT_EQ(n.client->match(keys).in(Tier::kHost), 0u);

  RemoteReaderOptions host_only = reader_of(n);
  host_only.include_ssd = false;
  std::vector<uint8_t> dest(8 * n.block_bytes());
  auto nothing = RemoteReader::open(host_only).value()->fetch(keys, dest);
  ASSERT_TRUE(nothing.ok());
  EXPECT_EQ(nothing->blocks, 0u) << "host only: the SSD blocks are not read";

  auto reader = RemoteReader::open(reader_of(n)).value();
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->path, RemotePath::kUcx);
  ASSERT_EQ(got->blocks, keys.size());
  EXPECT_TRUE(holds_chain(dest, keys, keys.size(), n.block_bytes()));
  for (Tier t : got->tiers) EXPECT_EQ(t, Tier::kSsd);
}

TEST(RemoteReader, AReaderKilledHoldingALeaseLeavesNothingPinned) {
  RemoteNode n;
  const auto keys = n.chain(4, 8);
  nt::put_chain(*n.client, *n.ns, keys);
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t holder = ::fork();
  if (holder == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    std::vector<std::string> args = {KVTIER_TEST_BIN_DIR "/remote_lease_holder", n.address};
    for (const BlockKey& k : keys) args.push_back(k.to_hex());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* said = ::fdopen(out[0], "r");
  char line[128] = {};
  ASSERT_NE(std::fgets(line, sizeof(line), said), nullptr) << "the holder did not lease";
  EXPECT_EQ(std::string(line).rfind("leased 4 ", 0), 0u) << line;
  EXPECT_EQ(n.metric("kvtier_read_leases_open"), 1);
  EXPECT_EQ(n.metric("kvtier_read_leased_blocks"), 4);
  // Pinned: the host tier cannot evict them while the reader holds the lease.
  ASSERT_TRUE(n.client->evict(Tier::kHost, 64ULL << 20, *make_lru_policy()).ok());
  EXPECT_EQ(n.client->match(keys).in(Tier::kHost), keys.size()) << "leased blocks stay in host memory";

  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  std::fclose(said);
  EXPECT_TRUE(n.metric_becomes("kvtier_read_leases_open", 0, std::chrono::seconds(10)))
      << "the dead reader's session ended and its lease with it";
  EXPECT_EQ(n.metric("kvtier_read_leases_ended_total{end=\"session_ended\"}"), 1);
  ASSERT_TRUE(n.client->evict(Tier::kHost, 64ULL << 20, *make_lru_policy()).ok());
  EXPECT_EQ(n.client->match(keys).in(Tier::kHost), 0u) << "unpinned: evictable again";
}

TEST(RemoteReader, ALeaseEndsWhenItsTimeIsUp) {
  RemoteNode n;
  const auto keys = n.chain(3, 9);
  nt::put_chain(*n.client, *n.ns, keys);
  RemoteReaderOptions o = reader_of(n);
  o.lease_ms = 150;
  auto reader = RemoteReader::open(o).value();
  auto lease = reader->lease(keys);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  ASSERT_EQ(lease->blocks().size(), 3u);
  EXPECT_EQ(n.metric("kvtier_read_leases_open"), 1);
  EXPECT_TRUE(n.metric_becomes("kvtier_read_leases_open", 0, std::chrono::seconds(5))) << "the node's reaper ended it";
  EXPECT_EQ(n.metric("kvtier_read_leases_ended_total{end=\"expired\"}"), 1);
  std::vector<uint8_t> dest(3 * n.block_bytes());
  EXPECT_EQ(reader->read(*lease, dest).status().code(), StatusCode::kUnavailable) << "an ended lease is not read";

  // Within its time, the same calls read the blocks; released, it is gone from the node at once.
  o.lease_ms = 10000;
  auto patient = RemoteReader::open(o).value();
  auto fresh = patient->lease(keys);
  ASSERT_TRUE(fresh.ok());
  auto got = patient->read(*fresh, dest);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->blocks, 3u);
  EXPECT_TRUE(holds_chain(dest, keys, 3, n.block_bytes()));
  fresh->release();
  EXPECT_TRUE(n.metric_becomes("kvtier_read_leases_open", 0, std::chrono::seconds(5)));
  EXPECT_EQ(patient->read(*fresh, dest).status().code(), StatusCode::kUnavailable);
}

TEST(RemoteReader, ANodeRestartedMidReadIsReadAgainOnANewSession) {
  RemoteNode n;
  const auto keys = n.chain(5, 10);
  nt::put_chain(*n.client, *n.ns, keys);
  bool restarted = false;
  auto reader = RemoteReader::open(reader_of(n)).value();
  detail::RemoteReaderTesting::set_after_lease_hook(*reader, [&] {
    if (restarted) return;
    restarted = true;
    n.daemon.kill9();  // between the lease and the reads: the node's worker and rkey are gone
    n.daemon = Daemon::start(n.config);
  });
  std::vector<uint8_t> dest(5 * n.block_bytes());
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_TRUE(restarted);
  EXPECT_EQ(got->path, RemotePath::kUcx) << reader->fallback_reason();
  EXPECT_EQ(got->blocks, 5u) << "the blocks survived in the arena; the new daemon leased them again";
  EXPECT_TRUE(holds_chain(dest, keys, 5, n.block_bytes()));
  EXPECT_GE(reader->stats().sessions, 2u) << "the restart ended the first session";

  // A lease from before a restart is not read after it: its epoch and session are gone.
  auto before = reader->lease(keys);
  ASSERT_TRUE(before.ok());
  const uint64_t old_epoch = before->epoch();
  n.daemon.kill9();
  n.daemon = Daemon::start(n.config);
  EXPECT_EQ(reader->read(*before, dest).status().code(), StatusCode::kUnavailable);
  auto after = reader->lease(keys);
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_NE(after->epoch(), old_epoch);
  auto read = reader->read(*after, dest);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->blocks, 5u);
}

TEST(RemoteReader, ABlockChangedWhileLeasedFailsItsChecksumAndIsNotHandedBack) {
  RemoteNode n;
  const auto keys = n.chain(4, 11);
  nt::put_chain(*n.client, *n.ns, keys);
  auto reader = RemoteReader::open(reader_of(n)).value();
  detail::RemoteReaderTesting::set_after_lease_hook(*reader, [&] {
    // Scribbles on block 2 in the shared arena after the node sealed and leased it: what a torn
    // or stray write would leave.
    auto held = n.client->acquire(keys);
    ASSERT_TRUE(held.ok());
    ASSERT_GE(held->size(), 3u);
    auto* bytes = const_cast<uint8_t*>((*held)[2].data());
    bytes[100] ^= 0x5A;
  });
  std::vector<uint8_t> dest(4 * n.block_bytes());
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->path, RemotePath::kUcx);
  EXPECT_EQ(got->blocks, 2u) << "the read stops at the block that failed its checksum";
  EXPECT_EQ(got->corrupt, 1u);
  EXPECT_TRUE(holds_chain(dest, keys, 2, n.block_bytes()));
  EXPECT_EQ(reader->stats().corrupt, 1u);
}

TEST(RemoteReader, WithoutUcxOnTheNodeFetchesUseGetBlocks) {
  RemoteNode n("{enabled: false}");
  EXPECT_NE(n.daemon.start_log.find("UCX reads off"), std::string::npos) << n.daemon.start_log;
  const auto keys = n.chain(4, 12);
  nt::put_chain(*n.client, *n.ns, keys);
  auto reader = RemoteReader::open(reader_of(n)).value();
  std::vector<uint8_t> dest(4 * n.block_bytes());
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->path, RemotePath::kGrpc);
  EXPECT_EQ(got->blocks, 4u);
  EXPECT_TRUE(holds_chain(dest, keys, 4, n.block_bytes()));
  EXPECT_NE(reader->fallback_reason().find("server.ucx.enabled"), std::string::npos) << reader->fallback_reason();
  EXPECT_EQ(reader->path(), RemotePath::kGrpc) << "UCX is tried again only after ucx_retry_ms";
  EXPECT_EQ(reader->lease(keys).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(reader->stats().fallbacks, 1u);
  EXPECT_EQ(n.metric("kvtier_ucx_reads_enabled"), 0);
}

TEST(RemoteReader, WithoutUcxInTheReaderFetchesUseGetBlocks) {
  RemoteNode n;
  const auto keys = n.chain(3, 13);
  nt::put_chain(*n.client, *n.ns, keys);
  RemoteReaderOptions o = reader_of(n);
  o.use_ucx = false;
  auto reader = RemoteReader::open(o).value();
  std::vector<uint8_t> dest(3 * n.block_bytes());
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->path, RemotePath::kGrpc);
  EXPECT_EQ(got->blocks, 3u);
  EXPECT_TRUE(holds_chain(dest, keys, 3, n.block_bytes()));

  // UCX that cannot start in this process (no such transport): a clear reason, and GetBlocks.
  const char* was = std::getenv("UCX_TLS");
  const std::string saved = was != nullptr ? was : "";
  ::setenv("UCX_TLS", "no_such_transport", 1);
  auto broken = RemoteReader::open(reader_of(n));
  if (was != nullptr) {
    ::setenv("UCX_TLS", saved.c_str(), 1);
  } else {
    ::unsetenv("UCX_TLS");
  }
  ASSERT_TRUE(broken.ok());
  auto fell_back = (*broken)->fetch(keys, dest);
  ASSERT_TRUE(fell_back.ok()) << fell_back.status().to_string();
  EXPECT_EQ(fell_back->path, RemotePath::kGrpc);
  EXPECT_EQ(fell_back->blocks, 3u);
  EXPECT_FALSE((*broken)->fallback_reason().empty());
}

// Saves an environment variable and restores it when the test ends.
class SavedVariable {
 public:
  explicit SavedVariable(const char* name) : name_(name) {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): the test's one thread
    if (v != nullptr) value_ = v;
  }
  ~SavedVariable() {
    if (value_) {
      ::setenv(name_, value_->c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    } else {
      ::unsetenv(name_);  // NOLINT(concurrency-mt-unsafe)
    }
  }
  SavedVariable(const SavedVariable&) = delete;
  SavedVariable& operator=(const SavedVariable&) = delete;

 private:
  const char* name_;
  std::optional<std::string> value_;
};

TEST(RemoteReader, AReaderThatReceivesSmallerTcpSegmentsThanTheNodeSendsUsesGetBlocks) {
  const char* tls = std::getenv("UCX_TLS");  // NOLINT(concurrency-mt-unsafe)
  if (tls == nullptr || std::string(tls).find("tcp") == std::string::npos) GTEST_SKIP() << "TCP only";
  RemoteNode n;  // sends 256 KiB segments (kvtier's default)
  const auto keys = n.chain(3, 15);
  nt::put_chain(*n.client, *n.ns, keys);
  // The operator's settings in this process, kept by the reader (UCX wants TX ≤ RX within one).
  SavedVariable saved_rx("UCX_TCP_RX_SEG_SIZE"), saved_tx("UCX_TCP_TX_SEG_SIZE");
  ::setenv("UCX_TCP_RX_SEG_SIZE", "64k", 1);  // NOLINT(concurrency-mt-unsafe)
  ::setenv("UCX_TCP_TX_SEG_SIZE", "64k", 1);  // NOLINT(concurrency-mt-unsafe)
  auto reader = RemoteReader::open(reader_of(n)).value();
  std::vector<uint8_t> dest(3 * n.block_bytes());
  auto got = reader->fetch(keys, dest);  // over UCX this reader would be aborted by UCX itself
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->path, RemotePath::kGrpc);
  EXPECT_EQ(got->blocks, 3u);
  EXPECT_TRUE(holds_chain(dest, keys, 3, n.block_bytes()));
  EXPECT_NE(reader->fallback_reason().find("UCX_TCP_RX_SEG_SIZE"), std::string::npos) << reader->fallback_reason();
}

TEST(RemoteReader, ANodeWhoseUcxCannotStartSaysSoAndServesGetBlocks) {
  std::optional<RemoteNode> n;
  {
    SavedVariable saved("UCX_TLS");
    ::setenv("UCX_TLS", "no_such_transport", 1);  // NOLINT(concurrency-mt-unsafe): the daemon inherits it
    n.emplace();
  }
  EXPECT_NE(n->daemon.start_log.find("UCX reads unavailable"), std::string::npos) << n->daemon.start_log;
  EXPECT_EQ(n->metric("kvtier_ucx_reads_enabled"), 0);
  const auto keys = n->chain(3, 16);
  nt::put_chain(*n->client, *n->ns, keys);
  auto reader = RemoteReader::open(reader_of(*n)).value();
  std::vector<uint8_t> dest(3 * n->block_bytes());
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->path, RemotePath::kGrpc);
  EXPECT_EQ(got->blocks, 3u);
  EXPECT_TRUE(holds_chain(dest, keys, 3, n->block_bytes()));
  EXPECT_NE(reader->fallback_reason().find("serves no UCX reads (starting UCX"), std::string::npos)
      << reader->fallback_reason();
}

TEST(RemoteReader, OverTheNodesLeaseLimitAFetchUsesGetBlocks) {
  RemoteNode n("{max_leases: 1}");
  const auto keys = n.chain(3, 14);
  nt::put_chain(*n.client, *n.ns, keys);
  auto holder = RemoteReader::open(reader_of(n)).value();
  auto held = holder->lease(keys);
  ASSERT_TRUE(held.ok());
  auto reader = RemoteReader::open(reader_of(n)).value();
  EXPECT_EQ(reader->lease(keys).status().code(), StatusCode::kResourceExhausted);
  std::vector<uint8_t> dest(3 * n.block_bytes());
  auto got = reader->fetch(keys, dest);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->path, RemotePath::kGrpc);
  EXPECT_EQ(got->blocks, 3u);
  EXPECT_EQ(n.metric("kvtier_read_leases_ended_total{end=\"refused\"}"), 2);
}

}  // namespace
}  // namespace kvtier
