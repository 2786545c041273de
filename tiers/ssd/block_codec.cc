#include "tiers/ssd/block_codec.h"

#include <fmt/format.h>
#include <zstd.h>

#include <memory>

namespace kvtier::ssd {
namespace {

struct CctxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DctxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

}  // namespace

std::string_view codec_name(Codec c) { return c == Codec::kZstd ? "zstd" : "none"; }

Result<Codec> parse_codec(std::string_view name) {
  if (name == "none") return Codec::kNone;
  if (name == "zstd") return Codec::kZstd;
  return Status::invalid_argument(fmt::format("unknown SSD codec '{}' (none, zstd)", name));
}

bool zstd_compress(std::span<const uint8_t> in, int level, std::vector<uint8_t>& out) {
  thread_local std::unique_ptr<ZSTD_CCtx, CctxFree> cctx(ZSTD_createCCtx());
  out.resize(ZSTD_compressBound(in.size()));
  const size_t n = ZSTD_compressCCtx(cctx.get(), out.data(), out.size(), in.data(), in.size(), level);
  if (ZSTD_isError(n) || n >= in.size()) return false;
  out.resize(n);
  return true;
}

Status zstd_decompress(std::span<const uint8_t> in, std::span<uint8_t> out) {
  thread_local std::unique_ptr<ZSTD_DCtx, DctxFree> dctx(ZSTD_createDCtx());
  const size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) return Status::corruption(fmt::format("zstd: {}", ZSTD_getErrorName(n)));
  if (n != out.size()) return Status::corruption(fmt::format("zstd: {} bytes decoded, {} expected", n, out.size()));
  return {};
}

}  // namespace kvtier::ssd
