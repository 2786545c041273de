// MetricsHttpServer: the node's Prometheus endpoint. A deliberately small HTTP/1.1 server (one
// thread, one request per connection) answering GET /metrics with the text a callback renders;
// scrapes come every few seconds, so it needs nothing more and depends on nothing else.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "kvtier/result.h"

namespace kvtier::services {

class MetricsHttpServer {
 public:
  using Render = std::function<std::string()>;
  // Binds `address` (host:port; port 0 picks a free one) and starts serving.
  static Result<std::unique_ptr<MetricsHttpServer>> start(const std::string& address, Render render);
  ~MetricsHttpServer();  // stops accepting and joins the thread
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer(int fd, int port, Render render) : fd_(fd), port_(port), render_(std::move(render)) {}
  void serve();
  void answer(int connection);

  int fd_;
  int port_;
  Render render_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kvtier::services
