// Shared pieces of the node tests: a node (index, arena, SSD tier) under a scratch directory with
// unique segment names, a client attached to it, and verifiable block bytes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvtier/client.h"
#include "server/node/node_tiers.h"
#include "tiers/ssd/ssd_test_support.h"

namespace kvtier::node::testing {

using ssd::testing::ScratchDir;

// 64 KiB blocks: 16 tokens × 2 layers × 8 heads × 64 dims × K and V × 2 bytes.
// A loopback port free at the time of asking, below the kernel's ephemeral range: a port the
// kernel hands out itself (bind to port 0) can be taken a moment later as the local end of some
// outgoing connection (another test's client), and the daemon given it then fails to bind.
inline int free_port() {
  static std::mt19937 pick(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  int ephemeral_low = 32768;
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> ephemeral_low;
  const int low = 10000, high = std::max(low + 1000, ephemeral_low) - 1;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = std::uniform_int_distribution<int>(low, high)(pick);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    if (free) return port;
  }
  return 0;
}

// GET over a plain socket: the endpoint is for Prometheus, which speaks HTTP/1.1.
inline std::string http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return {};
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[8192];
  for (ssize_t r; (r = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(r));
  ::close(fd);
  return out;
}

inline NamespaceSpec small_namespace() {
  NamespaceSpec spec;
  spec.model_id = "node-test/model";
  spec.layout.dtype = KvDType::kBFloat16;
  spec.layout.block_tokens = 16;
  spec.layout.num_layers = 2;
  spec.layout.num_kv_heads = 8;
  spec.layout.head_dim = 64;
  spec.layout.kv_planes = 2;
  return spec;
}

inline NodeTiersOptions small_node(const ScratchDir& dir, const std::string& tag) {
  static int n = 0;
  NodeTiersOptions o;
  o.node_name = "nt-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  o.index_capacity = 4096;
  o.host_bytes = 4ULL << 20;
  o.slab_bytes = 1ULL << 20;
  o.ssd = ssd::testing::small_store(dir, 16);
  o.admission.min_accesses = 1;
  o.background = false;
  return o;
}

inline ClientOptions client_of(const NodeTiersOptions& o) {
  ClientOptions c;
  c.node_name = o.node_name;
  c.shm_prefix = o.shm_prefix;
  return c;
}

inline std::vector<TokenId> tokens(size_t n, uint32_t seed = 1) {
  std::vector<TokenId> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<TokenId>(seed * 100000 + i);
  return t;
}

// --- A kvtierd the test starts: its configuration, its clients, its segments. ---
inline const std::string kDaemonShmPrefix = "kvtiertest";

// Writes a kvtierd configuration: node `name` under the tests' segment prefix, the YAML lines in
// `sections` (index, host, ssd, server, events), and small_namespace()'s layout.
inline void write_node_config(const std::string& path, const std::string& name, const std::string& sections) {
  std::ofstream f(path);
  f << "node: {name: " << name << ", shm_prefix: " << kDaemonShmPrefix << "}\n"
    << sections << "namespaces:\n  - model_id: " << small_namespace().model_id << "\n"
    << "    layout: {dtype: bf16, block_tokens: 16, num_layers: 2, num_kv_heads: 8, head_dim: 64, kv_planes: 2}\n";
  if (!f.flush()) throw std::runtime_error("cannot write " + path);
}

inline ClientOptions daemon_client_options(const std::string& name) {
  ClientOptions co;
  co.node_name = name;
  co.shm_prefix = kDaemonShmPrefix;
  return co;
}

// Removes what the daemon and its clients left in /dev/shm.
inline void destroy_daemon_segments(const std::string& name) {
  NodeTiersOptions o;
  o.node_name = name;
  o.shm_prefix = kDaemonShmPrefix;
  (void)NodeTiers::destroy_segments(o);
}

// Puts every block of the chain with bytes derived from its key.
inline void put_chain(Client& c, const NamespaceHandle& ns, const std::vector<BlockKey>& keys) {
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto bytes = ssd::testing::block_bytes(keys[i], ns.ns.bytes_per_block());
    const Status s = c.put(ns, keys[i], i == 0 ? ns.ns.root() : keys[i - 1], bytes);
    if (!s.ok()) throw std::runtime_error(s.to_string());
  }
}

// Acquires the chain and checks every host block's bytes; returns how many were host-resident.
// A block with the wrong bytes throws (a test fails naming it), so 0 means "none in host memory".
inline size_t verify_host_prefix(Client& c, const std::vector<BlockKey>& keys) {
  auto blocks = c.acquire(keys);
  if (!blocks.ok()) throw std::runtime_error("acquire: " + blocks.status().to_string());
  for (const HostBlock& b : *blocks) {
    const auto want = ssd::testing::block_bytes(b.key(), b.size());
    if (std::memcmp(b.data(), want.data(), b.size()) != 0) {
      throw std::runtime_error("host block " + b.key().to_hex() + " does not hold its bytes");
    }
  }
  return blocks->size();
}

}  // namespace kvtier::node::testing
