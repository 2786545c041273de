// FollowerSet: the nodes kvtier-indexer follows, by address: those named on the command line
// plus those listed in a nodes file, which is re-read when it changes (a Kubernetes ConfigMap, or
// a file a controller writes from the DaemonSet's endpoints).
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
