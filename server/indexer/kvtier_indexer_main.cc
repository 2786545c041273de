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

#include <algorithm>
#include <csignal>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/process_heap.h"
#include "config/node_config.h"
#include "server/indexer/follower_set.h"
#include "server/indexer/indexer_config.h"
#include "server/indexer/indexer_metrics.h"
#include "server/indexer/scheduler_service.h"
#include "server/indexer/vllm_engine_follower.h"
#include "server/kvtierd/daemon_log.h"
#include "server/security/access_policy.h"
#include "server/security/client_credentials.h"
#include "server/security/server_tls.h"
#include "server/services/metrics_exposition.h"
#include "server/services/metrics_http_server.h"

namespace {

// Flags; each one given overrides the --config file's field of the same name.
struct IndexerFlags {
  std::string config;
  std::string grpc_address;
  std::string metrics_address;
  std::vector<std::string> nodes;
  std::string nodes_file;
  std::vector<std::string> nodes_dns;
  std::string namespaces_config;
  uint64_t grace_ms = 0;
  std::vector<double> weights;  // hbm, host, ssd, remote
  std::string log_level = "info";
  std::string log_format = "text";
  bool check = false;
};

// How often --nodes-dns names are resolved again (a pod that becomes ready joins within this).
constexpr uint64_t kDnsIntervalS = 5;

// The modification stamp of the nodes file (a ConfigMap swaps a symlink: stat follows it).
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return fmt::format("{}.{}.{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

int serve(const CLI::App& app, const IndexerFlags& flags) {
  if (auto s = kvtier::daemon::configure_logging(flags.log_level, flags.log_format); !s.ok()) {
    fmt::print(stderr, "kvtier-indexer: {}\n", s.to_string());
    return 2;
  }
  kvtier::indexer::IndexerConfig opt;
  if (!flags.config.empty()) {
    auto loaded = kvtier::indexer::load_indexer_config(flags.config);
    if (!loaded.ok()) {
      spdlog::error("kvtier-indexer: {}", loaded.status().to_string());
      return 2;
    }
    opt = std::move(loaded).value();
  }
  if (app.count("--grpc-address") > 0) opt.grpc_address = flags.grpc_address;
  if (app.count("--metrics-address") > 0) opt.metrics_address = flags.metrics_address;
  opt.nodes.insert(opt.nodes.end(), flags.nodes.begin(), flags.nodes.end());
  if (app.count("--nodes-file") > 0) opt.nodes_file = flags.nodes_file;
  opt.nodes_dns.insert(opt.nodes_dns.end(), flags.nodes_dns.begin(), flags.nodes_dns.end());
  if (app.count("--namespaces-config") > 0) opt.namespaces_config = flags.namespaces_config;
  if (app.count("--grace-ms") > 0) opt.grace_ms = flags.grace_ms;
  if (!flags.weights.empty()) {
    if (flags.weights.size() != 4) {
      spdlog::error("kvtier-indexer: --weights takes four numbers: hbm,host,ssd,remote");
      return 2;
    }
    opt.weights = {flags.weights[0], flags.weights[1], flags.weights[2], flags.weights[3]};
  }
  if (auto s = opt.validate(); !s.ok()) {
    spdlog::error("kvtier-indexer: {}", s.to_string());
    return 2;
  }
  const kvtier::cluster::TierWeights weights = opt.weights;
  std::vector<kvtier::Namespace> namespaces;
  if (!opt.namespaces_config.empty()) {
    auto cfg = kvtier::config::load_node_config(opt.namespaces_config);
    if (!cfg.ok()) {
      spdlog::error("kvtier-indexer: {}", cfg.status().to_string());
      return 2;
    }
    for (const auto& spec : cfg->namespaces) namespaces.push_back(kvtier::Namespace::create(spec).value());
  }
  if (flags.check) {
    // Nothing is resolved or contacted: a deployment's test renders the config without a cluster.
    fmt::print("grpc       {} · metrics {}\n", opt.grpc_address,
               opt.metrics_address.empty() ? "(none)" : opt.metrics_address);
    fmt::print(
        "security   {} · {} grants · nodes reached {}{}\n",
        opt.security.tls.enabled() ? (opt.security.tls.client_ca_file.empty() ? "TLS" : "mutual TLS") : "plaintext",
        opt.security.grants.size(),
        opt.node_client.tls() ? (opt.node_client.cert_file.empty() ? "with TLS" : "with mutual TLS") : "in plaintext",
        opt.node_client.token_file.empty() ? "" : " and a bearer token");
    fmt::print("nodes      {} listed, nodes file '{}', {} DNS names, {} vLLM engines\n", opt.nodes.size(),
               opt.nodes_file, opt.nodes_dns.size(), opt.vllm_engines.size());
    fmt::print("namespaces {} (from '{}'), {} engine namespaces\n", namespaces.size(), opt.namespaces_config,
               opt.engine_namespaces.size());
    fmt::print("grace      {} ms\nconfiguration ok\n", opt.grace_ms);
    return 0;
  }
  // What each --nodes-dns name resolved to last; a name that does not resolve now keeps it.
  std::map<std::string, std::vector<std::string>> resolved;
  const auto resolve_all = [&]() {
    bool changed = false;
    for (const std::string& name : opt.nodes_dns) {
      auto addrs = kvtier::indexer::resolve_nodes_dns(name);
      if (!addrs.ok()) {
        spdlog::warn("kvtier-indexer: {}; keeping its {} nodes", addrs.status().to_string(), resolved[name].size());
        continue;
      }
      if (resolved[name] != *addrs) {
        resolved[name] = std::move(addrs).value();
        changed = true;
      }
    }
    return changed;
  };
  const auto listed = [&]() -> kvtier::Result<std::set<std::string>> {
    std::set<std::string> all(opt.nodes.begin(), opt.nodes.end());
    if (!opt.nodes_file.empty()) {
      auto from_file = kvtier::indexer::read_nodes_file(opt.nodes_file);
      if (!from_file.ok()) return from_file.status();
      all.insert(from_file->begin(), from_file->end());
    }
    for (const auto& [name, addrs] : resolved) all.insert(addrs.begin(), addrs.end());
    return all;
  };
  resolve_all();
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
  auto access = kvtier::security::AccessPolicy::open(opt.security);
  if (!access.ok()) {
    spdlog::error("kvtier-indexer: {}", access.status().to_string());
    return 2;
  }
  auto listening = kvtier::security::listening_credentials(opt.security, opt.grpc_address);
  if (!listening.ok()) {
    spdlog::error("kvtier-indexer: {}", listening.status().to_string());
    return 2;
  }
  for (const std::string& w : listening->warnings) spdlog::warn("kvtier-indexer: {}", w);
  auto node_credentials = kvtier::security::ClientCredentials::open(opt.node_client);
  if (!node_credentials.ok()) {
    spdlog::error("kvtier-indexer: node_client: {}", node_credentials.status().to_string());
    return 2;
  }
  kvtier::indexer::FollowerOptions fo;
  fo.grace = std::chrono::milliseconds(opt.grace_ms);
  fo.credentials = *node_credentials;
  kvtier::indexer::FollowerSet followers(index, fo);
  followers.reconcile(*first);
  const kvtier::services::NamespaceCatalog catalog(namespaces);
  std::vector<std::unique_ptr<kvtier::indexer::VllmEngineFollower>> engines;
  for (const auto& e : opt.vllm_engines) {
    const auto ns = std::find_if(opt.engine_namespaces.begin(), opt.engine_namespaces.end(),
                                 [&](const kvtier::indexer::EngineNamespace& n) { return n.model_id == e.model_id; });
    engines.push_back(std::make_unique<kvtier::indexer::VllmEngineFollower>(index, e, ns->key_space()));  // validated
    spdlog::info("kvtier-indexer: following vLLM engine {} at {} (replay {}), model {}", e.name, e.endpoint,
                 e.replay_endpoint.empty() ? "none" : e.replay_endpoint, e.model_id);
  }
  kvtier::indexer::SchedulerService scheduler(index, followers, engines, catalog, opt.engine_namespaces, weights, {},
                                              **access);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  kvtier::indexer::configure_scheduler_server(builder);
  int port = 0;
  builder.AddListeningPort(opt.grpc_address, listening->credentials, &port);
  builder.RegisterService(&scheduler);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("kvtier-indexer: cannot serve gRPC on {} (in use, or not an address of this machine)",
                  opt.grpc_address);
    return 1;
  }
  std::unique_ptr<kvtier::services::MetricsHttpServer> metrics;
  if (!opt.metrics_address.empty()) {
    auto started = kvtier::services::MetricsHttpServer::start(opt.metrics_address, [&] {
      return kvtier::services::render_counters([&](kvtier::CounterVisitor& v) {
        kvtier::indexer::visit_indexer_counters(v, index, followers, engines);
        scheduler.visit_counters(v);
        (*access)->visit_counters(v);
        kvtier::visit_heap_counters(v);
      });
    });
    if (!started.ok()) {
      spdlog::error("kvtier-indexer: metrics: {}", started.status().to_string());
      return 1;
    }
    metrics = std::move(started).value();
    spdlog::info("kvtier-indexer: metrics on http://{}/metrics", opt.metrics_address);
  }
  spdlog::info(
      "kvtier-indexer: gRPC {}; nodes reached {}", listening->description,
      opt.node_client.tls() ? (opt.node_client.cert_file.empty() ? "with TLS" : "with mutual TLS") : "in plaintext");
  spdlog::info(
      "kvtier-indexer: serving on {} (pid {}), following {} nodes{} and {} vLLM engines; {} namespaces, {} "
      "engine namespaces; weights hbm {} host {} ssd {} remote {}; grace {} ms",
      opt.grpc_address, ::getpid(), first->size(),
      (opt.nodes_file.empty() ? "" : fmt::format(" (nodes file {})", opt.nodes_file)) +
          (opt.nodes_dns.empty() ? "" : fmt::format(" (DNS {})", fmt::join(opt.nodes_dns, ", "))),
      engines.size(), namespaces.size(), opt.engine_namespaces.size(), weights.hbm, weights.host, weights.ssd,
      weights.remote, opt.grace_ms);

  std::string stamp = opt.nodes_file.empty() ? std::string() : file_stamp(opt.nodes_file);
  int signal = 0;
  for (uint64_t second = 1; signal == 0; ++second) {
    timespec wait{1, 0};
    signal = sigtimedwait(&stop, nullptr, &wait);
    if (signal > 0) break;
    signal = 0;
    bool changed = false;
    if (!opt.nodes_file.empty()) {
      const std::string now = file_stamp(opt.nodes_file);
      changed = now != stamp;
      stamp = now;
    }
    if (!opt.nodes_dns.empty() && second % kDnsIntervalS == 0) changed = resolve_all() || changed;
    if (!changed) continue;
    auto again = listed();
    if (!again.ok()) {
      spdlog::warn("kvtier-indexer: the nodes file changed but is unusable, keeping the current nodes: {}",
                   again.status().to_string());
      continue;
    }
    followers.reconcile(*again);
  }
  spdlog::info("kvtier-indexer: {} received; stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  metrics.reset();  // it reads the followers and engines
  engines.clear();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvtier-indexer: the cluster-wide locality index and node scoring for schedulers"};
  IndexerFlags flags;
  app.add_option("--config", flags.config, "YAML configuration (docs/scheduler.md); the flags below override it");
  app.add_option("--grpc-address", flags.grpc_address, "Where to serve kvtier.v1.Scheduler (default 127.0.0.1:50560)");
  app.add_option("--metrics-address", flags.metrics_address,
                 "Where to serve Prometheus text at /metrics, host:port (default: none)");
  app.add_option("--node", flags.nodes, "A kvtierd node's gRPC address to follow (repeatable)");
  app.add_option("--nodes-file", flags.nodes_file, "File of node addresses, one per line; re-read when it changes");
  app.add_option("--nodes-dns", flags.nodes_dns,
                 "NAME:PORT resolved every 5 s, each address a node (a headless Service over the kvtierd DaemonSet; "
                 "repeatable)");
  app.add_option("--namespaces-config", flags.namespaces_config,
                 "A kvtierd configuration file whose namespaces resolve ScoreNodes token ids");
  app.add_option("--grace-ms", flags.grace_ms, "How long an unreachable node's blocks are kept (default 30000)");
  app.add_option("--weights", flags.weights, "Tier weights hbm,host,ssd,remote (docs/scheduler.md)")->delimiter(',');
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--log-format", flags.log_format, "text or json")->capture_default_str();
  app.add_flag("--check,--check-config", flags.check,
               "Validate the configuration (and the namespaces file), print a summary and exit");
  CLI11_PARSE(app, argc, argv);
  return serve(app, flags);
}
