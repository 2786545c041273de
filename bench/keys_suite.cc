// `kvtier-bench keys`: how fast prompts become key chains.
//
// Every request's tokens are hashed once on the engine's (or router's) critical path, so the
// chain must cost far less than moving the same bytes. The headline is vLLM's default block of
// 16 tokens, the worst case: the most hash calls per byte. Baseline: memcpy of the same token
// bytes, in the same run.
#include <fmt/format.h>

#include <cstring>
#include <random>
#include <vector>

#include "bench_report.h"
#include "bench_timer.h"
#include "kvtier/prefix_chain.h"
#include "suites.h"

namespace kvtier::bench {
namespace {

constexpr size_t kPromptTokens = 32768;  // a long prompt; 128 KiB of token bytes stays in L2
constexpr uint32_t kHeadlineBlockTokens = 16;
constexpr double kTargetGBytesPerS = 1.0;

struct KeysFigures {
  uint32_t block_tokens = 0;
  double gbytes_per_s = 0;
  double keys_per_s = 0;
  double memcpy_gbytes_per_s = 0;
  double vs_memcpy() const { return memcpy_gbytes_per_s > 0 ? gbytes_per_s / memcpy_gbytes_per_s : 0; }
};

KeysFigures measure(uint32_t block_tokens, const std::vector<TokenId>& tokens, const SuiteOptions& opt) {
  NamespaceSpec spec;
  spec.model_id = "bench/model";
  spec.layout = {KvDType::kBFloat16, block_tokens, 32, 8, 128, 2};
  const Namespace ns = Namespace::create(spec).value();
  std::vector<BlockKey> keys(full_blocks(tokens.size(), block_tokens));
  const size_t bytes = tokens.size() * sizeof(TokenId);
  std::vector<uint8_t> dst(bytes);

  const auto chain = [&](uint64_t iterations) {
    for (uint64_t i = 0; i < iterations; ++i) {
      compute_chain(ns, tokens, keys);
      do_not_optimize(keys.back());
    }
  };
  const auto copy = [&](uint64_t iterations) {
    for (uint64_t i = 0; i < iterations; ++i) {
      std::memcpy(dst.data(), tokens.data(), bytes);
      clobber_memory();
    }
  };
  const PairedRates r = best_paired_rates(chain, copy, opt.quick ? 3 : 7, opt.quick ? 0.04 : 0.2);
  KeysFigures f;
  f.block_tokens = block_tokens;
  f.gbytes_per_s = r.subject * static_cast<double>(bytes) / 1e9;
  f.keys_per_s = r.subject * static_cast<double>(keys.size());
  f.memcpy_gbytes_per_s = r.baseline * static_cast<double>(bytes) / 1e9;
  return f;
}

}  // namespace

int run_keys_suite(const SuiteOptions& opt) {
  std::mt19937 rng(20261121);
  std::uniform_int_distribution<TokenId> vocab(0, 151935);  // a large modern vocabulary
  std::vector<TokenId> tokens(kPromptTokens);
  for (auto& t : tokens) t = vocab(rng);

  std::vector<KeysFigures> all;
  for (uint32_t b : {kHeadlineBlockTokens, 64u, 256u, 512u}) all.push_back(measure(b, tokens, opt));

  Table table({"block_tokens", "chain GB/s", "keys/s", "memcpy GB/s", "vs_memcpy"});
  for (const auto& f : all) {
    table.add_row({std::to_string(f.block_tokens), fixed(f.gbytes_per_s, 2), fmt::format("{:.3g}", f.keys_per_s),
                   fixed(f.memcpy_gbytes_per_s, 2), fixed(f.vs_memcpy(), 3)});
  }
  fmt::print("kvtier-bench keys: XXH3-128 prefix chains over a {}-token prompt, one core{}\n", kPromptTokens,
             opt.quick ? " (quick)" : "");
  fmt::print("{}", table.render());
  const KeysFigures& head = all.front();
  fmt::print("headline (block_tokens={}): {} GB/s of token bytes, target >= {} GB/s: {}\n", head.block_tokens,
             fixed(head.gbytes_per_s, 2), kTargetGBytesPerS, head.gbytes_per_s >= kTargetGBytesPerS ? "met" : "MISSED");

  if (opt.json) {
    JsonObject by_block;
    for (const auto& f : all) by_block.add(std::to_string(f.block_tokens), f.gbytes_per_s);
    JsonObject j;
    j.add("suite", "keys")
        .add("block_tokens", static_cast<long long>(head.block_tokens))
        .add("gbytes_per_s", head.gbytes_per_s)
        .add("vs_memcpy", head.vs_memcpy())
        .add("memcpy_gbytes_per_s", head.memcpy_gbytes_per_s)
        .add("keys_per_s", head.keys_per_s)
        .add_raw("gbytes_per_s_by_block_tokens", by_block.str())
        .add("target_gbytes_per_s", kTargetGBytesPerS)
        .add("target_met", head.gbytes_per_s >= kTargetGBytesPerS)
        .add("quick", opt.quick);
    fmt::print("{}\n", j.str());
  }
  return 0;
}

}  // namespace kvtier::bench
