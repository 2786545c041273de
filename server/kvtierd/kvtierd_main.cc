// kvtierd: the kvtier node daemon.
//
// Loads and validates the node configuration, creates or attaches the node's shared-memory index
// and host arena (attaching is a warm restart), opens and recovers the SSD tier, keeps the tiers
// in step (demotion, promotion, upkeep) and serves the kvtier.v1 gRPC services until SIGTERM or
// SIGINT, when it drains requests, writes the SSD region being filled and exits.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/process_heap.h"
#include "config/byte_size.h"
#include "config/node_config.h"
#include "kvtier/prefix_chain.h"
#include "server/kvtierd/daemon_log.h"
#include "server/kvtierd/node_options.h"
#include "server/services/grpc_frontend.h"

namespace {

// What the configuration amounts to, one line per part (printed by --check, logged at start).
std::vector<std::string> summary(const kvtier::config::NodeConfig& cfg) {
  using kvtier::config::format_byte_size;
  std::vector<std::string> lines;
  lines.push_back(fmt::format("node       {}", cfg.node_name.empty() ? "(host name)" : cfg.node_name));
  lines.push_back(fmt::format("index      {} entries, segments {}-*", cfg.index_capacity, cfg.shm_prefix));
  lines.push_back(fmt::format("host tier  {}", format_byte_size(cfg.host_bytes)));
  lines.push_back(cfg.ssd_enabled ? fmt::format("ssd tier   {} under {}", format_byte_size(cfg.ssd_bytes), cfg.ssd_dir)
                                  : std::string("ssd tier   disabled"));
  lines.push_back(fmt::format("grpc       {} · metrics {} · event ring {} · drain {} ms", cfg.grpc_address,
                              cfg.metrics_address.empty() ? "(none)" : cfg.metrics_address, cfg.event_ring,
                              cfg.drain_ms));
  const kvtier::config::ServerSecurity& sec = cfg.security;
  lines.push_back(fmt::format("security   {} · {}",
                              !sec.tls.enabled() ? (sec.allow_insecure ? "plaintext (allow_insecure)" : "plaintext")
                              : sec.tls.client_ca_file.empty()
                                  ? "TLS"
                                  : (sec.tls.require_client_cert ? "mutual TLS" : "TLS, optional client certificates"),
                              sec.grants.empty() && !sec.default_roles
                                  ? std::string("every caller may read, write and administer")
                                  : fmt::format("{} grants, every caller: {}", sec.grants.size(),
                                                kvtier::config::role_list(sec.roles_of_everyone()))));
  for (const auto& spec : cfg.namespaces) {
    auto ns = kvtier::Namespace::create(spec);  // validated already; create() only adds the root
    lines.push_back(fmt::format("namespace  {}{}{} · {} per block · root {}", spec.model_id,
                                spec.adapter_id.empty() ? "" : " +" + spec.adapter_id,
                                spec.cache_salt.empty() ? "" : " salt=" + spec.cache_salt,
                                format_byte_size(spec.layout.bytes_per_block()), ns.ok() ? ns->root().to_hex() : "?"));
  }
  return lines;
}

void log_stats(const kvtier::node::NodeTiersStats& s) {
  using kvtier::Tier;
  using kvtier::tier_index;
  spdlog::info(
      "kvtierd: blocks host={} ssd={} · host {}/{} MiB · demoted={} promoted={} (requests {}) · ssd regions "
      "written={} reclaimed={} · ssd corrupt={} read_errors={} write_errors={}{}",
      s.index.tier_entries[tier_index(Tier::kHost)], s.index.tier_entries[tier_index(Tier::kSsd)],
      s.host_used_bytes >> 20, s.host_bytes >> 20, s.demoted, s.promoted, s.load_requests, s.ssd.regions_written,
      s.ssd.regions_reclaimed, s.ssd.corrupt_blocks, s.ssd.read_errors, s.ssd.write_errors,
      s.ssd.full ? " · SSD FULL" : "");
}

// Logs what a slow start is doing, every 2 s, until it is done (recovering a large SSD
// catalogue can take a while; an operator should see it is not stuck).
class StartProgress {
 public:
  StartProgress() : started_(std::chrono::steady_clock::now()), thread_([this] { run(); }) {}
  ~StartProgress() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  StartProgress(const StartProgress&) = delete;
  StartProgress& operator=(const StartProgress&) = delete;
  void phase(std::string_view what) {
    std::lock_guard lock(mu_);
    phase_ = what;
    spdlog::debug("kvtierd: starting: {}", phase_);
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(2), [this] { return done_; })) {
      const auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
      spdlog::info("kvtierd: still starting after {} s: {}", s.count(), phase_);
    }
  }
  std::chrono::steady_clock::time_point started_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string phase_ = "starting";
  bool done_ = false;
  std::thread thread_;
};

