// Shared by the client tests: a private node (segments removed after the test) and a small model.
#pragma once

#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

#include "common/node_segments.h"
#include "kvtier/block_index.h"
#include "kvtier/client.h"

namespace kvtier::testing_support {

// A node of its own for one test: created on first open, its segments removed at the end.
// With `manual_clock`, the node's index is made first with a clock that moves only when the test
// says (index().set_clock): eviction ages that do not depend on how loaded the machine is.
struct ScopedNode {
  ClientOptions options;
  explicit ScopedNode(uint64_t host_bytes = 64 << 20, uint64_t capacity = 4096, bool manual_clock = false) {
    static int counter = 0;
    options.node_name = "test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    options.create_if_missing = true;
    options.index_capacity = capacity;
    options.host_bytes = host_bytes;
    options.slab_bytes = 4 << 20;
    if (manual_clock) {
      IndexOptions io;
      io.segment_name = node_index_segment(options.shm_prefix, options.node_name);
      io.capacity = capacity;
      io.node_name = options.node_name;
      io.manual_clock = true;
      index_.emplace(BlockIndex::create(io).value());
    }
  }
  ScopedNode(const ScopedNode&) = delete;
  ScopedNode& operator=(const ScopedNode&) = delete;
  ~ScopedNode() {
    index_.reset();
    (void)Client::destroy_node(options);
  }
  std::unique_ptr<Client> open() const { return Client::open(options).value(); }
  // A writable handle of the node's index, as the daemon has (a Client's is read-only).
  BlockIndex& index() {
    if (!index_) index_.emplace(BlockIndex::attach(node_index_segment(options.shm_prefix, options.node_name)).value());
    return *index_;
  }

 private:
  std::optional<BlockIndex> index_;
};

inline NamespaceSpec small_model() {
  NamespaceSpec s;
  s.model_id = "test/small";
  s.layout = {KvDType::kBFloat16, 16, 2, 2, 64, 2};  // 2×2×2×64×16×2 = 16 KiB → one 64 KiB unit
  return s;
}

}  // namespace kvtier::testing_support
