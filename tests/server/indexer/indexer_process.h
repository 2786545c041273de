// The real kvtier-indexer binary as a test drives it: started with arguments, its log in a file,
// waited for until it serves, stopped, paused and resumed with signals.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kvtier::node::testing {

struct IndexerProcess {
  pid_t pid = -1;
  std::string log_path;

  static IndexerProcess start(const std::vector<std::string>& args, const std::string& log_path) {
    IndexerProcess p;
    p.log_path = log_path;
    p.pid = ::fork();
    if (p.pid == 0) {
      std::FILE* f = std::freopen(log_path.c_str(), "w", stdout);
      if (f == nullptr) ::_exit(126);
      ::dup2(STDOUT_FILENO, STDERR_FILENO);
      std::vector<char*> argv;
      std::string bin = KVTIER_BIN_DIR "/kvtier-indexer";
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (std::string& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (p.log().find("serving on") != std::string::npos) return p;
      int status = 0;
      if (::waitpid(p.pid, &status, WNOHANG) == p.pid) throw std::runtime_error("kvtier-indexer exited: " + p.log());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("kvtier-indexer did not start: " + p.log());
  }
  std::string log() const {
    std::ifstream in(log_path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  void pause() const { ::kill(pid, SIGSTOP); }
  void resume() const { ::kill(pid, SIGCONT); }
  int stop() {
    if (pid <= 0) return -1;
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ~IndexerProcess() {
    if (pid > 0) stop();
  }
  IndexerProcess() = default;
  IndexerProcess(IndexerProcess&& o) noexcept : pid(o.pid), log_path(std::move(o.log_path)) { o.pid = -1; }
  IndexerProcess& operator=(IndexerProcess&& o) noexcept {
    std::swap(pid, o.pid);
    std::swap(log_path, o.log_path);
    return *this;
  }
};

}  // namespace kvtier::node::testing
