#include "bench_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace kvtier::bench {
namespace {

bool looks_numeric(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == 'x' || c == '%' || c == 'e';
  }) && std::isdigit(static_cast<unsigned char>(s.front()));
}

}  // namespace

std::string Table::render() const {
  std::vector<size_t> width(header_.size(), 0);
  for (size_t c = 0; c < header_.size(); ++c) width[c] = header_[c].size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  const auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : std::string();
      if (c != 0) out.append("  ");
      out += looks_numeric(cell) ? fmt::format("{:>{}}", cell, width[c]) : fmt::format("{:<{}}", cell, width[c]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  };
  line(header_);
  size_t total = 0;
  for (size_t w : width) total += w;
  out.append(total + 2 * (width.size() - 1), '-');
  out.push_back('\n');
  for (const auto& row : rows_) line(row);
  return out;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string fixed(double v, int digits) { return fmt::format("{:.{}f}", v, digits); }

JsonObject& JsonObject::add(std::string_view key, double value) {
  // JSON has no NaN or infinity; a figure that could not be measured is null.
  fields_.emplace_back(key, std::isfinite(value) ? fmt::format("{:.6g}", value) : "null");
  return *this;
}
JsonObject& JsonObject::add(std::string_view key, long long value) {
  fields_.emplace_back(key, std::to_string(value));
  return *this;
}
JsonObject& JsonObject::add(std::string_view key, bool value) {
  fields_.emplace_back(key, value ? "true" : "false");
  return *this;
}
JsonObject& JsonObject::add(std::string_view key, std::string_view value) {
  fields_.emplace_back(key, fmt::format("\"{}\"", json_escape(value)));
  return *this;
}
JsonObject& JsonObject::add_null(std::string_view key) {
  fields_.emplace_back(key, "null");
  return *this;
}
JsonObject& JsonObject::add_raw(std::string_view key, std::string raw_json) {
  fields_.emplace_back(key, std::move(raw_json));
  return *this;
}

std::string JsonObject::str() const {
  std::string out = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    out += fmt::format("{}\"{}\":{}", i ? "," : "", json_escape(fields_[i].first), fields_[i].second);
  }
  out.push_back('}');
  return out;
}

}  // namespace kvtier::bench
