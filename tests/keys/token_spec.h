// The token-list notation of the key test vectors (golden_vectors.tsv, profile_vectors.tsv), as
// key_reference.expand_tokens reads it: 'a,b,c' | 'seq:N' = 0..N-1 | 'lcg:SEED:N' | '' = none.
#pragma once

#include <string>
#include <vector>

#include "kvtier/prefix_chain.h"

namespace kvtier::testing {

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

inline std::vector<TokenId> expand_tokens(const std::string& spec) {
  std::vector<TokenId> out;
  if (spec.empty()) return out;
  if (spec.rfind("seq:", 0) == 0) {
    const uint32_t n = std::stoul(spec.substr(4));
    for (uint32_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  if (spec.rfind("lcg:", 0) == 0) {
    const auto parts = split(spec, ':');
    uint32_t x = std::stoul(parts[1]);
    const uint32_t n = std::stoul(parts[2]);
    for (uint32_t i = 0; i < n; ++i) {
      x = x * 1664525U + 1013904223U;
      out.push_back(x);
    }
    return out;
  }
  for (const auto& t : split(spec, ',')) out.push_back(static_cast<TokenId>(std::stoul(t)));
  return out;
}

}  // namespace kvtier::testing
