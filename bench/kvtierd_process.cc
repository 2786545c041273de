#include "kvtierd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace kvtier::bench {
namespace {

std::string binary_dir() {
  const std::string p = own_executable();
  return p.empty() ? std::string(".") : p.substr(0, p.rfind('/'));
}

}  // namespace

std::string own_executable() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : std::string();
}

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::unique_ptr<KvtierdProcess> KvtierdProcess::start(const std::string& dir, const std::string& config_yaml,
                                                      std::string* why) {
  const std::string binary = binary_dir() + "/kvtierd";
  if (::access(binary.c_str(), X_OK) != 0) {
    *why = "kvtierd is not beside kvtier-bench (" + binary + ")";
    return nullptr;
  }
  const std::string config = dir + "/node.yaml";
  const std::string log = dir + "/kvtierd.log";
  std::ofstream(config) << config_yaml;
  // The benchmark's configuration is the whole truth: KVTIER_* settings in the caller's
  // environment (scripts/run exports some for its own node) would override it.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "KVTIER_", 7) != 0) env_strings.emplace_back(*e);
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::vector<std::string> args{"kvtierd", "--config", config};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execve(binary.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  std::unique_ptr<KvtierdProcess> d(new KvtierdProcess(pid));
  for (int i = 0; i < 3000; ++i) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find("serving node") != std::string::npos) return d;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      d->pid_ = -1;
      *why = "kvtierd exited: " + text.str();
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *why = "kvtierd did not start serving within 30 s";
  return nullptr;
}

KvtierdProcess::~KvtierdProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

}  // namespace kvtier::bench
