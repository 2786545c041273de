// The names of a node's shared-memory segments, which the daemon creates and engines attach:
// <shm_prefix>-<node>-{index,host,loads,tokens}. One spelling for both sides.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace kvtier {

inline std::string node_index_segment(std::string_view prefix, std::string_view node) {
  return fmt::format("{}-{}-index", prefix, node);
}
inline std::string node_host_segment(std::string_view prefix, std::string_view node) {
  return fmt::format("{}-{}-host", prefix, node);
}
inline std::string node_loads_segment(std::string_view prefix, std::string_view node) {
  return fmt::format("{}-{}-loads", prefix, node);
}
// Only while the daemon publishes vLLM-format events (src/events/token_ring.h).
inline std::string node_tokens_segment(std::string_view prefix, std::string_view node) {
  return fmt::format("{}-{}-tokens", prefix, node);
}

}  // namespace kvtier
