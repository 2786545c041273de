// `kvtier stats|match|events|snapshot`: a running node's view over its gRPC services, the same
// calls a scheduler or an operator's tooling makes (docs/api.md).
#include <fmt/format.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "commands.h"
#include "kvtier/block_key.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "server/security/client_credentials.h"

namespace kvtier::cli {
namespace {

constexpr const char* kDefaultAddress = "127.0.0.1:50551";

// A node's address and how to reach it: plaintext, TLS, mutual TLS, a bearer token. Flags, or
// KVTIER_CLI_* environment variables so a shell can set them once.
struct NodeConnection {
  std::string address = kDefaultAddress;
  config::ClientSecurity settings;
  std::shared_ptr<const security::ClientCredentials> credentials;
  std::shared_ptr<grpc::Channel> channel;

  void add_options(CLI::App* cmd) {
    cmd->add_option("-a,--address", address, "the node's gRPC address")->capture_default_str();
    cmd->add_option("--tls-ca", settings.ca_file, "TLS: the CA certificates the node's certificate chains to")
        ->envname("KVTIER_CLI_TLS_CA");
    cmd->add_option("--tls-cert", settings.cert_file, "mutual TLS: this client's certificate chain")
        ->envname("KVTIER_CLI_TLS_CERT");
    cmd->add_option("--tls-key", settings.key_file, "mutual TLS: this client's private key")
        ->envname("KVTIER_CLI_TLS_KEY");
    cmd->add_option("--tls-server-name", settings.server_name, "the name the node's certificate carries")
        ->envname("KVTIER_CLI_TLS_SERVER_NAME");
    cmd->add_option("--token-file", settings.token_file, "a file holding a bearer token for the node's roles")
        ->envname("KVTIER_CLI_TOKEN_FILE");
  }
  // Prints what is wrong with the settings and returns false.
  bool open() {
    auto c = security::ClientCredentials::open(settings);
    if (!c.ok()) {
      fmt::print(stderr, "kvtier: {}\n", c.status().to_string());
      return false;
    }
    credentials = std::move(c).value();
    channel = credentials->channel(address);
    return true;
  }
  std::unique_ptr<grpc::ClientContext> context(int timeout_s) const {
    auto c = std::make_unique<grpc::ClientContext>();
    if (timeout_s > 0) c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
    credentials->authorize(*c);
    return c;
  }
};

int rpc_failed(const std::string& what, const std::string& address, const grpc::Status& s) {
  fmt::print(stderr, "kvtier: {} on {} failed: {} ({})\n", what, address, s.error_message(),
             static_cast<int>(s.error_code()));
  return 1;
}

std::string tier_label(v1::Tier t) {
  switch (t) {
    case v1::TIER_HBM: return "hbm";
    case v1::TIER_HOST: return "host";
    case v1::TIER_SSD: return "ssd";
    default: return "?";
  }
}

std::string tier_set(uint32_t bits) {
  if (bits == 0) return "-";
  std::string out;
  for (uint32_t b = 0; b < 3; ++b) {
    if ((bits & (1U << b)) == 0) continue;
    if (!out.empty()) out += "+";
    out += tier_label(static_cast<v1::Tier>(b + 1));
  }
  return out;
}

std::string hex_key(const std::string& bytes) {
  return bytes.size() == BlockKey::kBytes
             ? BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(bytes.data())).to_hex()
             : "(bad key)";
}

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

// Token ids from "1,2,3", "1 2 3" or a file of them.
bool parse_tokens(const std::string& text, std::vector<uint32_t>& out) {
  std::string spaced = text;
  for (char& c : spaced) {
    if (c == ',') c = ' ';
  }
  std::istringstream in(spaced);
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const unsigned long v = std::strtoul(word.c_str(), &end, 10);
    if (end == word.c_str() || *end != '\0' || v > UINT32_MAX) return false;
    out.push_back(static_cast<uint32_t>(v));
  }
  return true;
}

volatile std::sig_atomic_t g_interrupted = 0;

}  // namespace

