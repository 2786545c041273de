#include "workload/trace.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

namespace kvtier::workload {
namespace {

// A field as an unsigned integer, or why not.
Result<uint64_t> unsigned_field(const nlohmann::json& j, const char* name) {
  const auto it = j.find(name);
  if (it == j.end()) return Status::invalid_argument(fmt::format("no '{}'", name));
  if (!it->is_number_unsigned())
    return Status::invalid_argument(fmt::format("'{}' is not a non-negative integer", name));
  return it->get<uint64_t>();
}

}  // namespace

Result<TraceRequest> parse_trace_line(std::string_view line) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::invalid_argument("not a JSON object");
  TraceRequest r;
  auto ts = unsigned_field(j, "timestamp");
  if (!ts.ok()) return ts.status();
  auto in = unsigned_field(j, "input_length");
  if (!in.ok()) return in.status();
  auto out = unsigned_field(j, "output_length");
  if (!out.ok()) return out.status();
  if (*in > UINT32_MAX || *out > UINT32_MAX) return Status::invalid_argument("a length is over 2^32 tokens");
  r.timestamp_ms = *ts;
  r.input_length = static_cast<uint32_t>(*in);
  r.output_length = static_cast<uint32_t>(*out);
  const auto ids = j.find("hash_ids");
  if (ids == j.end() || !ids->is_array()) return Status::invalid_argument("no 'hash_ids' list");
  r.hash_ids.reserve(ids->size());
  for (const auto& id : *ids) {
    if (!id.is_number_unsigned()) return Status::invalid_argument("'hash_ids' holds something other than ids");
    r.hash_ids.push_back(id.get<uint64_t>());
  }
  const uint64_t blocks = (uint64_t{r.input_length} + kTraceBlockTokens - 1) / kTraceBlockTokens;
  if (r.hash_ids.size() != blocks) {
    return Status::invalid_argument(fmt::format("{} hash_ids for {} input tokens ({} blocks of {})", r.hash_ids.size(),
                                                r.input_length, blocks, kTraceBlockTokens));
  }
  return r;
}

std::string format_trace_line(const TraceRequest& r) {
  return fmt::format(R"({{"timestamp": {}, "input_length": {}, "output_length": {}, "hash_ids": [{}]}})",
                     r.timestamp_ms, r.input_length, r.output_length, fmt::join(r.hash_ids, ", "));
}

Result<std::vector<TraceRequest>> read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found(fmt::format("trace {} cannot be read", path));
  std::vector<TraceRequest> out;
  std::string line;
  for (uint64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto r = parse_trace_line(line);
    if (!r.ok()) return Status::invalid_argument(fmt::format("{}:{}: {}", path, n, r.status().message()));
    out.push_back(std::move(r).value());
  }
  return out;
}

Status write_trace(const std::string& path, std::span<const TraceRequest> requests) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return Status::unavailable(fmt::format("trace {} cannot be written", path));
  for (const TraceRequest& r : requests) out << format_trace_line(r) << '\n';
  out.flush();
  if (!out) return Status::unavailable(fmt::format("writing trace {} failed (disk full?)", path));
  return {};
}

TraceStats trace_stats(std::span<const TraceRequest> requests) {
  TraceStats s;
  std::unordered_set<uint64_t> seen;
  for (const TraceRequest& r : requests) {
    ++s.requests;
    s.input_tokens += r.input_length;
    s.block_refs += r.hash_ids.size();
    bool prefix = true;  // every block so far was seen before
    for (size_t i = 0; i < r.hash_ids.size(); ++i) {
      prefix = prefix && seen.count(r.hash_ids[i]) != 0;
      if (prefix) {
        ++s.ideal_hit_blocks;
        s.ideal_hit_tokens += std::min<uint64_t>(kTraceBlockTokens, r.input_length - i * kTraceBlockTokens);
      }
    }
    for (uint64_t id : r.hash_ids) seen.insert(id);
  }
  s.unique_ids = seen.size();
  return s;
}

BlockKey trace_block_key(uint64_t hash_id) {
  const auto mix = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  };
  // Every bit as uniform as a digest's (the index's ghost cells are picked by the low bits); never
  // the all-zero key.
  const uint64_t hi = mix(hash_id), lo = mix(hash_id ^ 0x5DEECE66DULL);
  return {hi, hi == 0 && lo == 0 ? 1 : lo};
}

}  // namespace kvtier::workload
