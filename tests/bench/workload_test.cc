// Traces in the Mooncake format and the synthetic workload: lines parse and print back, bad
// lines are refused with their line number, the real traces (when ../shared/traces is there)
// read with the figures SOURCE.md states, and the generator's output has the structure of a
// prefix-chain trace (dense ids, one position per id, growing conversations, disjoint tenants).
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "workload/synthetic_workload.h"
#include "workload/trace.h"

namespace kvtier::workload {
namespace {

TEST(Trace, LinesParseAndPrintBack) {
  const auto r = parse_trace_line(
      R"({"timestamp": 27482, "input_length": 1100, "output_length": 12, "hash_ids": [0, 47, 48], "extra": "x"})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->timestamp_ms, 27482U);
  EXPECT_EQ(r->input_length, 1100U);
  EXPECT_EQ(r->output_length, 12U);
  EXPECT_EQ(r->hash_ids, (std::vector<uint64_t>{0, 47, 48}));
  EXPECT_EQ(parse_trace_line(format_trace_line(*r)).value(), *r);
}

TEST(Trace, BadLinesAreRefusedWithTheirLineNumber) {
  EXPECT_NE(parse_trace_line("{").status().message().find("not a JSON object"), std::string::npos);
  EXPECT_NE(parse_trace_line(R"({"input_length": 1, "output_length": 1, "hash_ids": [0]})")
                .status()
                .message()
                .find("'timestamp'"),
            std::string::npos);
  EXPECT_NE(parse_trace_line(R"({"timestamp": -1, "input_length": 1, "output_length": 1, "hash_ids": [0]})")
                .status()
                .message()
                .find("non-negative"),
            std::string::npos);
  EXPECT_NE(parse_trace_line(R"({"timestamp": 0, "input_length": 513, "output_length": 1, "hash_ids": [0]})")
                .status()
                .message()
                .find("1 hash_ids for 513 input tokens (2 blocks"),
            std::string::npos);
  const std::string path = ::testing::TempDir() + "kvtier_trace_" + std::to_string(::getpid()) + ".jsonl";
  {
    std::ofstream f(path);
    f << R"({"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [0]})"
      << "\n\n"
      << R"({"timestamp": 1, "input_length": 10, "output_length": 1, "hash_ids": ["a"]})"
      << "\n";
  }
  const auto read = read_trace(path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find(path + ":3:"), std::string::npos) << read.status().to_string();
  EXPECT_EQ(read_trace(path + ".absent").status().code(), StatusCode::kNotFound);
  std::filesystem::remove(path);
}

// The index picks a block's ghost cell by the key's low bits: a trace's keys must be as uniform
// there as real (SHA-256) keys, or the study would run with half the index's memory of evictions.
TEST(Trace, BlockKeysAreUniformInEveryBit) {
  constexpr int kKeys = 20000;
  std::array<int, 128> ones{};
  std::set<std::pair<uint64_t, uint64_t>> seen;
  for (uint64_t id = 0; id < kKeys; ++id) {
    const BlockKey k = trace_block_key(id);
    ASSERT_FALSE(k.hi == 0 && k.lo == 0);
    seen.insert({k.hi, k.lo});
    for (int b = 0; b < 64; ++b) {
      ones[b] += static_cast<int>((k.hi >> b) & 1);
      ones[64 + b] += static_cast<int>((k.lo >> b) & 1);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kKeys));
  for (int b = 0; b < 128; ++b) EXPECT_NEAR(ones[b], kKeys / 2, kKeys / 20) << "bit " << b;
}

TEST(Trace, WritesAndReadsBack) {
  const std::vector<TraceRequest> rs = {{0, 600, 5, {0, 1}}, {10, 100, 7, {0}}};
  const std::string path = ::testing::TempDir() + "kvtier_trace_rw_" + std::to_string(::getpid()) + ".jsonl";
  ASSERT_TRUE(write_trace(path, rs).ok());
  EXPECT_EQ(read_trace(path).value(), rs);
  const TraceStats s = trace_stats(rs);
  EXPECT_EQ(s.block_refs, 3U);
  EXPECT_EQ(s.unique_ids, 2U);
  EXPECT_EQ(s.ideal_hit_blocks, 1U);  // block 0 again in the second request
  EXPECT_EQ(s.ideal_hit_tokens, 100U);
  std::filesystem::remove(path);
}

// The recorded traces, as ../shared/traces/SOURCE.md describes them.
TEST(Trace, MooncakeTracesReadWithTheirPublishedFigures) {
  const std::string dir = KVTIER_SHARED_TRACES;
  if (!std::filesystem::exists(dir + "/conversation_trace.jsonl")) GTEST_SKIP() << "no " << dir;
  const auto conv = read_trace(dir + "/conversation_trace.jsonl");
  ASSERT_TRUE(conv.ok()) << conv.status().to_string();
  const TraceStats c = trace_stats(*conv);
  EXPECT_EQ(c.requests, 12031U);
  EXPECT_EQ(c.block_refs, 288500U);
  EXPECT_EQ(c.unique_ids, 182790U);
  EXPECT_NEAR(c.ideal_block_hit(), 0.366, 0.0005);
  EXPECT_NEAR(c.ideal_token_hit(), 0.374, 0.0005);
  const auto synth = read_trace(dir + "/synthetic_trace.jsonl");
  ASSERT_TRUE(synth.ok()) << synth.status().to_string();
  const TraceStats s = trace_stats(*synth);
  EXPECT_EQ(s.requests, 3993U);
  EXPECT_EQ(s.unique_ids, 43924U);
  EXPECT_NEAR(s.ideal_block_hit(), 0.640, 0.0005);
}

TEST(SyntheticWorkload, IsAPrefixChainTraceAndDeterministic) {
  SyntheticOptions o;
  o.requests = 3000;
  const auto a = generate_synthetic_workload(o);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_EQ(a->size(), 3000U);
  EXPECT_EQ(generate_synthetic_workload(o).value(), *a) << "the seed decides everything";
  o.seed = 2;
  EXPECT_NE(generate_synthetic_workload(o).value(), *a);

  std::map<uint64_t, std::pair<size_t, uint64_t>> where;  // id → (position, parent)
  uint64_t next_new = 0, last_ts = 0;
  for (const TraceRequest& r : *a) {
    ASSERT_GE(r.timestamp_ms, last_ts) << "ordered by time";
    last_ts = r.timestamp_ms;
    ASSERT_EQ(r.hash_ids.size(), (r.input_length + kTraceBlockTokens - 1) / kTraceBlockTokens);
    ASSERT_GT(r.output_length, 0U);
    for (size_t i = 0; i < r.hash_ids.size(); ++i) {
      const uint64_t parent = i == 0 ? UINT64_MAX : r.hash_ids[i - 1];
      auto [it, fresh] = where.try_emplace(r.hash_ids[i], i, parent);
      if (fresh) {
        ASSERT_EQ(r.hash_ids[i], next_new++) << "ids are dense, in first-seen order";
      } else {
        ASSERT_EQ(it->second, std::make_pair(i, parent)) << "an id names one block at one position after one parent";
      }
    }
  }
  // Reuse comes from shared system prompts, growing conversations and agent loops: well above
  // none, below the recorded synthetic trace's 0.64 (this one has more distinct sessions).
  const TraceStats s = trace_stats(*a);
  EXPECT_GT(s.ideal_block_hit(), 0.3);
  EXPECT_LT(s.ideal_block_hit(), 0.95);
}

TEST(SyntheticWorkload, TenantsShareNothing) {
  SyntheticOptions o;
  o.requests = 2000;
  o.tenants = 2;
  o.system_prompts_per_tenant = 1;
  o.agent_share = 0;
  const auto a = generate_synthetic_workload(o).value();
  // Every session starts from its tenant's one system prompt: exactly two distinct first blocks.
  std::set<uint64_t> first;
  for (const TraceRequest& r : a) first.insert(r.hash_ids[0]);
  EXPECT_EQ(first.size(), 2U);
}

// Each family is the reuse its name says: RAG reuses popular documents only when they open the
// prompt, batch prompts are never sent again, chats and agents resend their whole context.
TEST(SyntheticWorkload, FamiliesHaveTheirOwnReuse) {
  std::map<std::string, double> ideal;
  for (std::string_view family : kSyntheticFamilies) {
    SyntheticOptions base;
    base.requests = 1500;
    auto o = synthetic_family(family, base);
    ASSERT_TRUE(o.ok()) << o.status().to_string();
    EXPECT_EQ(o->requests, 1500U) << "a preset keeps the size asked for";
    const auto trace = generate_synthetic_workload(*o);
    ASSERT_TRUE(trace.ok()) << family << ": " << trace.status().to_string();
    ASSERT_EQ(trace->size(), 1500U) << family;
    ideal[std::string(family)] = trace_stats(*trace).ideal_block_hit();
  }
  EXPECT_EQ(ideal["batch"], 0.0) << "a batch prompt is never sent again";
  EXPECT_GT(ideal["agent"], ideal["chat"]) << "agent steps seconds apart resend more context than chat turns";
  EXPECT_GT(ideal["rag"], 0.05);
  EXPECT_LT(ideal["rag"], ideal["chat"]) << "documents are shared only where they open the prompt in the same order";
  EXPECT_GT(ideal["tenants"], ideal["batch"]);
  EXPECT_LT(ideal["tenants"], ideal["agent"]) << "a fifth of the tenants' sessions are batch prompts";
  EXPECT_EQ(synthetic_family("nonsense").status().code(), StatusCode::kInvalidArgument);
}

TEST(SyntheticWorkload, RagQuestionsFollowDocumentPopularity) {
  SyntheticOptions o = synthetic_family("rag").value();
  o.requests = 2000;
  o.tenants = 1;
  o.system_prompts_per_tenant = 1;
  o.rag_chunks = 1;
  const auto trace = generate_synthetic_workload(o).value();
  // One system prompt (about 1200 tokens, two or three blocks) and one chunk: block 3 lies in the
  // chunk, so its id names the prompt and the document together. The most popular document takes a
  // share near the Zipf law's: with 2000 documents and s = 1, about 12%.
  std::map<uint64_t, int> opened;
  for (const TraceRequest& r : trace) {
    if (r.hash_ids.size() > 3) ++opened[r.hash_ids[3]];
  }
  int top = 0;
  for (const auto& [id, n] : opened) top = std::max(top, n);
  EXPECT_GT(top, 100);
  EXPECT_LT(top, 500);
}

TEST(SyntheticWorkload, BadOptionsAreRefused) {
  SyntheticOptions o;
  o.requests = 0;
  EXPECT_EQ(generate_synthetic_workload(o).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.agent_share = 1.5;
  EXPECT_EQ(generate_synthetic_workload(o).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.agent_share = 0.6;
  o.rag_share = 0.6;  // with the chats, more than every session
  EXPECT_EQ(generate_synthetic_workload(o).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.rag_share = 0.5;
  o.rag_documents = 0;
  EXPECT_EQ(generate_synthetic_workload(o).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.max_input_tokens = 100;
  EXPECT_EQ(generate_synthetic_workload(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvtier::workload
