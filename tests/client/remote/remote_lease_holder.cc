// A reader process for RemoteReader's tests: leases a chain from a node over UCX, says so on
// stdout ("leased <blocks> <epoch>") and holds the lease until killed; the test SIGKILLs it to
// check the node unpins what a dead reader held.
//   remote_lease_holder <node host:port> <key hex>...
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "kvtier/remote_reader.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: remote_lease_holder <address> <key hex>...\n");
    return 2;
  }
  std::vector<kvtier::BlockKey> keys;
  for (int i = 2; i < argc; ++i) {
    auto k = kvtier::BlockKey::from_hex(argv[i]);
    if (!k.ok()) {
      std::fprintf(stderr, "%s\n", k.status().to_string().c_str());
      return 2;
    }
    keys.push_back(*k);
  }
  kvtier::RemoteReaderOptions options;
  options.address = argv[1];
  options.lease_ms = 60000;
  auto reader = kvtier::RemoteReader::open(options);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().to_string().c_str());
    return 1;
  }
  auto lease = (*reader)->lease(keys);
  if (!lease.ok()) {
    std::fprintf(stderr, "%s\n", lease.status().to_string().c_str());
    return 1;
  }
  std::printf("leased %zu %llu\n", lease->blocks().size(), static_cast<unsigned long long>(lease->epoch()));
  std::fflush(stdout);
  for (;;) ::pause();
}
