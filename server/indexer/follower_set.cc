#include "server/indexer/follower_set.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>

namespace kvtier::indexer {

Result<std::vector<std::string>> read_nodes_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found(fmt::format("nodes file {} cannot be read", path));
  std::vector<std::string> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r");
    std::string addr = line.substr(first, last - first + 1);
    if (addr.find_first_of(" \t") != std::string::npos || addr.find(':') == std::string::npos) {
      return Status::invalid_argument(fmt::format("{}:{}: '{}' is not a host:port address", path, n, addr));
    }
    out.push_back(std::move(addr));
  }
  return out;
}

Result<std::vector<std::string>> resolve_nodes_dns(const std::string& name_port) {
  const size_t colon = name_port.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::invalid_argument(fmt::format("'{}' is not name:port", name_port));
  }
  const std::string name = name_port.substr(0, colon);
  const std::string port = name_port.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(name.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Status::unavailable(fmt::format("{} does not resolve: {}", name, ::gai_strerror(rc)));
  }
  std::set<std::string> v4, v6;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
      v4.insert(fmt::format("{}:{}", ip, port));
    } else if (a->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
      v6.insert(fmt::format("[{}]:{}", ip, port));
    }
  }
  ::freeaddrinfo(found);
  // One family: a dual-stack name (localhost too) would otherwise be followed twice, and a node
  // listening on one family only would look down on the other.
  const std::set<std::string>& pick = v4.empty() ? v6 : v4;
  return std::vector<std::string>(pick.begin(), pick.end());
}

FollowerSet::~FollowerSet() {
  std::lock_guard lock(mu_);
  for (auto& [address, f] : followers_) f->stop(false);
}

void FollowerSet::reconcile(const std::set<std::string>& addresses) {
  std::lock_guard lock(mu_);
  for (auto it = followers_.begin(); it != followers_.end();) {
    if (addresses.count(it->first) != 0) {
      ++it;
      continue;
    }
    spdlog::info("indexer: no longer following {}", it->first);
    it->second->stop(true);
    it = followers_.erase(it);
  }
  for (const std::string& a : addresses) {
    if (followers_.count(a) != 0) continue;
    spdlog::info("indexer: following {}", a);
    FollowerOptions o = defaults_;
    o.address = a;
    followers_.emplace(a, std::make_unique<NodeFollower>(index_, o));
  }
}

std::vector<FollowerStatus> FollowerSet::status() const {
  std::lock_guard lock(mu_);
  std::vector<FollowerStatus> out;
  out.reserve(followers_.size());
  for (const auto& [address, f] : followers_) out.push_back(f->status());
  return out;
}

std::map<std::string, std::string> FollowerSet::addresses() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [address, f] : followers_) {
    std::string node = f->status().node;
    if (!node.empty()) out.emplace(std::move(node), address);
  }
  return out;
}

}  // namespace kvtier::indexer