Runner add_stats_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("stats", "A node's statistics per tier (Admin.GetStats)");
  auto node = std::make_shared<NodeConnection>();
  node->add_options(cmd);
  return [node] {
    if (!node->open()) return 2;
    auto stub = v1::Admin::NewStub(node->channel);
    v1::GetStatsResponse s;
    auto c = node->context(10);
    const grpc::Status st = stub->GetStats(c.get(), v1::GetStatsRequest(), &s);
    if (!st.ok()) return rpc_failed("GetStats", node->address, st);
    fmt::print("node {} · pid {} · epoch {} · up {} s\n", s.node_id(), s.pid(), s.epoch(), s.uptime_s());
    fmt::print("{:<6} {:>10} {:>14} {:>14} {:>10} {:>10}\n", "tier", "blocks", "bytes", "capacity", "hits",
               "hit ratio");
    for (const auto& t : s.tiers()) {
      const double ratio = s.blocks_asked() ? static_cast<double>(t.hits()) / static_cast<double>(s.blocks_asked()) : 0;
      fmt::print("{:<6} {:>10} {:>14} {:>14} {:>10} {:>10.3f}\n", tier_label(t.tier()), t.blocks(), mib(t.bytes()),
                 t.capacity_bytes() ? mib(t.capacity_bytes()) : std::string("-"), t.hits(), ratio);
    }
    fmt::print("index      {} / {} entries\n", s.index_entries(), s.index_capacity());
    fmt::print("asked      {} blocks (MatchPrefix, GetBlocks)\n", s.blocks_asked());
    fmt::print("moved      {} evictions · {} demotions · {} promotions · SSD {} written, {} read{}\n", s.evictions(),
               s.demotions(), s.promotions(), mib(s.ssd_bytes_written()), mib(s.ssd_bytes_read()),
               s.ssd_full() ? " · SSD FULL" : "");
    fmt::print("blocks     {} served ({}) · {} received ({}) · {} corrupt on SSD · {} puts not admitted\n",
               s.blocks_served(), mib(s.bytes_served()), s.blocks_received(), mib(s.bytes_received()),
               s.ssd_corrupt_blocks(), s.puts_not_admitted());
    fmt::print("events     next seq {} · replay from {} · {} subscribers\n", s.events_next_seq(), s.events_oldest_seq(),
               s.subscribers());
    return 0;
  };
}

Runner add_match_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("match", "How long a prefix of a prompt a node holds, per tier (Locality.MatchPrefix)");
  struct Args {
    NodeConnection node;
    std::string model, adapter, salt, tokens, tokens_file;
    std::vector<std::string> keys;
  };
  auto a = std::make_shared<Args>();
  a->node.add_options(cmd);
  cmd->add_option("--model", a->model, "namespace: model id (with --tokens)");
  cmd->add_option("--adapter", a->adapter, "namespace: adapter id");
  cmd->add_option("--salt", a->salt, "namespace: cache salt");
  cmd->add_option("--tokens", a->tokens, "token ids, comma or space separated");
  cmd->add_option("--tokens-file", a->tokens_file, "a file of token ids");
  cmd->add_option("--keys", a->keys, "block keys (32 hex digits each) instead of tokens");
  return [a] {
    v1::MatchPrefixRequest req;
    std::string text = a->tokens;
    if (!a->tokens_file.empty()) {
      std::ifstream in(a->tokens_file);
      if (!in) {
        fmt::print(stderr, "kvtier: cannot read {}\n", a->tokens_file);
        return 2;
      }
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::vector<uint32_t> tokens;
    if (!parse_tokens(text, tokens)) {
      fmt::print(stderr, "kvtier: token ids must be non-negative 32-bit integers\n");
      return 2;
    }
    for (uint32_t t : tokens) req.add_token_ids(t);
    for (const std::string& hex : a->keys) {
      auto k = BlockKey::from_hex(hex);
      if (!k.ok()) {
        fmt::print(stderr, "kvtier: {}\n", k.status().to_string());
        return 2;
      }
      const auto b = k->to_bytes();
      req.add_keys(b.data(), b.size());
    }
    if (!tokens.empty()) {
      req.mutable_namespace_()->set_model_id(a->model);
      req.mutable_namespace_()->set_adapter_id(a->adapter);
      req.mutable_namespace_()->set_cache_salt(a->salt);
    }
    if (!a->node.open()) return 2;
    auto stub = v1::Locality::NewStub(a->node.channel);
    v1::MatchPrefixResponse r;
    auto c = a->node.context(10);
    const grpc::Status st = stub->MatchPrefix(c.get(), req, &r);
    if (!st.ok()) return rpc_failed("MatchPrefix", a->node.address, st);
    fmt::print("matched {} of {} blocks", r.matched_blocks(), r.blocks_asked());
    if (r.block_tokens() > 0) fmt::print(" ({} of {} tokens)", r.matched_blocks() * r.block_tokens(), tokens.size());
    fmt::print("\n");
    for (const auto& t : r.per_tier()) fmt::print("  {:<5} {} blocks\n", tier_label(t.tier()), t.blocks());
    return 0;
  };
}

