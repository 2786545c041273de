#include "config/node_config.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <fstream>

namespace kvtier::config {
namespace {

void expect_error(std::string_view yaml, std::string_view fragment) {
  const auto r = parse_node_config(yaml, "test.yaml");
  ASSERT_FALSE(r.ok()) << "accepted:\n" << yaml;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("test.yaml"), std::string::npos) << r.status();
}

TEST(NodeConfigTest, EmbeddedDefaultIsValid) {
  const auto cfg = parse_node_config("", "embedded default");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->host_bytes, 1ULL << 30);
  ASSERT_EQ(cfg->namespaces.size(), 1u);
  EXPECT_EQ(cfg->namespaces[0].layout.bytes_per_block(), 512u << 10);
  EXPECT_TRUE(cfg->validate().ok());
}

TEST(NodeConfigTest, FileOverridesOnlyWhatItNames) {
  const auto cfg = parse_node_config("host:\n  bytes: 256MiB\nssd:\n  enabled: false\n", "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->host_bytes, 256u << 20);
  EXPECT_FALSE(cfg->ssd_enabled);
  EXPECT_EQ(cfg->grpc_address, "127.0.0.1:50551");  // untouched default
  EXPECT_EQ(cfg->namespaces.size(), 1u);
}

TEST(NodeConfigTest, ANamespaceListReplacesTheDefaultOne) {
  const auto cfg = parse_node_config(R"(
namespaces:
  - model_id: a
    layout: {dtype: fp16, num_layers: 2, num_kv_heads: 2, head_dim: 64}
  - model_id: a
    cache_salt: tenant-x
    layout: {dtype: fp8_e4m3, block_tokens: 64, num_layers: 61, num_kv_heads: 1, head_dim: 576, kv_planes: 1}
)",
                                     "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_EQ(cfg->namespaces.size(), 2u);
  EXPECT_EQ(cfg->namespaces[0].layout.block_tokens, 16u);  // the layout default
  EXPECT_EQ(cfg->namespaces[1].layout.kv_planes, 1u);
  EXPECT_EQ(cfg->namespaces[1].cache_salt, "tenant-x");
}

TEST(NodeConfigTest, BadInputGetsAClearMessageWithItsLocation) {
  expect_error("hots:\n  bytes: 1GiB\n", "unknown key '<top>.hots'");
  expect_error("host:\n  byte: 1GiB\n", "unknown key 'host.byte' (line 2");
  expect_error("host:\n  bytes: lots\n", "'host.bytes'");
  expect_error("host:\n  bytes: 1KiB\n", "host.bytes must be at least 1MiB");
  expect_error("index:\n  capacity: -5\n", "'index.capacity' must be a non-negative integer");
  expect_error("index:\n  capacity: 10\n", "index.capacity must be in [1024, 2^32]");
  expect_error("ssd:\n  enabled: maybe\n", "'ssd.enabled' must be true or false");
  expect_error("server:\n  grpc_address: localhost\n", "must be host:port");
  expect_error("server:\n  grpc_address: 127.0.0.1:70000\n", "port in 1..65535");
  expect_error("server:\n  grpc_address: 127.0.0.1:9464\n", "must differ");
  expect_error("node:\n  name: a/b\n", "node.name");
  expect_error("namespaces: []\n", "at least one namespace");
  expect_error("namespaces:\n  - layout: {dtype: bf16, num_layers: 1, num_kv_heads: 1, head_dim: 1}\n",
               "'namespaces[0].model_id' is required");
  expect_error("namespaces:\n  - model_id: m\n    layout: {dtype: bf17, num_layers: 1, num_kv_heads: 1, head_dim: 1}\n",
               "unknown kv dtype 'bf17'");
  expect_error("namespaces:\n  - model_id: m\n    layout: {dtype: bf16, num_layers: 0, num_kv_heads: 1, head_dim: 1}\n",
               "namespaces[0]: namespace 'm': kv layout num_layers");
  expect_error(R"(namespaces:
  - model_id: m
    layout: {dtype: bf16, num_layers: 1, num_kv_heads: 1, head_dim: 1}
  - model_id: m
    layout: {dtype: fp16, num_layers: 1, num_kv_heads: 1, head_dim: 1}
)",
               "namespaces[1] repeats model 'm'");
  expect_error("host: [unclosed\n", "not valid YAML");
}

TEST(NodeConfigTest, EffectiveYamlParsesBackToTheSameConfig) {
  const auto cfg = parse_node_config("host:\n  bytes: 1.5GiB\nnode:\n  name: node-7\n", "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const auto again = parse_node_config(to_yaml(*cfg), "round trip");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << to_yaml(*cfg);
  EXPECT_EQ(again->host_bytes, cfg->host_bytes);
  EXPECT_EQ(again->node_name, "node-7");
  EXPECT_EQ(again->namespaces, cfg->namespaces);
  EXPECT_EQ(to_yaml(*again), to_yaml(*cfg));
}

TEST(NodeConfigTest, LoadsFilesAndReportsMissingOnes) {
  const std::string path = ::testing::TempDir() + "kvtier_node_config_test_" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream out(path);
    out << "index:\n  capacity: 4096\n";
  }
  const auto cfg = load_node_config(path);
  std::remove(path.c_str());
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->index_capacity, 4096u);
  const auto missing = load_node_config(path);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvtier::config
