// Output of a kvtier-bench suite: a readable table, then one JSON object as the last line.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvtier::bench {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Columns padded to their widest cell; numbers right-aligned, text left-aligned.
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// A flat JSON object that keeps insertion order, so figures read in the order the issue names them.
class JsonObject {
 public:
  JsonObject& add(std::string_view key, double value);
  JsonObject& add(std::string_view key, long long value);
  JsonObject& add(std::string_view key, bool value);
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  JsonObject& add_null(std::string_view key);
  JsonObject& add_raw(std::string_view key, std::string raw_json);  // a nested object built by another JsonObject
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

std::string json_escape(std::string_view s);
// Fixed-point text with `digits` decimals, e.g. fixed(3.14159, 2) == "3.14".
std::string fixed(double v, int digits);

}  // namespace kvtier::bench