// Runs the node until SIGTERM/SIGINT. Returns the exit code.
int serve(const kvtier::config::NodeConfig& cfg, bool ssd_start_empty, unsigned stats_interval_s) {
  auto options = kvtier::daemon::node_tiers_options(cfg);
  if (!options.ok()) {
    spdlog::error("kvtierd: {}", options.status().to_string());
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
  kvtier::Result<std::unique_ptr<kvtier::node::NodeTiers>> tiers = kvtier::Status::internal("not opened");
  {
    StartProgress progress;
    options->on_phase = [&progress](std::string_view what) { progress.phase(what); };
    tiers = kvtier::node::NodeTiers::open(*options);
  }
  if (!tiers.ok()) {
    spdlog::error("kvtierd: cannot start: {}", tiers.status().to_string());
    return 1;
  }
  // The scheduler-facing side: the event log (a new epoch), the gRPC services, /metrics.
  kvtier::services::FrontendOptions fo;
  fo.address = cfg.grpc_address;
  fo.metrics_address = cfg.metrics_address;
  fo.node_id = options->node_name;
  fo.shm_prefix = cfg.shm_prefix;
  fo.event_ring = cfg.event_ring;
  if (cfg.vllm_events_enabled) {
    kvtier::publisher::VllmPublisherOptions v;
    v.endpoint = cfg.vllm_events_endpoint;
    v.connect = cfg.vllm_events_connect;
    v.replay_endpoint = cfg.vllm_events_replay_endpoint;
    v.pod_ids = cfg.vllm_pod_ids();
    v.fallback_pod = options->node_name;
    v.encoding = *kvtier::publisher::parse_vllm_encoding(cfg.vllm_events_encoding);  // validated
    v.media.host = cfg.vllm_events_host_medium;
    v.media.ssd = cfg.vllm_events_ssd_medium;
    v.publish_hbm = cfg.vllm_events_publish_hbm;
    v.replay_batches = cfg.vllm_events_replay_batches;
    v.max_batch_events = cfg.max_batch_events;
    v.token_ring = {cfg.vllm_events_token_ring, cfg.vllm_events_max_block_tokens};
    v.state_file = cfg.vllm_state_file();
    fo.vllm_events = std::move(v);
  }
  fo.limits = {cfg.max_tokens, cfg.max_keys, cfg.max_batch, cfg.max_batch_events,
               static_cast<uint32_t>(cfg.max_chunk_bytes)};
  fo.grace = std::chrono::milliseconds(cfg.drain_ms);
  fo.security = cfg.security;
  fo.ucx = {cfg.ucx_enabled, std::chrono::milliseconds(cfg.ucx_lease_ms),
            std::chrono::milliseconds(cfg.ucx_max_lease_ms), cfg.ucx_max_leases};
  for (const auto& spec : cfg.namespaces) fo.namespaces.push_back(kvtier::Namespace::create(spec).value());  // valid
  auto frontend = kvtier::services::GrpcFrontend::start(**tiers, std::move(fo));
  if (!frontend.ok()) {
    spdlog::error("kvtierd: {}", frontend.status().to_string());
    return 1;
  }
  for (const std::string& w : (*frontend)->transport_warnings()) spdlog::warn("kvtierd: {}", w);
  if ((*frontend)->ucx_reads()) {
    spdlog::info("kvtierd: UCX reads out of the host arena: on (ReadBlocks; transports from UCX_TLS, default all)");
  } else if (cfg.ucx_enabled) {
    spdlog::warn("kvtierd: UCX reads unavailable, remote readers fall back to GetBlocks: {}",
                 (*frontend)->ucx_unavailable());
  } else {
    spdlog::info("kvtierd: UCX reads off (server.ucx.enabled: false); remote readers use GetBlocks");
  }
  const auto st = (*tiers)->stats();
  spdlog::info("kvtierd: gRPC {}; roles: {}", (*frontend)->transport(),
               (*frontend)->access().open_to_everyone()
                   ? std::string("every caller holds read, write and admin")
                   : fmt::format("{} grants, every caller holds {}", (*frontend)->access().grants(),
                                 kvtier::config::role_list(cfg.security.roles_of_everyone())));
  spdlog::info(
      "kvtierd: serving node {} (pid {}) on {}, epoch {}; recovered {} SSD blocks, {} restored to the index, {} "
      "forgotten; metrics on {}",
      options->node_name, ::getpid(), cfg.grpc_address, (*frontend)->epoch(), st.ssd.recovered_blocks,
      st.reconcile_restored, st.reconcile_forgotten,
      cfg.metrics_address.empty() ? std::string("(none)") : "http://" + cfg.metrics_address + "/metrics");
  if (cfg.vllm_events_enabled) {
    spdlog::info("kvtierd: vLLM-format events on {} ({}), replay on {}", cfg.vllm_events_endpoint,
                 cfg.vllm_events_connect ? "connected" : "bound",
                 cfg.vllm_events_replay_endpoint.empty() ? std::string("(none)") : cfg.vllm_events_replay_endpoint);
  }
  // Freed heap memory back to the system every so often: private memory then follows what the
  // daemon holds (src/common/process_heap.h says why).
  std::unique_ptr<kvtier::HeapTrimmer> trimmer;
  if (cfg.heap_trim_ms > 0)
    trimmer = std::make_unique<kvtier::HeapTrimmer>(std::chrono::milliseconds(cfg.heap_trim_ms));
  int signal = 0;
  while (signal == 0) {
    timespec wait{static_cast<time_t>(stats_interval_s > 0 ? stats_interval_s : 3600), 0};
    signal = sigtimedwait(&stop, nullptr, &wait);
    if (signal < 0) {
      signal = 0;
      if (stats_interval_s > 0) log_stats((*tiers)->stats());
    }
  }
  spdlog::info("kvtierd: {} received; draining requests (up to {} ms), writing the SSD region being filled",
               signal == SIGTERM ? "SIGTERM" : "SIGINT", cfg.drain_ms);
  frontend->reset();  // stops taking requests; running ones get the drain time
  if (auto s = (*tiers)->flush(); !s.ok()) spdlog::error("kvtierd: flush: {}", s.to_string());
  log_stats((*tiers)->stats());
  tiers->reset();
  spdlog::info("kvtierd: stopped");
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
  std::vector<std::string> sets;
  app.add_option("-c,--config", config_path, "YAML configuration file (default: the embedded default)");
  app.add_option("--set", sets,
                 "Override one setting, path=value (e.g. --set host.bytes=4GiB); wins over the file and KVTIER_* "
                 "environment variables");
  std::string grpc_address, metrics_address, node_name, log_level, log_format;
  app.add_option("--grpc-address", grpc_address, "Same as --set server.grpc_address=...");
  app.add_option("--metrics-address", metrics_address, "Same as --set server.metrics_address=...");
  app.add_option("--node-name", node_name, "Same as --set node.name=...");
  app.add_option("--log-level", log_level, "Same as --set log.level=...");
  app.add_option("--log-format", log_format, "Same as --set log.format=... (text or json)");
  app.add_flag("--check,--check-config", check, "Validate the configuration, print a summary and exit");
  app.add_flag("--print-config", print_config, "Print the effective configuration as YAML and exit");
  app.add_flag("--print-default-config", print_default, "Print the embedded default configuration and exit");
  bool ssd_start_empty = false;
  unsigned stats_interval = 0;
  app.add_flag("--ssd-start-empty", ssd_start_empty,
               "If the SSD tier's catalogue cannot be opened, discard it and start the tier empty");
  app.add_option("--stats-interval", stats_interval, "Log a statistics line every N seconds (0: only at exit)");
  CLI11_PARSE(app, argc, argv);

  if (print_default) {
    fmt::print("{}", kvtier::config::embedded_default_config());
    return 0;
  }
  // Sources in order: embedded default, file, KVTIER_* environment, flags.
  const auto env = kvtier::config::environment_overrides(environ);
  for (const std::string& name : env.unknown) {
    fmt::print(stderr,
               "kvtierd: warning: environment variable {} names no setting (settings are KVTIER_ + a dotted path in "
               "upper case, e.g. KVTIER_HOST_BYTES); ignored\n",
               name);
  }
  std::vector<kvtier::config::ConfigOverride> overrides = env.overrides;
  for (const std::string& s : sets) {
    auto o = kvtier::config::parse_override(s, "--set");
    if (!o.ok()) {
      fmt::print(stderr, "kvtierd: invalid configuration: {}\n", o.status().to_string());
      return 2;
    }
    overrides.push_back(*o);
  }
  const std::pair<const std::string*, const char*> shortcuts[] = {{&grpc_address, "server.grpc_address"},
                                                                  {&metrics_address, "server.metrics_address"},
                                                                  {&node_name, "node.name"},
                                                                  {&log_level, "log.level"},
                                                                  {&log_format, "log.format"}};
  for (const auto& [value, path] : shortcuts) {
    if (!value->empty()) overrides.push_back({path, *value, fmt::format("--{}", path)});
  }
  auto cfg = config_path.empty() ? kvtier::config::parse_node_config("", "embedded default", overrides)
                                 : kvtier::config::load_node_config(config_path, overrides);
  if (!cfg.ok()) {
    fmt::print(stderr, "kvtierd: invalid configuration: {}\n", cfg.status().to_string());
    return 2;
  }
  if (print_config) {
    fmt::print("{}", kvtier::config::to_yaml(*cfg));
    return 0;
  }
  if (check) {
    for (const std::string& line : summary(*cfg)) fmt::print("{}\n", line);
    fmt::print("configuration ok\n");
    return 0;
  }
  if (auto s = kvtier::daemon::configure_logging(cfg->log_level, cfg->log_format); !s.ok()) {
    fmt::print(stderr, "kvtierd: {}\n", s.to_string());
    return 2;
  }
  for (const std::string& line : summary(*cfg)) spdlog::info("kvtierd: {}", line);
  return serve(*cfg, ssd_start_empty, stats_interval);
}
