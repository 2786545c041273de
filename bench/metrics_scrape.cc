#include "metrics_scrape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace kvtier::bench {

std::optional<double> scrape_metric(int port, std::string_view name) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string page;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    // HTTP/1.0: the server closes when the page is sent, so reading to the end is the whole page.
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[8192];
      for (ssize_t r; (r = ::recv(fd, buf, sizeof(buf), 0)) > 0;) page.append(buf, static_cast<size_t>(r));
    }
  }
  ::close(fd);
  const std::string line_start = "\n" + std::string(name) + " ";
  const size_t at = page.find(line_start);
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(page.c_str() + at + line_start.size(), nullptr);
}

}  // namespace kvtier::bench