Runner add_events_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("events", "A node's residency events (Events.Subscribe)");
  struct Args {
    NodeConnection node;
    bool follow = false;
    uint64_t limit = 0;
  };
  auto a = std::make_shared<Args>();
  a->node.add_options(cmd);
  cmd->add_flag("-f,--follow", a->follow, "keep streaming new events until interrupted");
  cmd->add_option("-n,--limit", a->limit, "stop after this many events (0: no limit)");
  return [a] {
    if (!a->node.open()) return 2;
    auto channel = a->node.channel;
    // Start from the oldest event the node still keeps; without --follow, stop at the newest
    // one there was when we asked.
    v1::GetStatsResponse stats;
    {
      auto c = a->node.context(10);
      const grpc::Status st = v1::Admin::NewStub(channel)->GetStats(c.get(), v1::GetStatsRequest(), &stats);
      if (!st.ok()) return rpc_failed("GetStats", a->node.address, st);
    }
    v1::SubscribeRequest req;
    req.set_epoch(stats.epoch());
    req.set_from_seq(stats.events_oldest_seq());
    grpc::ClientContext c;
    a->node.credentials->authorize(c);
    auto stream = v1::Events::NewStub(channel)->Subscribe(&c, req);
    g_interrupted = 0;
    std::signal(SIGINT, [](int) { g_interrupted = 1; });
    std::thread watchdog([&c] {
      while (g_interrupted == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      c.TryCancel();
    });
    fmt::print("node {} · epoch {} · events {}..{}{}\n", stats.node_id(), stats.epoch(), stats.events_oldest_seq(),
               stats.events_next_seq(), a->follow ? " · following (Ctrl-C stops)" : "");
    std::fflush(stdout);
    uint64_t printed = 0;
    bool done = !a->follow && stats.events_next_seq() <= stats.events_oldest_seq();
    v1::EventBatch batch;
    while (!done && stream->Read(&batch)) {
      if (batch.resync()) {
        fmt::print("-- resync: events were lost to this subscriber; continuing from seq {} (take a snapshot)\n",
                   batch.next_seq());
      }
      for (const auto& e : batch.events()) {
        static constexpr const char* kKinds[] = {"?", "stored", "removed", "moved"};
        fmt::print("{:>8} {:<7} {} ns={} {} B {} -> {}\n", e.seq(), kKinds[e.kind() <= 3 ? e.kind() : 0],
                   hex_key(e.key()), e.namespace_id(), e.payload_bytes(), tier_set(e.tiers_before()),
                   tier_set(e.tiers_after()));
        if (a->limit > 0 && ++printed >= a->limit) done = true;
        if (done) break;
      }
      std::fflush(stdout);
      if (!a->follow && batch.next_seq() >= stats.events_next_seq()) done = true;
    }
    g_interrupted = 1;
    watchdog.join();
    c.TryCancel();
    (void)stream->Finish();
    return 0;
  };
}

Runner add_snapshot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("snapshot", "Every block a node holds, per tier (Events.Snapshot)");
  struct Args {
    NodeConnection node;
    bool keys = false;
  };
  auto a = std::make_shared<Args>();
  a->node.add_options(cmd);
  cmd->add_flag("--keys", a->keys, "list the keys, not only the counts");
  return [a] {
    v1::SnapshotResponse snap;
    if (!a->node.open()) return 2;
    auto c = a->node.context(60);
    const grpc::Status st = v1::Events::NewStub(a->node.channel)->Snapshot(c.get(), v1::SnapshotRequest(), &snap);
    if (!st.ok()) return rpc_failed("Snapshot", a->node.address, st);
    fmt::print("node {} · epoch {} · as of seq {}\n", snap.node_id(), snap.epoch(), snap.as_of_seq());
    for (const auto& t : snap.tiers()) {
      fmt::print("{:<5} {} blocks\n", tier_label(t.tier()), t.keys_size());
      if (a->keys) {
        for (const auto& k : t.keys()) fmt::print("  {}\n", hex_key(k));
      }
    }
    return 0;
  };
}

Runner add_health_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "health", "Whether a kvtierd or kvtier-indexer port serves (grpc.health.v1.Health/Check); exit 0 if so");
  struct Args {
    NodeConnection node;
    int timeout_s = 5;
  };
  auto a = std::make_shared<Args>();
  a->node.add_options(cmd);
  cmd->add_option("--timeout-s", a->timeout_s, "how long to wait for the answer")->capture_default_str();
  return [a] {
    if (!a->node.open()) return 2;
    // The standard health service, called by its method name: HealthCheckRequest{service: ""}
    // has no bytes, and HealthCheckResponse{status: SERVING} is field 1 = 1.
    grpc::GenericStub stub(a->node.channel);
    grpc::CompletionQueue cq;
    auto c = a->node.context(a->timeout_s);
    grpc::Slice empty(std::string{});
    const grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    auto call = stub.PrepareUnaryCall(c.get(), "/grpc.health.v1.Health/Check", request, &cq);
    call->StartCall();
    call->Finish(&response, &status, reinterpret_cast<void*>(1));
    void* tag = nullptr;
    bool ok = false;
    (void)cq.Next(&tag, &ok);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    if (!status.ok()) return rpc_failed("Health.Check", a->node.address, status);
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    std::string bytes;
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    const bool serving = bytes == std::string("\x08\x01", 2);
    fmt::print("{}\n", serving ? "SERVING" : "NOT_SERVING");
    return serving ? 0 : 1;
  };
}

}  // namespace kvtier::cli
