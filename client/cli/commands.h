// Subcommands of the `kvtier` operator CLI. Each registers its options on the app and returns
// the exit code of its run.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace kvtier::cli {

using Runner = std::function<int()>;

// `kvtier demo`: key chains of a built-in multi-turn conversation, showing the shared prefix.
Runner add_demo_command(CLI::App& app);
// `kvtier keys`: the key chain of a token array, for cross-checking other implementations.
Runner add_keys_command(CLI::App& app);
// `kvtier tiers-demo write|read`: blocks demoted to SSD by a running kvtierd and loaded back.
Runner add_tiers_demo_command(CLI::App& app);
// `kvtier stats|match|events|snapshot --address A`: a running node's view over gRPC.
Runner add_stats_command(CLI::App& app);
Runner add_match_command(CLI::App& app);
Runner add_events_command(CLI::App& app);
Runner add_snapshot_command(CLI::App& app);
// `kvtier health --address A`: exit 0 when a kvtierd or kvtier-indexer port serves: the probe
// Kubernetes runs when the port speaks TLS (kubelet's own gRPC probe cannot).
Runner add_health_command(CLI::App& app);

}  // namespace kvtier::cli
