#include "loopback_tcp.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "bench_timer.h"

namespace kvtier::bench {

int listen_on_loopback(sockaddr_in* addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr->sin_port = 0;
  socklen_t len = sizeof(*addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len) != 0 || ::listen(fd, 1) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

double loopback_tcp_rate(uint64_t total) {
  sockaddr_in addr{};
  const int listener = listen_on_loopback(&addr);
  if (listener < 0) return 0;
  std::thread sender([&] {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(s);
      return;
    }
    std::vector<uint8_t> buf(1 << 20, 0x5a);
    for (uint64_t sent = 0; sent < total;) {
      const ssize_t n = ::send(s, buf.data(), std::min<uint64_t>(buf.size(), total - sent), 0);
      if (n <= 0) break;
      sent += static_cast<uint64_t>(n);
    }
    ::close(s);
  });
  const int r = ::accept(listener, nullptr, nullptr);
  std::vector<uint8_t> buf(1 << 20);
  const double start = now_seconds();
  uint64_t got = 0;
  for (ssize_t n; (n = ::recv(r, buf.data(), buf.size(), 0)) > 0;) got += static_cast<uint64_t>(n);
  const double elapsed = now_seconds() - start;
  sender.join();
  ::close(r);
  ::close(listener);
  return static_cast<double>(got) / elapsed;
}

}  // namespace kvtier::bench
