#include "redis_server.h"

#include "kvtierd_process.h"  // free_loopback_port

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

namespace kvtier::bench {

std::unique_ptr<RedisServer> RedisServer::start(std::string* why) {
  const char* binary = "/usr/bin/redis-server";
  if (::access(binary, X_OK) != 0) {
    *why = "redis-server is not installed (Debian package redis-server)";
    return nullptr;
  }
  const int port = free_loopback_port();
  if (port <= 0) {
    *why = "no free loopback port";
    return nullptr;
  }
  const std::string port_arg = std::to_string(port);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(binary, binary, "--port", port_arg.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--loglevel", "warning", "--logfile", "/dev/null", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::unique_ptr<RedisServer> server(new RedisServer(pid, port));
  for (int i = 0; i < 500; ++i) {  // up to 5 s for the server to listen
    if (redisContext* c = server->connect()) {
      redisFree(c);
      return server;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *why = "redis-server did not start listening on port " + port_arg;
  return nullptr;
}

RedisServer::~RedisServer() {
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

redisContext* RedisServer::connect() const {
  redisContext* c = redisConnect("127.0.0.1", port_);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    return nullptr;
  }
  return c;
}

}  // namespace kvtier::bench
