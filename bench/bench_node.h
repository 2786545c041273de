// A kvtierd for a benchmark with everything it leaves behind: a scratch directory, the node's
// shared-memory segments, the daemon and a client opened on it. All of it goes with the object, in
// the reverse order, so a suite that fails halfway leaves nothing in /tmp or /dev/shm.
#pragma once

#include <memory>
#include <string>

#include "kvtier/block_index.h"
#include "kvtier/client.h"
#include "kvtierd_process.h"

namespace kvtier::bench {

// The shm prefix every benchmark node uses: its segments never mix with a production node's.
inline constexpr const char* kBenchShmPrefix = "kvtierbench";

class BenchNode {
 public:
  // Creates `dir`, removes segments an interrupted run of `node_name` left, starts kvtierd on
  // `config_yaml` (which names `node_name` and kBenchShmPrefix) and opens a client on it.
  // Error text in *why when any step fails; what was made by then is removed.
  static std::unique_ptr<BenchNode> start(const std::string& dir, const std::string& node_name,
                                          const std::string& config_yaml, std::string* why);
  ~BenchNode();
  BenchNode(const BenchNode&) = delete;
  BenchNode& operator=(const BenchNode&) = delete;

  Client& client() { return *client_; }
  // A writable handle of the node's index, as the daemon has (for suites that make events directly).
  Result<BlockIndex> attach_index() const;
  pid_t daemon_pid() const { return daemon_->pid(); }

 private:
  BenchNode(std::string dir, ClientOptions options) : dir_(std::move(dir)), options_(std::move(options)) {}

  std::string dir_;
  ClientOptions options_;
  std::unique_ptr<KvtierdProcess> daemon_;
  std::unique_ptr<Client> client_;
};

}  // namespace kvtier::bench
