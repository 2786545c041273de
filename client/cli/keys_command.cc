// `kvtier keys`: compute a namespace root and key chain from the command line, or with
// --profile the block hashes a peer engine computes (kvtier/key_profile.h).
//
// A scheduler written in another language reproduces docs/keys.md and checks itself against
// this output (or the golden vectors in tests/keys).
#include <fmt/format.h>

#include <charconv>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "kvtier/key_profile.h"
#include "kvtier/prefix_chain.h"

namespace kvtier::cli {
namespace {

struct KeysOptions {
  NamespaceSpec spec;
  std::string dtype = "bf16";
  std::string tokens;  // comma- or space-separated; "-" reads standard input
  std::string profile = "kvtier";
  std::string hash_seed;
  std::string lora_name;
  std::string lora_path;
  bool json = false;
};

Result<std::vector<TokenId>> parse_tokens(const std::string& text) {
  std::vector<TokenId> out;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    if (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
      ++p;
      continue;
    }
    uint64_t v = 0;
    const auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || v > UINT32_MAX) {
      return Status::invalid_argument(
          fmt::format("token list: '{}' is not a uint32 token id", std::string(p, std::min<size_t>(end - p, 16))));
    }
    out.push_back(static_cast<TokenId>(v));
    p = next;
  }
  return out;
}

// A peer profile's hashes: the 64-bit form engines report, and vLLM's full digests.
int run_profile_keys(const KeysOptions& opt, KeyProfileKind kind, const std::vector<TokenId>& tokens) {
  KeyProfile p;
  p.kind = kind;
  p.block_tokens = opt.spec.layout.block_tokens;
  p.hash_seed = opt.hash_seed;
  p.lora_name = opt.lora_name;
  p.lora_path = opt.lora_path;
  p.cache_salt = opt.spec.cache_salt;
  p.model_name = opt.spec.model_id;
  if (Status s = p.validate(); !s.ok()) {
    fmt::print(stderr, "kvtier keys: {}\n", s.to_string());
    return 2;
  }
  const std::vector<uint64_t> hashes = engine_block_hashes(p, tokens);
  std::vector<std::string> digests;
  if (kind == KeyProfileKind::kVllmSha256Cbor) {
    for (const auto& d : vllm_block_digests(p, tokens)) {
      std::string h;
      for (const uint8_t b : d) h += fmt::format("{:02x}", b);
      digests.push_back(std::move(h));
    }
  }
  // Dynamo: the per-block hashes its router matches prompts by, beside the chained ones.
  const std::vector<uint64_t> blocks =
      kind == KeyProfileKind::kDynamoXxh3 ? dynamo_block_hashes(p, tokens) : std::vector<uint64_t>{};
  if (opt.json) {
    const auto join = [](const std::vector<uint64_t>& v) {
      std::string out;
      for (size_t i = 0; i < v.size(); ++i) out += fmt::format("{}{}", i ? "," : "", v[i]);
      return out;
    };
    std::string dlist;
    for (size_t i = 0; i < digests.size(); ++i) dlist += fmt::format("{}\"{}\"", i ? "," : "", digests[i]);
    fmt::print(R"({{"profile":"{}","tokens":{},"block_tokens":{},"hashes":[{}],"digests":[{}],"block_hashes":[{}]}})"
               "\n",
               key_profile_name(kind), tokens.size(), p.block_tokens, join(hashes), dlist, join(blocks));
    return 0;
  }
  for (size_t i = 0; i < hashes.size(); ++i) {
    fmt::print("{:>5} {:>20}  0x{:016x}{}{}\n", i, hashes[i], hashes[i], digests.empty() ? "" : "  ",
               digests.empty() ? "" : digests[i]);
  }
  return 0;
}

