// The host-tier part of `kvtier demo`: one process writes a conversation's KV blocks into the
// node's shared-memory arena; another reads them in place (zero copy) and checks every byte.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <numeric>

#include "config/byte_size.h"
#include "host_demo.h"
#include "kvtier/client.h"

namespace kvtier::cli {
namespace {

// Stand-in KV bytes: a pattern derived from the block's key, so the reader can verify them.
void fill(const BlockKey& key, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>((key.lo >> (8 * (i % 8))) + i / 4096);
}

}  // namespace

int run_host_demo(const NamespaceSpec& spec, std::span<const TokenId> prompt) {
  ClientOptions options;
  options.node_name = fmt::format("demo-{}", ::getpid());
  options.create_if_missing = true;
  options.index_capacity = 4096;
  options.host_bytes = 64ULL << 20;
  options.slab_bytes = 8ULL << 20;
  auto client = Client::open(options);
  if (!client.ok()) {
    fmt::print(stderr, "kvtier demo: {}\n", client.status().to_string());
    return 1;
  }
  auto ns = (*client)->register_namespace(spec);
  if (!ns.ok()) {
    fmt::print(stderr, "kvtier demo: {}\n", ns.status().to_string());
    return 1;
  }
  const std::vector<BlockKey> keys = (*client)->keys(*ns, prompt);
  const size_t block = ns->ns.bytes_per_block();

  fmt::print("\nhost tier: one process writes the last turn's {} blocks ({} each) into shared memory,\n", keys.size(),
             config::format_byte_size(block));
  fmt::print("another reads them in place\n");
  std::fflush(stdout);  // or the child inherits unwritten output
  const pid_t writer = ::fork();
  if (writer == 0) {
    auto c = Client::open(options);
    if (!c.ok()) ::_exit(1);
    auto n = (*c)->register_namespace(spec);
    BlockKey parent = n->ns.root();
    for (const BlockKey& k : keys) {
      auto r = (*c)->reserve(*n, k, parent);  // space in the arena, written in place, then published
      if (!r.ok()) ::_exit(2);
      fill(k, r->data(), r->size());
      if (!std::move(*r).commit().ok()) ::_exit(3);
      parent = k;
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(writer, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fmt::print(stderr, "kvtier demo: the writer process failed\n");
    (void)Client::destroy_node(options);
    return 1;
  }
  auto blocks = (*client)->acquire(keys);
  size_t verified = 0;
  std::vector<uint8_t> want(block);
  if (blocks.ok()) {
    for (const HostBlock& b : *blocks) {
      fill(b.key(), want.data(), block);
      verified += std::memcmp(b.data(), want.data(), block) == 0 ? 1 : 0;
    }
  }
  const ClientStats s = (*client)->stats();
  fmt::print("  writer pid {} put {} blocks; reader pid {} pinned {} and verified {} in place (no copy)\n", writer,
             keys.size(), ::getpid(), blocks.ok() ? blocks->size() : 0, verified);
  fmt::print("  arena '{}-{}-host': {} of {} used; index holds {} blocks\n", options.shm_prefix, options.node_name,
             config::format_byte_size(s.host_used_bytes), config::format_byte_size(s.host_bytes), s.index.entries);
  blocks = Status::internal("released");  // drop the leases before the node goes
  (void)Client::destroy_node(options);
  return verified == keys.size() ? 0 : 1;
}

}  // namespace kvtier::cli
