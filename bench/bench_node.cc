#include "bench_node.h"

#include <filesystem>
#include <system_error>

#include "common/node_segments.h"

namespace kvtier::bench {

Result<BlockIndex> BenchNode::attach_index() const {
  return BlockIndex::attach(node_index_segment(options_.shm_prefix, options_.node_name));
}

std::unique_ptr<BenchNode> BenchNode::start(const std::string& dir, const std::string& node_name,
                                            const std::string& config_yaml, std::string* why) {
  ClientOptions options;
  options.node_name = node_name;
  options.shm_prefix = kBenchShmPrefix;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *why = "cannot create " + dir + ": " + ec.message();
    return nullptr;
  }
  std::unique_ptr<BenchNode> node(new BenchNode(dir, options));
  (void)Client::destroy_node(options);
  node->daemon_ = KvtierdProcess::start(dir, config_yaml, why);
  if (!node->daemon_) return nullptr;
  auto opened = Client::open(options);
  if (!opened.ok()) {
    *why = opened.status().to_string();
    return nullptr;
  }
  node->client_ = std::move(*opened);
  return node;
}

BenchNode::~BenchNode() {
  client_.reset();
  daemon_.reset();  // SIGTERM, and waits for it
  (void)Client::destroy_node(options_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace kvtier::bench