int run_keys(const KeysOptions& opt) {
  std::string text = opt.tokens;
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  auto tokens = parse_tokens(text);
  auto profile = parse_key_profile(opt.profile);
  if (!profile.ok()) {
    fmt::print(stderr, "kvtier keys: {}\n", profile.status().to_string());
    return 2;
  }
  if (tokens.ok() && *profile != KeyProfileKind::kKvtier) return run_profile_keys(opt, *profile, *tokens);
  auto dtype = parse_dtype(opt.dtype);
  if (!tokens.ok() || !dtype.ok()) {
    fmt::print(stderr, "kvtier keys: {}\n", (tokens.ok() ? dtype.status() : tokens.status()).to_string());
    return 2;
  }
  NamespaceSpec spec = opt.spec;
  spec.layout.dtype = *dtype;
  auto ns = Namespace::create(spec);
  if (!ns.ok()) {
    fmt::print(stderr, "kvtier keys: {}\n", ns.status().to_string());
    return 2;
  }
  const std::vector<BlockKey> keys = compute_chain(*ns, *tokens);
  if (opt.json) {
    std::string list;
    for (size_t i = 0; i < keys.size(); ++i) list += fmt::format("{}\"{}\"", i ? "," : "", keys[i].to_hex());
    fmt::print("{{\"format_version\":{},\"root\":\"{}\",\"tokens\":{},\"block_tokens\":{},\"keys\":[{}]}}\n",
               kKeyFormatVersion, ns->root().to_hex(), tokens->size(), ns->block_tokens(), list);
    return 0;
  }
  fmt::print("root {}\n", ns->root().to_hex());
  for (size_t i = 0; i < keys.size(); ++i) fmt::print("{:>5} {}\n", i, keys[i].to_hex());
  const size_t tail = tokens->size() % ns->block_tokens();
  if (tail != 0) fmt::print("({} trailing tokens form no full block and get no key)\n", tail);
  return 0;
}

}  // namespace

Runner add_keys_command(CLI::App& app) {
  auto opt = std::make_shared<KeysOptions>();
  // Defaults are the embedded default namespace's layout.
  opt->spec.model_id = "kvtier-demo/llama-3.2-1b";
  opt->spec.layout.num_layers = 16;
  opt->spec.layout.num_kv_heads = 8;
  opt->spec.layout.head_dim = 64;
  auto* cmd = app.add_subcommand("keys", "Namespace root and key chain of a token array (docs/keys.md)");
  cmd->add_option("--model", opt->spec.model_id, "Model id")->capture_default_str();
  cmd->add_option("--adapter", opt->spec.adapter_id, "LoRA adapter id (empty: base model)");
  cmd->add_option("--salt", opt->spec.cache_salt, "Tenant cache_salt (vLLM profile: its cache_salt extra key)");
  cmd->add_option("--dtype", opt->dtype, "KV dtype: fp16 bf16 fp32 fp8_e4m3 fp8_e5m2 int8")->capture_default_str();
  cmd->add_option("--block-tokens", opt->spec.layout.block_tokens, "Tokens per block")->capture_default_str();
  cmd->add_option("--layers", opt->spec.layout.num_layers, "Layers")->capture_default_str();
  cmd->add_option("--kv-heads", opt->spec.layout.num_kv_heads, "KV heads")->capture_default_str();
  cmd->add_option("--head-dim", opt->spec.layout.head_dim, "Head dimension")->capture_default_str();
  cmd->add_option("--kv-planes", opt->spec.layout.kv_planes, "2: K and V; 1: MLA latent")->capture_default_str();
  cmd->add_option("--tokens", opt->tokens, "Token ids, comma or space separated; '-' reads stdin")->required();
  cmd->add_option("--profile", opt->profile,
                  "Key profile: kvtier, or a peer's block hash: vllm_sha256_cbor, llmd_fnv64_cbor, dynamo_xxh3")
      ->capture_default_str();
  cmd->add_option("--hash-seed", opt->hash_seed, "vLLM's PYTHONHASHSEED / llm-d's hash seed (peer profiles)");
  cmd->add_option("--lora-name", opt->lora_name,
                  "the LoRA name: a vLLM extra key, llm-d's root name, part of Dynamo's seed");
  cmd->add_option("--lora-path", opt->lora_path, "the LoRA adapter's path, which vLLM hashes with its name");
  cmd->add_flag("--json", opt->json, "Print one JSON object");
  return [opt] { return run_keys(*opt); };
}

}  // namespace kvtier::cli
