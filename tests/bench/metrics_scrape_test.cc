// The benchmarks' /metrics reader: a sample found by its whole name at a line's start, one GET
// read to the end for every figure, and nothing (not zero) where the page or the sample is missing.
// The server here is a loopback socket that answers one fixed page: the reader's HTTP side, not
// kvtierd's page (kvtierd_grpc_test checks that; the soak reads it through this reader).
#include "metrics_scrape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace kvtier::bench {
namespace {

constexpr std::string_view kPage =
    "# HELP kvtier_heap_trims_total Heap trims.\n"
    "# TYPE kvtier_heap_trims_total counter\n"
    "kvtier_heap_trims_total 12\n"
    "kvtier_heap_trims_total_seconds 0.5\n"
    "kvtier_demotions_total{tier=\"ssd\"} 7\n"
    "kvtier_demotions_total 3.5e+06\n"
    "kvtier_heap_allocated_bytes junk\n";

TEST(MetricsPage, FindsASampleByItsWholeNameAtALineStart) {
  const MetricsPage page{std::string(kPage)};
  EXPECT_EQ(page.value("kvtier_heap_trims_total"), 12.0);
  EXPECT_EQ(page.value("kvtier_heap_trims_total_seconds"), 0.5);
  EXPECT_EQ(page.value("kvtier_demotions_total"), 3.5e6) << "the labelled sample is another";
  EXPECT_FALSE(page.value("kvtier_heap_trims")) << "a prefix of a name is not the name";
  EXPECT_FALSE(page.value("heap_trims_total")) << "nor is the end of one";
  EXPECT_FALSE(page.value("kvtier_heap_allocated_bytes")) << "a value that is not a number";
  EXPECT_FALSE(page.value("kvtier_missing_total"));
  EXPECT_FALSE(page.value(""));
  EXPECT_EQ(MetricsPage{"kvtier_first 1\n"}.value("kvtier_first"), 1.0) << "the page's first line";
}

TEST(MetricsPage, OneGetReadsTheWholePageAndNothingAnsweringIsNoFigure) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  const int port = ntohs(addr.sin_port);

  // Padding past one read's 8 KiB, so the figure after it needs the reader to read to the end.
  const std::string body = std::string(20000, '#') + "\n" + std::string(kPage);
  int requests = 0;
  std::thread server([&] {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    char buf[512];
    if (::recv(fd, buf, sizeof(buf), 0) > 0) ++requests;
    const std::string reply = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body;
    for (size_t sent = 0; sent < reply.size();) {
      const ssize_t n = ::send(fd, reply.data() + sent, reply.size() - sent, 0);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    ::close(fd);
  });
  const MetricsPage page = MetricsPage::scrape(port);
  server.join();
  EXPECT_EQ(requests, 1);
  EXPECT_EQ(page.value("kvtier_heap_trims_total"), 12.0);
  EXPECT_EQ(page.value("kvtier_demotions_total"), 3.5e6);

  ::close(listener);  // nothing answers on the port now
  EXPECT_FALSE(MetricsPage::scrape(port).value("kvtier_heap_trims_total"));
  EXPECT_FALSE(scrape_metric(port, "kvtier_demotions_total"));
}

}  // namespace
}  // namespace kvtier::bench
