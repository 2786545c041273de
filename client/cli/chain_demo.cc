// `kvtier demo`: what prefix-hash chains buy a cache, on a built-in multi-turn conversation.
//
// Each turn of a chat resends the whole history, so each turn's chain starts with the previous
// turn's keys: a cache that holds them serves that prefix instead of recomputing it. The same
// conversation under another tenant's cache_salt shares no key at all.
#include <fmt/format.h>
#include <xxhash.h>

#include <unistd.h>

#include <array>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "config/byte_size.h"
#include "config/node_config.h"
#include "host_demo.h"
#include "kvtier/block_index.h"
#include "kvtier/prefix_chain.h"

namespace kvtier::cli {
namespace {

constexpr std::string_view kSystemPrompt =
    "You are a careful assistant for the operations team of a large inference cluster. Answer with the exact "
    "commands to run and explain every flag you use. When a question is ambiguous ask one short clarifying "
    "question first. Never invent metrics: if a number is not in the logs the user pasted, say that it is "
    "missing and how to collect it. Prefer commands that are safe to run on a production node, and say so "
    "when a command restarts or drains anything.";

struct Message {
  std::string_view role;
  std::string_view text;
};

constexpr std::array<Message, 7> kConversation{{
    {"user", "Our decode pods show high time to first token after a rolling restart. Where do I start?"},
    {"assistant",
     "Start with the prefix cache hit ratio per pod before and after the restart. A restart that drops the "
     "host cache forces every long system prompt to be prefilled again, which shows up as a step in time "
     "to first token that decays as the cache warms."},
    {"user", "The hit ratio fell from sixty percent to five percent and recovered after twenty minutes."},
    {"assistant",
     "That matches a cold cache. Keep the cache in a node service that outlives the engine pods, so an "
     "engine restart finds its blocks still resident, and route requests to the pods that hold their prefix."},
    {"user", "How does the router know which pod holds which prefix?"},
    {"assistant",
     "Each node publishes events when it stores or removes a block, keyed by a hash chain over the prompt "
     "tokens. The router hashes the incoming prompt the same way and asks which node holds the longest prefix."},
    {"user", "Show me how to check that the hashes agree between the router and the nodes."},
}};

// Toy tokenizer: one token per whitespace-separated word, id from the word's hash. A real engine
// supplies real token ids; what matters here is that equal text gives equal tokens.
void append_tokens(std::string_view text, std::vector<TokenId>& out) {
  std::istringstream words{std::string(text)};
  std::string word;
  while (words >> word) out.push_back(XXH32(word.data(), word.size(), 0) % 128000 + 256);
}

constexpr TokenId kTurnMarker = 7;  // stands for a chat template's role marker

std::vector<TokenId> prompt_for_turn(size_t user_turn) {
  std::vector<TokenId> tokens;
  append_tokens(kSystemPrompt, tokens);
  size_t users_seen = 0;
  for (const auto& m : kConversation) {
    tokens.push_back(kTurnMarker);
    append_tokens(m.role, tokens);
    append_tokens(m.text, tokens);
    if (m.role == "user" && ++users_seen == user_turn) break;
  }
  return tokens;
}

size_t user_turns() {
  size_t n = 0;
  for (const auto& m : kConversation) n += m.role == "user";
  return n;
}

int run_demo() {
  auto cfg = config::parse_node_config("", "embedded default");
  if (!cfg.ok()) {
    fmt::print(stderr, "kvtier demo: {}\n", cfg.status().to_string());
    return 1;
  }
  auto ns = Namespace::create(cfg->namespaces.front());
  NamespaceSpec other_spec = cfg->namespaces.front();
  other_spec.cache_salt = "tenant-b";
  auto other = Namespace::create(other_spec);
  if (!ns.ok() || !other.ok()) {
    fmt::print(stderr, "kvtier demo: {}\n", (ns.ok() ? other.status() : ns.status()).to_string());
    return 1;
  }
  const KvLayout& layout = ns->layout();

  fmt::print("kvtier prefix-chain demo (key format v{})\n", kKeyFormatVersion);
  fmt::print("namespace  model={} adapter={} cache_salt={}\n", ns->spec().model_id,
             ns->spec().adapter_id.empty() ? "-" : ns->spec().adapter_id,
             ns->spec().cache_salt.empty() ? "-" : ns->spec().cache_salt);
  fmt::print("layout     {} {} layers × {} kv heads × {} head dim, {} tokens/block = {} per block\n",
             dtype_name(layout.dtype), layout.num_layers, layout.num_kv_heads, layout.head_dim, layout.block_tokens,
             config::format_byte_size(layout.bytes_per_block()));
  fmt::print("root       {}\n\n", ns->root().to_hex());
  fmt::print("A chat resends its history every turn; a cache holding earlier turns' blocks serves that prefix.\n");
  fmt::print("(toy tokenizer: one token per word)\n\n");
  // A private index segment stands in for the node's: each turn's blocks are inserted after the
  // turn, and "cached" is what a longest-prefix lookup in the index answers for the next one.
  IndexOptions opts;
  opts.segment_name = fmt::format("kvtier-demo-{}", ::getpid());
  opts.capacity = 4096;
  opts.node_name = "demo";
  auto cache = BlockIndex::create(opts);
  if (!cache.ok()) {
    fmt::print(stderr, "kvtier demo: {}\n", cache.status().to_string());
    return 1;
  }
  fmt::print("{:>4}  {:>6}  {:>6}  {:>12}  {:>6}  {:<32}  {}\n", "turn", "tokens", "blocks", "cached", "new",
             "first key", "first new key");
  const auto block_bytes = static_cast<uint32_t>(layout.bytes_per_block());
  size_t total_blocks = 0;
  size_t total_cached = 0;
  std::vector<BlockKey> last_chain;
  for (size_t turn = 1; turn <= user_turns(); ++turn) {
    const std::vector<TokenId> tokens = prompt_for_turn(turn);
    const std::vector<BlockKey> chain = compute_chain(*ns, tokens);
    const size_t cached = cache->match_prefix(chain).overall;
    const std::string first_new = cached < chain.size() ? chain[cached].to_hex() : std::string("-");
    fmt::print("{:>4}  {:>6}  {:>6}  {:>5} ({:>3}%)  {:>6}  {:<32}  {}\n", turn, tokens.size(), chain.size(), cached,
               chain.empty() ? 0 : 100 * cached / chain.size(), chain.size() - cached,
               chain.empty() ? std::string("-") : chain.front().to_hex(), first_new);
    total_blocks += chain.size();
    total_cached += cached;
    BlockKey parent = ns->root();
    for (size_t i = 0; i < chain.size(); ++i) {
      (void)cache->insert(BlockRecord{chain[i], parent, 1, block_bytes, Tier::kHost, i + 1});
      parent = chain[i];
    }
    last_chain = chain;
  }
  fmt::print("\nover {} turns: {} of {} blocks ({}%) served from cache instead of prefilled\n", user_turns(),
             total_cached, total_blocks, total_blocks ? 100 * total_cached / total_blocks : 0);

  const std::vector<BlockKey> other_chain = compute_chain(*other, prompt_for_turn(user_turns()));
  size_t shared = 0;
  for (const auto& k : other_chain) shared += cache->contains(k) ? 1 : 0;
  fmt::print(
      "tenant isolation: the last turn under cache_salt=\"tenant-b\" has {} blocks, {} shared with the "
      "empty-salt tenant\n",
      other_chain.size(), shared);
  fmt::print("                  first key {} vs {}\n", other_chain.empty() ? "-" : other_chain.front().to_hex(),
             last_chain.empty() ? "-" : last_chain.front().to_hex());
  const IndexStats st = cache->stats();
  fmt::print("index '{}': {} blocks, {} in host memory, {} changes recorded for the event log\n", opts.segment_name,
             st.entries, config::format_byte_size(st.tier_bytes[tier_index(Tier::kHost)]), st.change_seq);
  (void)BlockIndex::destroy(opts.segment_name);
  return run_host_demo(cfg->namespaces.front(), prompt_for_turn(user_turns()));
}

}  // namespace

Runner add_demo_command(CLI::App& app) {
  app.add_subcommand("demo", "Key chains of a built-in multi-turn conversation, showing the shared prefix");
  return run_demo;
}

}  // namespace kvtier::cli
