// A throwaway redis-server (Debian's package) on a free loopback port, for baselines.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

struct redisContext;

namespace kvtier::bench {

class RedisServer {
 public:
  // Starts redis-server with persistence off; error text in *why when it cannot.
  static std::unique_ptr<RedisServer> start(std::string* why);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // A new client connection (owned by the caller: redisFree).
  redisContext* connect() const;
  int port() const { return port_; }

 private:
  RedisServer(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_;
  int port_;
};

}  // namespace kvtier::bench
