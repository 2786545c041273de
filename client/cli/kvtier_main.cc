// kvtier: the operator CLI. Local tools (demo, keys, tiers-demo) and a running node's view over
// gRPC (stats, match, events, snapshot).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "commands.h"
#include "kvtier/prefix_chain.h"

int main(int argc, char** argv) {
  CLI::App app{"kvtier: operate and inspect a kvtier node"};
  app.require_subcommand(1);
  app.set_version_flag("--version", fmt::format("kvtier 0.1.0 (key format v{})", kvtier::kKeyFormatVersion));

  const auto run_demo = kvtier::cli::add_demo_command(app);
  const auto run_keys = kvtier::cli::add_keys_command(app);
  const auto run_tiers_demo = kvtier::cli::add_tiers_demo_command(app);
  const auto run_stats = kvtier::cli::add_stats_command(app);
  const auto run_match = kvtier::cli::add_match_command(app);
  const auto run_events = kvtier::cli::add_events_command(app);
  const auto run_snapshot = kvtier::cli::add_snapshot_command(app);
  const auto run_health = kvtier::cli::add_health_command(app);

  CLI11_PARSE(app, argc, argv);
  if (app.got_subcommand("demo")) return run_demo();
  if (app.got_subcommand("keys")) return run_keys();
  if (app.got_subcommand("tiers-demo")) return run_tiers_demo();
  if (app.got_subcommand("stats")) return run_stats();
  if (app.got_subcommand("match")) return run_match();
  if (app.got_subcommand("events")) return run_events();
  if (app.got_subcommand("snapshot")) return run_snapshot();
  if (app.got_subcommand("health")) return run_health();
  return 2;
}
