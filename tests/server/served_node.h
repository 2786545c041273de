// A real kvtierd serving a node of its own on loopback ports (small tiers, an SSD tier that admits
// on first use), with a Client of the node and small_namespace() registered: the fixture of the
// tests that drive the daemon over gRPC. Stopped and its segments removed at the end.
#pragma once

#include <unistd.h>

#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "daemon_process.h"
#include "kvtier/client.h"
#include "node_test_support.h"

namespace kvtier::node::testing {

struct ServedNode {
  ScratchDir dir;
  std::string node;
  std::string address = "127.0.0.1:" + std::to_string(free_port());
  int metrics_port = free_port();
  std::string config = dir / "node.yaml";
  Daemon daemon;
  std::unique_ptr<Client> client;
  std::optional<NamespaceHandle> ns;

  // `server_extra`: more keys of the server section ("limits: {max_keys: 4096}").
  ServedNode(const std::string& name_prefix, const std::string& server_extra)
      : node(name_prefix + std::to_string(::getpid())) {
    std::ostringstream sections;
    sections << "index: {capacity: 16384}\nhost: {bytes: 8MiB, slab_bytes: 1MiB}\n"
             << "ssd: {dir: " << (dir / "ssd") << ", bytes: 64MiB, region_bytes: 2MiB, admission: {min_accesses: 1}}\n"
             << "server: {grpc_address: \"" << address << "\", metrics_address: \"127.0.0.1:" << metrics_port << "\", "
             << server_extra << "}\n";
    write_node_config(config, node, sections.str());
    daemon = Daemon::start(config);
    client = Client::open(daemon_client_options(node)).value();
    ns = client->register_namespace(small_namespace()).value();
  }
  ~ServedNode() {
    client.reset();
    if (daemon.pid > 0) daemon.stop();
    destroy_daemon_segments(node);
  }
  ServedNode(const ServedNode&) = delete;
  ServedNode& operator=(const ServedNode&) = delete;
};

}  // namespace kvtier::node::testing
