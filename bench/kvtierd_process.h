// A kvtierd for a benchmark: the real daemon binary (installed beside kvtier-bench), started on a
// configuration in a scratch directory, with its log in a file there; stopped with SIGTERM.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

namespace kvtier::bench {

class KvtierdProcess {
 public:
  // Writes `config_yaml` to <dir>/node.yaml, starts kvtierd on it and waits (up to 30 s) for it to
  // serve. Error text in *why when it cannot.
  static std::unique_ptr<KvtierdProcess> start(const std::string& dir, const std::string& config_yaml,
                                               std::string* why);
  ~KvtierdProcess();  // SIGTERM, and waits for it to exit
  KvtierdProcess(const KvtierdProcess&) = delete;
  KvtierdProcess& operator=(const KvtierdProcess&) = delete;

  pid_t pid() const { return pid_; }

 private:
  explicit KvtierdProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

// The running binary's path ("" if /proc cannot say): kvtierd is looked for beside it, and the
// soak starts its engine processes from it.
std::string own_executable();

// A free TCP port on 127.0.0.1 (bound and released: another process could take it meanwhile).
int free_loopback_port();

}  // namespace kvtier::bench
