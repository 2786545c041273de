#include "config/byte_size.h"

#include <fmt/format.h>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

namespace kvtier::config {
namespace {

struct Unit {
  std::string_view suffix;
  uint64_t factor;
};

constexpr std::array<Unit, 14> kUnits{{
    {"B", 1},
    {"K", 1ULL << 10},
    {"KiB", 1ULL << 10},
    {"KB", 1000ULL},
    {"M", 1ULL << 20},
    {"MiB", 1ULL << 20},
    {"MB", 1000ULL * 1000},
    {"G", 1ULL << 30},
    {"GiB", 1ULL << 30},
    {"GB", 1000ULL * 1000 * 1000},
    {"T", 1ULL << 40},
    {"TiB", 1ULL << 40},
    {"TB", 1000ULL * 1000 * 1000 * 1000},
    {"", 1},
}};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<uint64_t> parse_byte_size(std::string_view text) {
  const std::string_view s = trim(text);
  size_t num_end = 0;
  while (num_end < s.size() && (std::isdigit(static_cast<unsigned char>(s[num_end])) || s[num_end] == '.')) ++num_end;
  const std::string_view number = s.substr(0, num_end);
  const std::string_view suffix = trim(s.substr(num_end));
  const auto bad = [&](std::string_view why) {
    return Status::invalid_argument(fmt::format("byte size '{}' {}", text, why));
  };
  if (number.empty()) return bad("has no number (expected e.g. 512MiB, 4GiB or 65536)");

  const Unit* unit = nullptr;
  for (const auto& u : kUnits) {
    if (u.suffix == suffix) unit = &u;
  }
  if (unit == nullptr) return bad("has an unknown unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)");

  if (number.find('.') == std::string_view::npos) {
    uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || ptr != number.data() + number.size()) return bad("is not a number");
    if (value > UINT64_MAX / unit->factor) return bad("overflows 64 bits");
    return value * unit->factor;
  }
  if (unit->factor == 1) return bad("has a fraction of a byte");
  double value = 0;
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || ptr != number.data() + number.size()) return bad("is not a number");
  const double bytes = value * static_cast<double>(unit->factor);
  if (!(bytes < 18446744073709549568.0)) return bad("overflows 64 bits");
  return static_cast<uint64_t>(std::llround(bytes));
}

std::string format_byte_size(uint64_t bytes) {
  static constexpr std::array<std::string_view, 5> kNames{"B", "KiB", "MiB", "GiB", "TiB"};
  size_t i = 0;
  uint64_t whole = bytes;
  while (i + 1 < kNames.size() && whole >= 1024 && whole % 1024 == 0) {
    whole /= 1024;
    ++i;
  }
  if (i + 1 < kNames.size() && whole >= 1024 && whole % 512 == 0) {
    // One binary half-step keeps sizes like 1.5GiB readable and exact.
    return fmt::format("{}.5{}", whole / 1024, kNames[i + 1]);
  }
  return fmt::format("{}{}", whole, kNames[i]);
}

}  // namespace kvtier::config
