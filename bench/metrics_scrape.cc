#include "metrics_scrape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace kvtier::bench {

MetricsPage MetricsPage::scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return MetricsPage(std::string());
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
  return MetricsPage(std::move(page));
}

std::optional<double> MetricsPage::value(std::string_view name) const {
  if (name.empty()) return std::nullopt;
  // A sample line: the name at a line's start, then a space and the value.
  for (size_t at = text_.find(name); at != std::string::npos; at = text_.find(name, at + 1)) {
    const size_t after = at + name.size();
    const bool line_start = at == 0 || text_[at - 1] == '\n';
    if (line_start && after < text_.size() && text_[after] == ' ') {
      const char* begin = text_.c_str() + after + 1;
      char* end = nullptr;
      const double v = std::strtod(begin, &end);
      if (end != begin) return v;
    }
  }
  return std::nullopt;
}

}  // namespace kvtier::bench
