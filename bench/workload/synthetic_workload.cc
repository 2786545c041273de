#include "workload/synthetic_workload.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_map>

namespace kvtier::workload {
namespace {

// A run of tokens of one origin: a system prompt, a message, an answer, a tool result. Tokens
// are never materialised: a block's content is named by the pieces of segments it covers.
struct Segment {
  uint64_t uid = 0;  // unique per origin (a shared system prompt has one uid for every session)
  uint32_t tokens = 0;
};

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  return h * 0xFF51AFD7ED558CCDULL;
}

// Assigns prefix-chain ids: (parent id, block content) → a dense id in first-seen order.
class ChainIds {
 public:
  std::vector<uint64_t> ids(const std::vector<Segment>& context, uint32_t total_tokens) {
    std::vector<uint64_t> out;
    uint64_t parent = UINT64_MAX;
    uint64_t content = 0;
    uint32_t in_block = 0;
    const auto close_block = [&] {
      const uint64_t key = mix(mix(parent, content), in_block);
      auto [it, fresh] = ids_.try_emplace(key, next_);
      if (fresh) ++next_;
      parent = it->second;
      out.push_back(parent);
      content = 0;
      in_block = 0;
    };
    uint32_t done = 0;
    for (const Segment& s : context) {
      uint32_t offset = 0;
      while (offset < s.tokens && done < total_tokens) {
        const uint32_t take = std::min({s.tokens - offset, kTraceBlockTokens - in_block, total_tokens - done});
        content = mix(mix(mix(content, s.uid), offset), take);
        offset += take;
        in_block += take;
        done += take;
        if (in_block == kTraceBlockTokens) close_block();
      }
    }
    if (in_block > 0) close_block();
    return out;
  }

 private:
  std::unordered_map<uint64_t, uint64_t> ids_;
  uint64_t next_ = 0;
};

struct Timed {
  double t_s = 0;
  uint64_t order = 0;  // generation order: ties keep it
  std::vector<Segment> context;
  uint32_t input = 0;
  uint32_t output = 0;
};

}  // namespace

