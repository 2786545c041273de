// FollowerSet: the nodes kvtier-indexer follows, by address: those named on the command line,
// those listed in a nodes file, which is re-read when it changes (a Kubernetes ConfigMap, or a
// file a controller writes), and those a DNS name resolves to (a headless Service over the
// DaemonSet: its ready pods).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cluster/cluster_index.h"
#include "kvtier/result.h"
#include "server/indexer/node_follower.h"

namespace kvtier::indexer {

// Addresses in a nodes file: one host:port per line; blank lines and '#' comments are skipped.
Result<std::vector<std::string>> read_nodes_file(const std::string& path);
// The addresses `name:port` resolves to, as ip:port ([ip]:port for IPv6): its IPv4 addresses,
// or its IPv6 ones when it has none (a single-stack IPv6 cluster). unavailable when it does not
// resolve now (the caller keeps what it had).
Result<std::vector<std::string>> resolve_nodes_dns(const std::string& name_port);

class FollowerSet {
 public:
  FollowerSet(cluster::ClusterIndex& index, FollowerOptions defaults) : index_(index), defaults_(std::move(defaults)) {}
  ~FollowerSet();

  // Follows exactly `addresses` from now on: new ones are started; those no longer listed are
  // stopped and their blocks dropped at once (the operator removed them).
  void reconcile(const std::set<std::string>& addresses);
  std::vector<FollowerStatus> status() const;
  // Node name → the address it is followed at, for the nodes reached so far.
  std::map<std::string, std::string> addresses() const;

 private:
  cluster::ClusterIndex& index_;
  const FollowerOptions defaults_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<NodeFollower>> followers_;
};

}  // namespace kvtier::indexer
