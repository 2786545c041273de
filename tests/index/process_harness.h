// Forked children for multi-process index tests. A child runs a function and _exits with its
// result; it never returns into the test framework.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>

namespace kvtier::testing_support {

// Runs `body` in a child process; the child exits 0 if body returns true.
inline pid_t spawn(const std::function<bool()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    bool ok = false;
    try {
      ok = body();
    } catch (...) {
      std::fprintf(stderr, "child %d: exception\n", ::getpid());
    }
    std::fflush(stderr);
    ::_exit(ok ? 0 : 1);
  }
  return pid;
}

// Exit status of a child (0..255), or 128 + signal number.
inline int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// A one-byte signal from child to parent ("I am attached and running").
struct ReadyPipe {
  int fds[2] = {-1, -1};
  ReadyPipe() { (void)!::pipe(fds); }
  ~ReadyPipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void signal() const {
    const char c = 1;
    (void)!::write(fds[1], &c, 1);
  }
  bool wait() const {
    char c = 0;
    return ::read(fds[0], &c, 1) == 1;
  }
};

}  // namespace kvtier::testing_support