Status SyntheticOptions::validate() const {
  if (requests == 0 || requests > 10'000'000) return Status::invalid_argument("requests must be 1..10000000");
  if (tenants == 0 || tenants > 100'000) return Status::invalid_argument("tenants must be 1..100000");
  if (system_prompts_per_tenant == 0) return Status::invalid_argument("system_prompts_per_tenant must be positive");
  if (!(sessions_per_s > 0)) return Status::invalid_argument("sessions_per_s must be positive");
  for (double share : {agent_share, rag_share, batch_share}) {
    if (!(share >= 0 && share <= 1)) return Status::invalid_argument("session shares must be in [0, 1]");
  }
  if (agent_share + rag_share + batch_share > 1 + 1e-9) {
    return Status::invalid_argument("agent_share + rag_share + batch_share must be at most 1 (chats are the rest)");
  }
  if (rag_share > 0 && (rag_documents == 0 || rag_chunks == 0 || !(rag_zipf >= 0))) {
    return Status::invalid_argument("RAG questions need rag_documents and rag_chunks positive, rag_zipf >= 0");
  }
  if (!(chat_turns_mean >= 1) || !(agent_steps_mean >= 1)) {
    return Status::invalid_argument("chat_turns_mean and agent_steps_mean must be at least 1");
  }
  if (max_input_tokens < kTraceBlockTokens) {
    return Status::invalid_argument(fmt::format("max_input_tokens must be at least {}", kTraceBlockTokens));
  }
  return {};
}

Result<std::vector<TraceRequest>> generate_synthetic_workload(const SyntheticOptions& o) {
  KVTIER_RETURN_IF_ERROR(o.validate());
  std::mt19937_64 rng(o.seed);
  uint64_t next_uid = 1;
  // Lengths vary around their means (a log-normal with σ 0.6: mostly near, sometimes several times).
  const auto around = [&](uint32_t mean) {
    std::lognormal_distribution<double> d(std::log(double(mean)) - 0.18, 0.6);
    return std::max<uint32_t>(1, static_cast<uint32_t>(d(rng)));
  };
  std::vector<std::vector<Segment>> system_prompts(o.tenants);  // per tenant; agents use the last
  for (uint32_t t = 0; t < o.tenants; ++t) {
    for (uint32_t p = 0; p < o.system_prompts_per_tenant; ++p) system_prompts[t].push_back({next_uid++, around(1200)});
    system_prompts[t].push_back({next_uid++, around(4000)});  // the agents' tool definitions
  }
  // The RAG pool: each document one chunk of its own length; popularity by rank, Zipf.
  std::vector<Segment> documents;
  std::vector<double> popularity;  // cumulative
  if (o.rag_share > 0) {
    double sum = 0;
    for (uint32_t d = 0; d < o.rag_documents; ++d) {
      documents.push_back({next_uid++, around(o.rag_chunk_tokens)});
      sum += 1.0 / std::pow(double(d + 1), o.rag_zipf);
      popularity.push_back(sum);
    }
  }
  std::exponential_distribution<double> session_gap(o.sessions_per_s);
  std::uniform_real_distribution<double> unit(0, 1);
  const auto popular_document = [&] {
    const double u = unit(rng) * popularity.back();
    return documents[std::lower_bound(popularity.begin(), popularity.end(), u) - popularity.begin()];
  };
  std::vector<Timed> out;
  double start = 0;
  uint64_t order = 0;
  while (out.size() < o.requests) {
    start += session_gap(rng);
    const auto tenant = static_cast<uint32_t>(rng() % o.tenants);
    const double kind = unit(rng);
    const bool agent = kind < o.agent_share;
    const bool rag = !agent && kind < o.agent_share + o.rag_share;
    const bool batch = !agent && !rag && kind < o.agent_share + o.rag_share + o.batch_share;
    std::vector<Segment> context;
    uint32_t tokens = 0;
    const auto append = [&](uint32_t n) {
      context.push_back({next_uid++, n});
      tokens += n;
    };
    double t = start;
    if (rag) {
      context.push_back(system_prompts[tenant][rng() % o.system_prompts_per_tenant]);
      tokens = context.back().tokens;
      for (uint32_t c = 0; c < o.rag_chunks; ++c) {
        context.push_back(popular_document());
        tokens += context.back().tokens;
      }
      append(around(o.rag_question_tokens));
      out.push_back({t, order++, context, std::min(tokens, o.max_input_tokens), around(250)});
    } else if (batch) {
      append(around(o.batch_prompt_tokens));
      out.push_back({t, order++, context, std::min(tokens, o.max_input_tokens), around(200)});
    } else if (agent) {
      context.push_back(system_prompts[tenant].back());
      tokens = context.back().tokens;
      append(around(400));  // the task
      std::geometric_distribution<uint32_t> steps(1.0 / o.agent_steps_mean);
      std::exponential_distribution<double> gap(1.0 / o.agent_step_s_mean);
      for (uint32_t s = 0, n = steps(rng) + 1; s < n && out.size() < o.requests && tokens < o.max_input_tokens; ++s) {
        const uint32_t call = around(120);
        out.push_back({t, order++, context, std::min(tokens, o.max_input_tokens), call});
        append(call);                             // the model's tool call
        append(around(o.agent_tool_tokens) + 1);  // and what the tool returned
        t += gap(rng);
      }
    } else {
      context.push_back(system_prompts[tenant][rng() % o.system_prompts_per_tenant]);
      tokens = context.back().tokens;
      std::geometric_distribution<uint32_t> turns(1.0 / o.chat_turns_mean);
      std::exponential_distribution<double> think(1.0 / o.chat_think_s_mean);
      for (uint32_t k = 0, n = turns(rng) + 1; k < n && out.size() < o.requests && tokens < o.max_input_tokens; ++k) {
        append(around(o.chat_message_tokens));
        const uint32_t answer = around(o.chat_answer_tokens);
        out.push_back({t, order++, context, std::min(tokens, o.max_input_tokens), answer});
        append(answer);
        t += think(rng) + answer / 50.0;  // the answer streams at ~50 tokens/s
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Timed& a, const Timed& b) { return a.t_s != b.t_s ? a.t_s < b.t_s : a.order < b.order; });
  out.resize(o.requests);
  // Ids in arrival order, as the recorded traces number them.
  ChainIds chain;
  std::vector<TraceRequest> trace;
  trace.reserve(out.size());
  for (const Timed& r : out) {
    trace.push_back(
        {static_cast<uint64_t>(std::llround(r.t_s * 1000)), r.input, r.output, chain.ids(r.context, r.input)});
  }
  return trace;
}

Result<SyntheticOptions> synthetic_family(std::string_view family, SyntheticOptions o) {
  if (family == "mixed") return o;
  o.agent_share = o.rag_share = o.batch_share = 0;
  if (family == "chat") return o;
  if (family == "agent") {
    o.agent_share = 1;
  } else if (family == "shared-prompts") {
    o.chat_turns_mean = 1;  // every session one question over one of its tenant's system prompts
  } else if (family == "rag") {
    o.rag_share = 1;
  } else if (family == "batch") {
    o.batch_share = 1;
  } else if (family == "tenants") {
    o.tenants = 16;
    o.agent_share = 0.2;
    o.rag_share = 0.2;
    o.batch_share = 0.2;
  } else {
    std::string names;
    for (std::string_view f : kSyntheticFamilies) names += fmt::format("{}{}", names.empty() ? "" : ", ", f);
    return Status::invalid_argument(fmt::format("unknown workload family '{}' (expected {})", family, names));
  }
  return o;
}

Result<Workload> load_workload(const std::string& path, const SyntheticOptions& synthetic) {
  if (!path.empty()) {
    auto read = read_trace(path);
    if (!read.ok()) return read.status();
    return Workload{std::move(read).value(), path};
  }
  auto made = generate_synthetic_workload(synthetic);
  if (!made.ok()) return made.status();
  return Workload{std::move(made).value(), fmt::format("the built-in synthetic workload (seed {}, {} tenants)",
                                                       synthetic.seed, synthetic.tenants)};
}

}  // namespace kvtier::workload
