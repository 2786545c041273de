// kvtierd: the kvtier node daemon.
//
// Loads and validates the node configuration, creates or attaches the node's shared-memory index
// and host arena (attaching is a warm restart), opens and recovers the SSD tier, keeps the tiers
// in step (demotion, promotion, upkeep) and serves the kvtier.v1 gRPC services until SIGTERM or
// SIGINT, when it drains requests, writes the SSD region being filled and exits.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>

#include "config/byte_size.h"
#include "config/node_config.h"
#include "kvtier/prefix_chain.h"
#include "server/kvtierd/node_options.h"
#include "server/services/grpc_frontend.h"

namespace {

void print_summary(const kvtier::config::NodeConfig& cfg) {
  using kvtier::config::format_byte_size;
  fmt::print("node       {}\n", cfg.node_name.empty() ? "(host name)" : cfg.node_name);
  fmt::print("index      {} entries, segments {}-*\n", cfg.index_capacity, cfg.shm_prefix);
  fmt::print("host tier  {}\n", format_byte_size(cfg.host_bytes));
  if (cfg.ssd_enabled) {
    fmt::print("ssd tier   {} under {}\n", format_byte_size(cfg.ssd_bytes), cfg.ssd_dir);
  } else {
    fmt::print("ssd tier   disabled\n");
  }
  fmt::print("grpc       {}\nmetrics    {}\n", cfg.grpc_address, cfg.metrics_address);
  for (const auto& spec : cfg.namespaces) {
    auto ns = kvtier::Namespace::create(spec);  // validated already; create() only adds the root
    fmt::print("namespace  {}{}{} · {} per block · root {}\n", spec.model_id,
               spec.adapter_id.empty() ? "" : " +" + spec.adapter_id,
               spec.cache_salt.empty() ? "" : " salt=" + spec.cache_salt,
               format_byte_size(spec.layout.bytes_per_block()), ns.ok() ? ns->root().to_hex() : "?");
  }
}

void print_stats(const kvtier::node::NodeTiersStats& s) {
  using kvtier::Tier;
  using kvtier::tier_index;
  fmt::print(
      "kvtierd: blocks host={} ssd={} · host {}/{} MiB · demoted={} promoted={} (requests {}) · ssd regions "
      "written={} reclaimed={} · ssd corrupt={} read_errors={} write_errors={}{}\n",
      s.index.tier_entries[tier_index(Tier::kHost)], s.index.tier_entries[tier_index(Tier::kSsd)],
      s.host_used_bytes >> 20, s.host_bytes >> 20, s.demoted, s.promoted, s.load_requests, s.ssd.regions_written,
      s.ssd.regions_reclaimed, s.ssd.corrupt_blocks, s.ssd.read_errors, s.ssd.write_errors,
      s.ssd.full ? " · SSD FULL" : "");
  std::fflush(stdout);
}

// Runs the node until SIGTERM/SIGINT. Returns the exit code.
int serve(const kvtier::config::NodeConfig& cfg, bool ssd_start_empty, unsigned stats_interval_s) {
  auto options = kvtier::daemon::node_tiers_options(cfg);
  if (!options.ok()) {
    fmt::print(stderr, "kvtierd: {}\n", options.status().to_string());
    return 2;
  }
  if (ssd_start_empty) options->ssd.start_empty_if_unreadable = true;
  // Block the stop signals before any thread starts, so every thread inherits the mask and the
  // main thread alone receives them in sigtimedwait.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto tiers = kvtier::node::NodeTiers::open(*options);
  if (!tiers.ok()) {
    fmt::print(stderr, "kvtierd: cannot start: {}\n", tiers.status().to_string());
    return 1;
  }
  // The scheduler-facing side: the event log (a new epoch) and the gRPC services.
  kvtier::services::FrontendOptions fo;
  fo.address = cfg.grpc_address;
  fo.node_id = options->node_name;
  for (const auto& spec : cfg.namespaces) fo.namespaces.push_back(kvtier::Namespace::create(spec).value());  // valid
  auto frontend = kvtier::services::GrpcFrontend::start((*tiers)->index(), std::move(fo));
  if (!frontend.ok()) {
    fmt::print(stderr, "kvtierd: {}\n", frontend.status().to_string());
    return 1;
  }
  const auto st = (*tiers)->stats();
  fmt::print(
      "kvtierd: serving node {} (pid {}) on {}, epoch {}; recovered {} SSD blocks, {} restored to the index, {} "
      "forgotten\n",
      options->node_name, ::getpid(), cfg.grpc_address, (*frontend)->epoch(), st.ssd.recovered_blocks,
      st.reconcile_restored, st.reconcile_forgotten);
  std::fflush(stdout);
  int signal = 0;
  while (signal == 0) {
    timespec wait{static_cast<time_t>(stats_interval_s > 0 ? stats_interval_s : 3600), 0};
    signal = sigtimedwait(&stop, nullptr, &wait);
    if (signal < 0) {
      signal = 0;
      if (stats_interval_s > 0) print_stats((*tiers)->stats());
    }
  }
  fmt::print("kvtierd: {} received; draining requests, writing the SSD region being filled\n",
             signal == SIGTERM ? "SIGTERM" : "SIGINT");
  frontend->reset();  // stops taking requests; running ones get 2 s
  if (auto s = (*tiers)->flush(); !s.ok()) fmt::print(stderr, "kvtierd: flush: {}\n", s.to_string());
  print_stats((*tiers)->stats());
  tiers->reset();
  fmt::print("kvtierd: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvtierd: the kvtier node daemon"};
  app.set_version_flag("--version", fmt::format("kvtierd 0.1.0 (key format v{})", kvtier::kKeyFormatVersion));
  std::string config_path;
  bool check = false;
  bool print_config = false;
  bool print_default = false;
  app.add_option("-c,--config", config_path, "YAML configuration file (default: the embedded default)");
  app.add_flag("--check", check, "Validate the configuration, print a summary and exit");
  app.add_flag("--print-config", print_config, "Print the effective configuration as YAML and exit");
  app.add_flag("--print-default-config", print_default, "Print the embedded default configuration and exit");
  bool ssd_start_empty = false;
  unsigned stats_interval = 0;
  app.add_flag("--ssd-start-empty", ssd_start_empty,
               "If the SSD tier's catalogue cannot be opened, discard it and start the tier empty");
  app.add_option("--stats-interval", stats_interval, "Print a statistics line every N seconds (0: only at exit)");
  CLI11_PARSE(app, argc, argv);

  if (print_default) {
    fmt::print("{}", kvtier::config::embedded_default_config());
    return 0;
  }
  auto cfg = config_path.empty() ? kvtier::config::parse_node_config("", "embedded default")
                                 : kvtier::config::load_node_config(config_path);
  if (!cfg.ok()) {
    fmt::print(stderr, "kvtierd: invalid configuration: {}\n", cfg.status().to_string());
    return 2;
  }
  if (print_config) {
    fmt::print("{}", kvtier::config::to_yaml(*cfg));
    return 0;
  }
  print_summary(*cfg);
  if (check) {
    fmt::print("configuration ok\n");
    return 0;
  }
  return serve(*cfg, ssd_start_empty, stats_interval);
}
