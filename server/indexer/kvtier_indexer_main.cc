// kvtier-indexer: the scheduler side of kvtier. Follows the event streams of many kvtierd nodes,
// keeps a cluster-wide index of which node holds which block in which tier, and answers
// kvtier.v1.Scheduler.ScoreNodes (docs/scheduler.md).
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <absl/synchronization/mutex.h>

#include <csignal>
#include <set>
#include <string>
#include <vector>

#include "config/node_config.h"
#include "server/indexer/follower_set.h"
#include "server/indexer/scheduler_service.h"
#include "server/kvtierd/daemon_log.h"

namespace {

struct IndexerOptions {
  std::string grpc_address = "127.0.0.1:50560";
  std::vector<std::string> nodes;
  std::string nodes_file;
  std::string namespaces_config;  // a kvtierd configuration: its namespaces resolve token ids
  uint64_t grace_ms = 30000;
  std::vector<double> weights;  // hbm, host, ssd, remote
  std::string log_level = "info";
  std::string log_format = "text";
};

// The modification stamp of the nodes file (a ConfigMap swaps a symlink: stat follows it).
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return fmt::format("{}.{}.{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

int serve(const IndexerOptions& opt) {
  if (auto s = kvtier::daemon::configure_logging(opt.log_level, opt.log_format); !s.ok()) {
    fmt::print(stderr, "kvtier-indexer: {}\n", s.to_string());
    return 2;
  }
  kvtier::cluster::TierWeights weights;
  if (!opt.weights.empty()) {
    if (opt.weights.size() != 4) {
      spdlog::error("kvtier-indexer: --weights takes four numbers: hbm,host,ssd,remote");
      return 2;
    }
    weights = {opt.weights[0], opt.weights[1], opt.weights[2], opt.weights[3]};
  }
  if (auto s = weights.validate(); !s.ok()) {
    spdlog::error("kvtier-indexer: --weights: {}", s.to_string());
    return 2;
  }
  std::vector<kvtier::Namespace> namespaces;
  if (!opt.namespaces_config.empty()) {
    auto cfg = kvtier::config::load_node_config(opt.namespaces_config);
    if (!cfg.ok()) {
      spdlog::error("kvtier-indexer: {}", cfg.status().to_string());
      return 2;
    }
    for (const auto& spec : cfg->namespaces) namespaces.push_back(kvtier::Namespace::create(spec).value());
  }
  if (opt.nodes.empty() && opt.nodes_file.empty()) {
    spdlog::error("kvtier-indexer: no nodes to follow: give --node ADDRESS (repeatable) or --nodes-file FILE");
    return 2;
  }
  const auto listed = [&]() -> kvtier::Result<std::set<std::string>> {
    std::set<std::string> all(opt.nodes.begin(), opt.nodes.end());
    if (!opt.nodes_file.empty()) {
      auto from_file = kvtier::indexer::read_nodes_file(opt.nodes_file);
      if (!from_file.ok()) return from_file.status();
      all.insert(from_file->begin(), from_file->end());
    }
    return all;
  };
  auto first = listed();
  if (!first.ok()) {
    spdlog::error("kvtier-indexer: {}", first.status().to_string());
    return 2;
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as kvtierd: see grpc_frontend.cc
  kvtier::cluster::ClusterIndex index;
  kvtier::indexer::FollowerOptions fo;
  fo.grace = std::chrono::milliseconds(opt.grace_ms);
  kvtier::indexer::FollowerSet followers(index, fo);
  followers.reconcile(*first);
  const kvtier::services::NamespaceCatalog catalog(namespaces);
  kvtier::indexer::SchedulerService scheduler(index, followers, catalog, weights, {});

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_MINIMAL_STACK, 1);
  builder.SetMaxReceiveMessageSize(64 << 20);  // a 4M-token prompt as token ids
  int port = 0;
  builder.AddListeningPort(opt.grpc_address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&scheduler);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("kvtier-indexer: cannot serve gRPC on {} (in use, or not an address of this machine)",
                  opt.grpc_address);
    return 1;
  }
  spdlog::info(
      "kvtier-indexer: serving on {} (pid {}), following {} nodes{}; {} namespaces; weights hbm {} host {} "
      "ssd {} remote {}; grace {} ms",
      opt.grpc_address, ::getpid(), first->size(),
      opt.nodes_file.empty() ? "" : fmt::format(" (nodes file {})", opt.nodes_file), namespaces.size(), weights.hbm,
      weights.host, weights.ssd, weights.remote, opt.grace_ms);

  std::string stamp = opt.nodes_file.empty() ? std::string() : file_stamp(opt.nodes_file);
  int signal = 0;
  while (signal == 0) {
    timespec wait{1, 0};
    signal = sigtimedwait(&stop, nullptr, &wait);
    if (signal > 0) break;
    signal = 0;
    if (opt.nodes_file.empty()) continue;
    const std::string now = file_stamp(opt.nodes_file);
    if (now == stamp) continue;
    stamp = now;
    auto again = listed();
    if (!again.ok()) {
      spdlog::warn("kvtier-indexer: nodes file changed but is unusable, keeping the current nodes: {}",
                   again.status().to_string());
      continue;
    }
    followers.reconcile(*again);
  }
  spdlog::info("kvtier-indexer: {} received; stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvtier-indexer: the cluster-wide locality index and node scoring for schedulers"};
  IndexerOptions opt;
  app.add_option("--grpc-address", opt.grpc_address, "Where to serve kvtier.v1.Scheduler")->capture_default_str();
  app.add_option("--node", opt.nodes, "A kvtierd node's gRPC address to follow (repeatable)");
  app.add_option("--nodes-file", opt.nodes_file, "File of node addresses, one per line; re-read when it changes");
  app.add_option("--namespaces-config", opt.namespaces_config,
                 "A kvtierd configuration file whose namespaces resolve ScoreNodes token ids");
  app.add_option("--grace-ms", opt.grace_ms, "How long an unreachable node's blocks are kept")->capture_default_str();
  app.add_option("--weights", opt.weights, "Tier weights hbm,host,ssd,remote (docs/scheduler.md)")->delimiter(',');
  app.add_option("--log-level", opt.log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--log-format", opt.log_format, "text or json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return serve(opt);
}
