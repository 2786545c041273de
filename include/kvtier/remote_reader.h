// kvtier::RemoteReader: blocks another node holds, read into this process's memory.
//
// Over UCX when both ends have it: the node leases the held prefix of a chain over gRPC
// (Blocks.ReadBlocks) and the reader gets the bytes with one-sided reads straight out of the
// node's host arena (RDMA on InfiniBand/RoCE, TCP or shared memory elsewhere). Otherwise over
// gRPC (Blocks.GetBlocks). Either way every block is checked against the checksum the node sealed
// it with, and a block that fails ends the read there: bytes handed back are the node's bytes.
// Thread-safe (calls on one reader take turns). docs/transport.md has the protocol.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/result.h"
#include "kvtier/tier.h"

namespace kvtier {

struct RemoteReaderOptions {
  std::string address;  // the node's gRPC port, host:port
  // TLS: the CAs the node's certificate chains to (empty: plaintext); mutual TLS: this process's
  // certificate and key; a bearer token file (re-read when it changes). As kvtier's CLI takes them.
  std::string tls_ca_file, tls_cert_file, tls_key_file, tls_server_name, token_file;
  bool use_ucx = true;      // false: GetBlocks only
  bool include_ssd = true;  // the node brings the chain's SSD part into host memory first
  uint32_t load_timeout_ms = 1000;
  uint32_t lease_ms = 0;        // how long the node pins a lease's blocks; 0: the node's default
  uint32_t timeout_ms = 10000;  // one fetch or read, from the first RPC to the last byte
  // When UCX was unavailable (on either end), how long before a fetch tries it again.
  uint32_t ucx_retry_ms = 10000;
};

enum class RemotePath : uint8_t { kUcx, kGrpc };
std::string_view remote_path_name(RemotePath path);  // "ucx", "grpc"

struct RemoteBlock {
  BlockKey key;
  uint32_t size = 0;
  uint64_t checksum = 0;  // XXH3-64 as the node sealed the block (never 0)
  Tier tier = Tier::kHost;
};

struct RemoteFetch {
  RemotePath path = RemotePath::kUcx;
  size_t blocks = 0;        // whole, verified blocks in the destination, back to back, from keys[0]
  uint64_t bytes = 0;       // their bytes
  size_t held = 0;          // blocks of the chain the node held (more than `blocks` when the destination was short)
  size_t corrupt = 0;       // 1 when a block failed its checksum: the read stopped there
  std::vector<Tier> tiers;  // where the node held each block read (host, or SSD loaded for the read)
};

struct RemoteReaderStats {
  uint64_t ucx_fetches = 0, grpc_fetches = 0;
  uint64_t blocks = 0, bytes = 0;
  uint64_t corrupt = 0;    // blocks that failed their checksum
  uint64_t sessions = 0;   // read sessions started (a new one after a node restart or a failure)
  uint64_t fallbacks = 0;  // fetches that wanted UCX and used GetBlocks
};

namespace detail {
struct RemoteReaderState;
struct RemoteReaderTesting;  // client/remote/remote_reader_testing.h: the tests' seam, not API
}  // namespace detail

// A lease on the held prefix of a chain: the node keeps these blocks pinned until the lease is
// dropped (or released), its time is up, or the reader goes away. Move-only.
class RemoteLease {
 public:
  RemoteLease(RemoteLease&& other) noexcept;
  RemoteLease& operator=(RemoteLease&& other) noexcept;
  RemoteLease(const RemoteLease&) = delete;
  RemoteLease& operator=(const RemoteLease&) = delete;
  ~RemoteLease();

  const std::vector<RemoteBlock>& blocks() const { return blocks_; }
  uint64_t epoch() const { return epoch_; }  // the node's: a restart ends every lease
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }
  // Lets the node unpin the blocks now (dropping the lease does the same).
  void release();

 private:
  friend class RemoteReader;
  RemoteLease() = default;
  std::shared_ptr<detail::RemoteReaderState> state_;
  uint64_t session_ = 0;  // the session it was granted on: a later one does not hold it
  uint64_t id_ = 0;       // 0: nothing leased
  uint64_t epoch_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<RemoteBlock> blocks_;
  std::vector<uint64_t> addresses_;  // of each block in the node's arena
};

class RemoteReader {
 public:
  static Result<std::unique_ptr<RemoteReader>> open(const RemoteReaderOptions& options);
  ~RemoteReader();
  RemoteReader(const RemoteReader&) = delete;
  RemoteReader& operator=(const RemoteReader&) = delete;

  // The held prefix of `keys` into `destination`, blocks back to back, as many whole blocks as
  // fit: lease, read, check, release in one call, over UCX when it is available, GetBlocks when
  // not (fallback_reason() says why). A node restarted or gone mid-read is one retry on a new
  // session, then unavailable.
  Result<RemoteFetch> fetch(std::span<const BlockKey> keys, std::span<uint8_t> destination);

  // The halves of a UCX fetch, for readers that hold blocks across steps. failed_precondition
  // when UCX is unavailable (use fetch). read() fails with unavailable when the lease has ended
  // (its time, its session, its node's epoch).
  Result<RemoteLease> lease(std::span<const BlockKey> keys);
  Result<RemoteFetch> read(const RemoteLease& lease, std::span<uint8_t> destination);

  // What the next fetch uses, and why not UCX when it is not.
  RemotePath path() const;
  std::string fallback_reason() const;
  RemoteReaderStats stats() const;

 private:
  friend struct detail::RemoteReaderTesting;
  explicit RemoteReader(std::shared_ptr<detail::RemoteReaderState> state);
  std::shared_ptr<detail::RemoteReaderState> state_;
};

// The held prefix of `keys` from the node `node` reaches, into `destination` (RemoteReader::fetch).
inline Result<RemoteFetch> fetch_remote(RemoteReader& node, std::span<const BlockKey> keys,
                                        std::span<uint8_t> destination) {
  return node.fetch(keys, destination);
}

}  // namespace kvtier
