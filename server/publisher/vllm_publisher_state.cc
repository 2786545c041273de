#include "server/publisher/vllm_publisher_state.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace kvtier::publisher {
namespace {

// [magic, pod count, (length, pod)…, block count, (key hi, key lo, parent lo, ns, tiers, token
// count, tokens…)…, magic], little-endian.
constexpr char kStateMagic[8] = {'K', 'V', 'T', 'V', 'P', 'U', 'B', '2'};

}  // namespace

bool write_publisher_state(const std::string& path, const PublisherState& state) {
  std::string out(kStateMagic, sizeof(kStateMagic));
  const auto put = [&out](const auto& v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  put(static_cast<uint32_t>(state.pods.size()));
  for (const std::string& p : state.pods) {
    put(static_cast<uint32_t>(p.size()));
    out += p;
  }
  put(static_cast<uint64_t>(state.blocks.size()));
  for (const auto& [key, b] : state.blocks) {
    put(key.hi);
    put(key.lo);
    put(b.parent_lo);
    put(b.ns);
    put(b.tiers);
    put(static_cast<uint32_t>(b.tokens.size()));
    out.append(reinterpret_cast<const char*>(b.tokens.data()), b.tokens.size() * sizeof(TokenId));
  }
  out.append(kStateMagic, sizeof(kStateMagic));
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::filesystem::remove(tmp, ec);
    return false;
  }
  return true;
}

std::optional<PublisherState> read_publisher_state(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  const std::string in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  f.close();
  std::error_code ec;
  std::filesystem::remove(path, ec);  // one use only
  size_t at = 0;
  const auto get = [&](auto& v) {
    if (in.size() - at < sizeof(v)) return false;
    std::memcpy(&v, in.data() + at, sizeof(v));
    at += sizeof(v);
    return true;
  };
  const auto bad = [&]() -> std::optional<PublisherState> {
    spdlog::warn("kvtierd: vLLM publisher: {} is not a state this version wrote; ignored", path);
    return std::nullopt;
  };
  if (in.size() < 2 * sizeof(kStateMagic) || std::memcmp(in.data(), kStateMagic, sizeof(kStateMagic)) != 0 ||
      std::memcmp(in.data() + in.size() - sizeof(kStateMagic), kStateMagic, sizeof(kStateMagic)) != 0) {
    return bad();
  }
  at = sizeof(kStateMagic);
  PublisherState state;
  uint32_t npods = 0;
  if (!get(npods) || npods > 1U << 16) return bad();
  for (uint32_t i = 0; i < npods; ++i) {
    uint32_t len = 0;
    if (!get(len) || in.size() - at < len) return bad();
    state.pods.emplace_back(in.data() + at, len);
    at += len;
  }
  uint64_t n = 0;
  if (!get(n)) return bad();
  const size_t end = in.size() - sizeof(kStateMagic);
  for (uint64_t i = 0; i < n; ++i) {
    BlockKey key;
    PublishedBlock b;
    uint32_t ntokens = 0;
    if (!get(key.hi) || !get(key.lo) || !get(b.parent_lo) || !get(b.ns) || !get(b.tiers) || !get(ntokens) || at > end ||
        (end - at) / sizeof(TokenId) < ntokens) {
      return bad();
    }
    b.tokens.resize(ntokens);
    if (ntokens > 0) std::memcpy(b.tokens.data(), in.data() + at, ntokens * sizeof(TokenId));
    at += ntokens * sizeof(TokenId);
    state.blocks.emplace(key, std::move(b));
  }
  if (at != end) return bad();
  return state;
}

}  // namespace kvtier::publisher
