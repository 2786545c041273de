// SecretFile: a bearer token kept in a file (a mounted Kubernetes Secret), read at open and again
// whenever the file is replaced or rewritten, so a rotated token takes effect without a restart.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <string>

#include "kvtier/result.h"

namespace kvtier::security {

class SecretFile {
 public:
  // Reads the file; an unreadable or empty file is an error (an empty token would match anything).
  static Result<SecretFile> open(std::string path);

  const std::string& path() const { return path_; }
  const std::string& value() const { return value_; }

  // Re-reads the file if it changed since the last read (another inode, size or modification
  // time: Kubernetes swaps a symlink, editors rewrite in place). Returns true if the value
  // changed; an unreadable or emptied file keeps the old value and is an error.
  Result<bool> refresh();

 private:
  struct Stamp {
    ino_t inode = 0;
    off_t size = 0;
    timespec modified{};
    bool operator==(const Stamp& o) const {
      return inode == o.inode && size == o.size && modified.tv_sec == o.modified.tv_sec &&
             modified.tv_nsec == o.modified.tv_nsec;
    }
  };
  static Result<Stamp> stamp_of(const std::string& path);
  static Result<std::string> read(const std::string& path);

  std::string path_;
  std::string value_;
  Stamp stamp_;
};

}  // namespace kvtier::security
