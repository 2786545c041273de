// The loopback TCP baselines the network suites compare with: a plain stream of bytes between two
// sockets of this machine, nothing on top.
#pragma once

#include <netinet/in.h>

#include <cstdint>

namespace kvtier::bench {

// A listening socket on a free loopback port (its address in *addr), or -1.
int listen_on_loopback(sockaddr_in* addr);

// Bytes per second of `total` bytes over a loopback TCP connection, 1 MiB writes and reads.
double loopback_tcp_rate(uint64_t total);

}  // namespace kvtier::bench
