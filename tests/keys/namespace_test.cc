#include "kvtier/namespace.h"

#include <gtest/gtest.h>

#include <set>

namespace kvtier {
namespace {

NamespaceSpec llama_8b() {
  NamespaceSpec s;
  s.model_id = "meta-llama/Llama-3.1-8B-Instruct";
  s.layout = {KvDType::kBFloat16, 16, 32, 8, 128, 2};
  return s;
}

void expect_invalid(const NamespaceSpec& spec, std::string_view fragment) {
  const auto ns = Namespace::create(spec);
  ASSERT_FALSE(ns.ok());
  EXPECT_EQ(ns.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ns.status().message().find(fragment), std::string::npos) << ns.status();
}

TEST(NamespaceTest, BytesPerBlockFollowsTheLayout) {
  // Llama-3.1-8B, bf16, 16 tokens: 2 × 32 layers × 8 heads × 128 dims × 16 tokens × 2 bytes = 2 MiB.
  EXPECT_EQ(llama_8b().layout.bytes_per_block(), 2u << 20);
  KvLayout mla{KvDType::kFloat8E4M3, 64, 61, 1, 576, 1};  // DeepSeek-style latent, fp8
  EXPECT_EQ(mla.bytes_per_block(), 61u * 576 * 64);
  EXPECT_EQ(Namespace::create(llama_8b())->bytes_per_block(), 2u << 20);
}

TEST(NamespaceTest, InvalidSpecsAreClearErrors) {
  auto s = llama_8b();
  s.model_id.clear();
  expect_invalid(s, "model_id must not be empty");

  s = llama_8b();
  s.cache_salt.assign(NamespaceSpec::kMaxIdBytes + 1, 'x');
  expect_invalid(s, "cache_salt");

  s = llama_8b();
  s.layout.block_tokens = 0;
  expect_invalid(s, "block_tokens");

  s = llama_8b();
  s.layout.head_dim = 0;
  expect_invalid(s, "head_dim");

  s = llama_8b();
  s.layout.kv_planes = 3;
  expect_invalid(s, "kv_planes");

  s = llama_8b();
  s.layout.dtype = static_cast<KvDType>(42);
  expect_invalid(s, "dtype");

  s = llama_8b();
  s.layout = {KvDType::kFloat32, 4096, 4096, 64, 128, 2};
  expect_invalid(s, "bytes per block");
}

TEST(NamespaceTest, EveryFieldChangesTheRoot) {
  using Mutation = void (*)(NamespaceSpec&);
  const Mutation one_field_changes[] = {
      [](NamespaceSpec&) {},  // the unchanged spec
      [](NamespaceSpec& s) { s.model_id += "-rev2"; },
      [](NamespaceSpec& s) { s.adapter_id = "lora-a"; },
      [](NamespaceSpec& s) { s.cache_salt = "tenant-a"; },
      [](NamespaceSpec& s) { s.layout.dtype = KvDType::kFloat16; },
      [](NamespaceSpec& s) { s.layout.block_tokens = 32; },
      [](NamespaceSpec& s) { s.layout.num_layers = 31; },
      [](NamespaceSpec& s) { s.layout.num_kv_heads = 4; },
      [](NamespaceSpec& s) { s.layout.head_dim = 64; },
      [](NamespaceSpec& s) { s.layout.kv_planes = 1; },
  };
  std::set<BlockKey> roots;
  for (Mutation change : one_field_changes) {
    NamespaceSpec s = llama_8b();
    change(s);
    roots.insert(Namespace::create(s)->root());
  }
  EXPECT_EQ(roots.size(), std::size(one_field_changes));
}

TEST(NamespaceTest, FieldsAreLengthPrefixedSoBoundariesCannotShift) {
  // Without length prefixes, ("ab", "c") and ("a", "bc") would encode alike.
  auto a = llama_8b();
  a.model_id = "ab";
  a.adapter_id = "c";
  auto b = llama_8b();
  b.model_id = "a";
  b.adapter_id = "bc";
  EXPECT_NE(Namespace::create(a)->root(), Namespace::create(b)->root());
}

TEST(NamespaceTest, RootIsDeterministic) {
  EXPECT_EQ(Namespace::create(llama_8b())->root(), Namespace::create(llama_8b())->root());
}

TEST(DTypeTest, NamesRoundTripAndEngineSpellingsParse) {
  for (KvDType d : {KvDType::kFloat16, KvDType::kBFloat16, KvDType::kFloat32, KvDType::kFloat8E4M3,
                    KvDType::kFloat8E5M2, KvDType::kInt8}) {
    EXPECT_EQ(*parse_dtype(dtype_name(d)), d);
    EXPECT_GT(dtype_bytes(d), 0u);
  }
  EXPECT_EQ(*parse_dtype("bfloat16"), KvDType::kBFloat16);
  EXPECT_EQ(*parse_dtype("fp8"), KvDType::kFloat8E4M3);
  EXPECT_EQ(parse_dtype("fp64").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvtier
