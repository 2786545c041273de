// The real kvtierd binary as a test drives it: started on a configuration, waited for until it
// serves, stopped with SIGTERM or killed with SIGKILL.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kvtier::node::testing {

struct Daemon {
  pid_t pid = -1;
  FILE* out = nullptr;

  std::string serving_line;  // "kvtierd: serving node ... epoch ..."
  std::string start_log;     // what it printed before that line

  // Starts kvtierd and waits for its "serving" line.
  static Daemon start(const std::string& config) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    Daemon d;
    d.pid = ::fork();
    if (d.pid == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::dup2(fds[1], STDERR_FILENO);  // a refused configuration is said on stderr
      ::close(fds[0]);
      ::execl(KVTIER_BIN_DIR "/kvtierd", "kvtierd", "--config", config.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    d.out = ::fdopen(fds[0], "r");
    char line[512];
    std::string said;  // what it printed, for the failure message
    while (std::fgets(line, sizeof(line), d.out) != nullptr) {
      if (std::strstr(line, "serving node") != nullptr) {
        d.serving_line = line;
        d.start_log = said;
        return d;
      }
      said += line;
    }
    ::waitpid(d.pid, nullptr, 0);
    std::fclose(d.out);
    throw std::runtime_error("kvtierd did not start:\n" + said);
  }
  void kill9() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    std::fclose(out);
  }
  int stop() {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::fclose(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

}  // namespace kvtier::node::testing
