// A synthetic workload in the trace format (trace.h), so the demo and the benchmarks run without
// a downloaded trace. It has the reuse structure real serving traffic has:
//   - tenants, each with a few system prompts its sessions start from (shared across sessions,
//     never across tenants: a tenant's salt makes its keys its own);
//   - chat sessions whose context grows turn by turn (system prompt, then every earlier user
//     message and answer, then the new message), with minutes of think time between turns;
//   - agent loops: a long tool-laden system prompt and a task, then steps seconds apart, each
//     appending a tool call and its result and sending the whole context again;
//   - RAG questions: the tenant's system prompt, a few chunks of documents drawn from a pool by
//     popularity (Zipf), then the question; one turn each;
//   - batch prompts: one long prompt of its own, never sent again (offline summarisation, evals).
// Sessions start as a Poisson process; everything follows from the seed. Each family alone, or
// the tenants mix, is a named preset (synthetic_family).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvtier/result.h"
#include "workload/trace.h"

namespace kvtier::workload {

struct SyntheticOptions {
  uint64_t seed = 1;
  uint32_t requests = 4000;  // requests generated (sessions are started until there are this many)
  uint32_t tenants = 4;
  uint32_t system_prompts_per_tenant = 3;
  double sessions_per_s = 1.0;  // session starts (Poisson)
  double agent_share = 0.3;     // of sessions, the agent loops
  double rag_share = 0;         // of sessions, RAG questions
  double batch_share = 0;       // of sessions, batch prompts
  // Chat sessions.
  double chat_turns_mean = 5;          // geometric
  double chat_think_s_mean = 60;       // between a reply and the next message (exponential)
  uint32_t chat_message_tokens = 300;  // mean user message
  uint32_t chat_answer_tokens = 350;   // mean answer
  // Agent loops.
  double agent_steps_mean = 8;
  double agent_step_s_mean = 4;
  uint32_t agent_tool_tokens = 900;  // mean tool call + result appended per step
  // RAG questions.
  uint32_t rag_documents = 2000;     // the pool
  double rag_zipf = 1.0;             // document popularity: the k-th most popular ∝ 1/k^s
  uint32_t rag_chunks = 4;           // chunks per question, each a whole document's chunk
  uint32_t rag_chunk_tokens = 1024;  // mean chunk
  uint32_t rag_question_tokens = 60;
  // Batch prompts.
  uint32_t batch_prompt_tokens = 6000;  // mean
  uint32_t max_input_tokens = 128 * 1024;

  Status validate() const;
};

// The named presets: "mixed" (the defaults: chat and agents), "chat", "agent", "shared-prompts"
// (one-turn chats over a few system prompts), "rag", "batch", "tenants" (16 tenants of every
// family, batch among them). invalid_argument names them for any other name.
Result<SyntheticOptions> synthetic_family(std::string_view family, SyntheticOptions base = {});
inline constexpr std::string_view kSyntheticFamilies[] = {"mixed", "chat",  "agent",  "shared-prompts",
                                                          "rag",   "batch", "tenants"};

// Requests ordered by timestamp; ids dense from 0 in first-seen order, as the Mooncake traces.
Result<std::vector<TraceRequest>> generate_synthetic_workload(const SyntheticOptions& options);

// What a trace-driven command runs on: the trace at `path`, or (empty path) the synthetic
// workload of `synthetic`, with a description of where it came from.
struct Workload {
  std::vector<TraceRequest> requests;
  std::string source;
};
Result<Workload> load_workload(const std::string& path, const SyntheticOptions& synthetic = {});

}  // namespace kvtier::workload
