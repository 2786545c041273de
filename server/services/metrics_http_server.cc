#include "server/services/metrics_http_server.h"

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include <system_error>

namespace kvtier::services {
namespace {

// "host:port" or "[v6]:port" → host and port strings.
bool split_address(const std::string& address, std::string& host, std::string& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return !port.empty();
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the scraper went away; nothing to do about it
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string response(std::string_view status, std::string_view content_type, std::string_view body) {
  return fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", status,
                     content_type, body.size(), body);
}

}  // namespace

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::start(const std::string& address, Render render) {
  std::string host, port;
  if (!split_address(address, host, port)) {
    return Status::invalid_argument("metrics address '" + address + "' must be host:port");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Status::invalid_argument(fmt::format("metrics address '{}': {}", address, ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::io_error("metrics socket: " + std::generic_category().message(errno));
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // restarts reuse TIME_WAIT ports
  if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::unavailable(
        fmt::format("cannot serve metrics on {}: {}", address, std::generic_category().message(err)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                                     : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(fd, bound_port, std::move(render)));
  server->thread_ = std::thread([s = server.get()] { s->serve(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
}

void MetricsHttpServer::serve() {
  while (!stopping_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;  // wakes every 100 ms to notice stopping_
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    answer(c);
    ::close(c);
  }
}

void MetricsHttpServer::answer(int connection) {
  // A slow or silent client gets 2 s to send its request line, then is dropped.
  const timeval timeout{2, 0};
  (void)::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
    const ssize_t n = ::recv(connection, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
  }
  const size_t line_end = request.find("\r\n");
  const std::string_view line = std::string_view(request).substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (line_end == std::string::npos || sp2 == std::string_view::npos) {
    write_all(connection, response("400 Bad Request", "text/plain", "bad request\n"));
    return;
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (method != "GET" && method != "HEAD") {
    write_all(connection, response("405 Method Not Allowed", "text/plain", "only GET\n"));
  } else if (path == "/metrics") {
    const std::string body = render_();
    std::string out = response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body);
    if (method == "HEAD") out.resize(out.size() - body.size());
    write_all(connection, out);
  } else if (path == "/" || path == "/healthz") {
    write_all(connection, response("200 OK", "text/plain", "kvtierd: metrics at /metrics\n"));
  } else {
    write_all(connection, response("404 Not Found", "text/plain", "not found; metrics are at /metrics\n"));
  }
}

}  // namespace kvtier::services
