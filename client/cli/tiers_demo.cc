// `kvtier tiers-demo write|read --config FILE`: the SSD tier seen from an engine, against a
// running kvtierd (scripts/run starts one, restarts it between the two phases).
//   write: multi-turn conversations, each turn reusing the previous turns' blocks, far more than
//          host memory holds; the daemon demotes what was used twice to SSD. Prints where blocks are.
//   read:  after the daemon restarted, finds the conversations on SSD, loads them back into host
//          memory through the daemon and checks every byte.
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "commands.h"
#include "config/byte_size.h"
#include "config/node_config.h"
#include "kvtier/client.h"

namespace kvtier::cli {
namespace {

constexpr uint32_t kConversations = 24;
constexpr uint32_t kTurns = 4;
constexpr uint32_t kBlocksPerTurn = 3;

// Bytes derived from the key, so the reader can verify what comes back.
void fill(const BlockKey& key, uint8_t* dst, size_t n) {
  uint64_t x = key.hi ^ key.lo;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    std::memcpy(dst + i, &x, 8);
  }
}

std::vector<TokenId> conversation(uint32_t c, uint32_t turns, uint32_t block_tokens) {
  std::vector<TokenId> t(static_cast<size_t>(turns) * kBlocksPerTurn * block_tokens);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<TokenId>((size_t{c} * 7919 + i * 31 + 1) % 128000);
  return t;
}

struct Where {
  size_t blocks = 0, host = 0, ssd = 0, missing = 0;
};

Where locate(Client& client, const std::vector<BlockKey>& keys) {
  Where w;
  for (const BlockKey& k : keys) {
    ++w.blocks;
    auto info = client.index().lookup(k);
    if (!info) {
      ++w.missing;
    } else if (info->in(Tier::kHost)) {
      ++w.host;
    } else if (info->in(Tier::kSsd)) {
      ++w.ssd;
    }
  }
  return w;
}

int run(const std::string& phase, const std::string& config_path) {
  auto cfg = config::load_node_config(config_path);
  if (!cfg.ok()) {
    fmt::print(stderr, "kvtier tiers-demo: {}\n", cfg.status().to_string());
    return 2;
  }
  ClientOptions co;
  co.node_name = cfg->node_name;
  co.shm_prefix = cfg->shm_prefix;
  auto client_r = Client::open(co);
  if (!client_r.ok()) {
    fmt::print(stderr, "kvtier tiers-demo: is kvtierd running with {}? {}\n", config_path,
               client_r.status().to_string());
    return 1;
  }
  Client& client = **client_r;
  auto ns = client.register_namespace(cfg->namespaces.front());
  if (!ns.ok()) {
    fmt::print(stderr, "kvtier tiers-demo: {}\n", ns.status().to_string());
    return 1;
  }
  const uint32_t bt = ns->ns.block_tokens();
  const size_t block_bytes = ns->ns.bytes_per_block();
  std::vector<std::vector<BlockKey>> chains;
  for (uint32_t c = 0; c < kConversations; ++c) chains.push_back(client.keys(*ns, conversation(c, kTurns, bt)));

  if (phase == "tokens") {
    // The last conversation written, all turns (the likeliest still cached): a prompt a scheduler
    // could ask the node about.
    const auto tokens = conversation(kConversations - 1, kTurns, bt);
    for (size_t i = 0; i < tokens.size(); ++i) fmt::print("{}{}", i ? "," : "", tokens[i]);
    fmt::print("\n");
    return 0;
  }
  if (phase == "write") {
    std::vector<uint8_t> bytes(block_bytes);
    size_t hits = 0, puts = 0;
    for (const auto& keys : chains) {
      for (uint32_t turn = 1; turn <= kTurns; ++turn) {
        const std::span<const BlockKey> upto(keys.data(), static_cast<size_t>(turn) * kBlocksPerTurn);
        // A new turn re-reads the conversation so far (a prefix hit), then appends its blocks.
        auto got = client.acquire(upto);
        if (!got.ok()) {
          fmt::print(stderr, "kvtier tiers-demo: {}\n", got.status().to_string());
          return 1;
        }
        hits += got->size();
        for (size_t i = got->size(); i < upto.size(); ++i) {
          fill(upto[i], bytes.data(), bytes.size());
          if (Status s = client.put(*ns, upto[i], i == 0 ? ns->ns.root() : upto[i - 1], bytes); !s.ok()) {
            fmt::print(stderr, "kvtier tiers-demo: put: {}\n", s.to_string());
            return 1;
          }
          ++puts;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // an engine takes a while per turn
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the daemon finish demoting
    Where total;
    for (const auto& keys : chains) {
      const Where w = locate(client, keys);
      total.blocks += w.blocks;
      total.host += w.host;
      total.ssd += w.ssd;
      total.missing += w.missing;
    }
    fmt::print("wrote {} conversations × {} turns: {} blocks of {} put, {} prefix hits along the way\n", kConversations,
               kTurns, puts, config::format_byte_size(block_bytes), hits);
    fmt::print("host memory holds {} blocks ({}), SSD {} more; {} used only once were not worth an SSD write\n",
               total.host, config::format_byte_size(cfg->host_bytes), total.ssd, total.missing);
    return total.ssd > 0 ? 0 : 1;
  }

  // read
  size_t on_ssd = 0, loaded = 0, verified = 0, host_before = 0;
  for (const auto& keys : chains) {
    const Where w = locate(client, keys);
    on_ssd += w.ssd;
    host_before += w.host;
  }
  fmt::print("after the restart the index offers {} blocks from host memory and {} from SSD\n", host_before, on_ssd);
  std::vector<uint8_t> want(block_bytes);
  for (const auto& keys : chains) {
    auto got = client.acquire_or_load(keys);
    if (!got.ok()) {
      fmt::print(stderr, "kvtier tiers-demo: {}\n", got.status().to_string());
      return 1;
    }
    got->host.clear();
    loaded += got->load.wait(std::chrono::seconds(10));
    // The conversation's cached prefix, now in host memory, read in place and checked.
    auto blocks = client.acquire(keys);
    if (!blocks.ok()) continue;
    for (const HostBlock& b : *blocks) {
      fill(b.key(), want.data(), want.size());
      if (b.size() == want.size() && std::memcmp(b.data(), want.data(), want.size()) == 0) ++verified;
    }
  }
  fmt::print(
      "loaded {} blocks from SSD back into host memory through kvtierd; {} cached blocks read in place "
      "and verified byte for byte\n",
      loaded, verified);
  return on_ssd > 0 && loaded > 0 && verified >= loaded ? 0 : 1;
}

}  // namespace

Runner add_tiers_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tiers-demo", "Host and SSD tiers against a running kvtierd (see scripts/run)");
  auto phase = std::make_shared<std::string>();
  auto config = std::make_shared<std::string>();
  cmd->add_option("phase", *phase, "write, read (after a daemon restart), or tokens (print a written prompt)")
      ->required()
      ->check(CLI::IsMember({"write", "read", "tokens"}));
  cmd->add_option("-c,--config", *config, "the kvtierd configuration file")->required();
  return [phase, config] { return run(*phase, *config); };
}

}  // namespace kvtier::cli
