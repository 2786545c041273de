#include "server/security/secret_file.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

namespace kvtier::security {

Result<SecretFile::Stamp> SecretFile::stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::not_found(
        fmt::format("token file {}: {}", path, std::error_code(errno, std::generic_category()).message()));
  }
  return Stamp{st.st_ino, st.st_size, st.st_mtim};
}

Result<std::string> SecretFile::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(fmt::format("cannot open token file {}", path));
  std::stringstream text;
  text << in.rdbuf();
  std::string value = text.str();
  // A Secret written with `echo` ends in a newline; the token is the text without surrounding space.
  const auto space = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!value.empty() && space(value.back())) value.pop_back();
  size_t start = 0;
  while (start < value.size() && space(value[start])) ++start;
  value.erase(0, start);
  if (value.empty()) return Status::invalid_argument(fmt::format("token file {} is empty", path));
  for (char c : value) {
    // What an HTTP/2 header value may carry; a token is sent as one.
    if (c < 0x21 || c > 0x7e) {
      return Status::invalid_argument(fmt::format("token file {} holds a character a token cannot carry", path));
    }
  }
  return value;
}

Result<SecretFile> SecretFile::open(std::string path) {
  SecretFile f;
  auto stamp = stamp_of(path);
  if (!stamp.ok()) return stamp.status();
  auto value = read(path);
  if (!value.ok()) return value.status();
  f.path_ = std::move(path);
  f.value_ = std::move(value).value();
  f.stamp_ = *stamp;
  return f;
}

Result<bool> SecretFile::refresh() {
  auto stamp = stamp_of(path_);
  if (!stamp.ok()) return stamp.status();
  if (*stamp == stamp_) return false;
  auto value = read(path_);
  if (!value.ok()) return value.status();
  stamp_ = *stamp;
  const bool changed = *value != value_;
  value_ = std::move(value).value();
  return changed;
}

}  // namespace kvtier::security
