// Shared by the client tests: a private node (segments removed after the test) and a small model.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>

#include "kvtier/client.h"

namespace kvtier::testing_support {

// A node of its own for one test: created on first open, its segments removed at the end.
struct ScopedNode {
  ClientOptions options;
  explicit ScopedNode(uint64_t host_bytes = 64 << 20, uint64_t capacity = 4096) {
    static int counter = 0;
    options.node_name = "test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    options.create_if_missing = true;
    options.index_capacity = capacity;
    options.host_bytes = host_bytes;
    options.slab_bytes = 4 << 20;
  }
  ScopedNode(const ScopedNode&) = delete;
  ScopedNode& operator=(const ScopedNode&) = delete;
  ~ScopedNode() { (void)Client::destroy_node(options); }
  std::unique_ptr<Client> open() const { return Client::open(options).value(); }
};

inline NamespaceSpec small_model() {
  NamespaceSpec s;
  s.model_id = "test/small";
  s.layout = {KvDType::kBFloat16, 16, 2, 2, 64, 2};  // 2×2×2×64×16×2 = 16 KiB → one 64 KiB unit
  return s;
}

}  // namespace kvtier::testing_support
