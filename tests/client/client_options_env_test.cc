// client_options_from_env: the variables an engine pod sets (deploy/kustomize/examples/vllm-engine).
#include <gtest/gtest.h>
#include <cstdlib>
#include <string>

#include "kvtier/client.h"

namespace kvtier {
namespace {

// Sets the KVTIER_* variables for one test and removes them after (single-threaded test).
class ClientOptionsEnvTest : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
  void TearDown() override { clear(); }
  static void set(const char* name, const char* value) {
    ASSERT_EQ(::setenv(name, value, 1), 0);  // NOLINT(concurrency-mt-unsafe)
  }
  static void clear() {
    for (const char* n : {"KVTIER_NODE_NAME", "KVTIER_SHM_PREFIX", "KVTIER_ENGINE_ID", "KVTIER_VERIFY_READS"}) {
      ::unsetenv(n);  // NOLINT(concurrency-mt-unsafe)
    }
  }
};

TEST_F(ClientOptionsEnvTest, ReadsThePodsVariables) {
  set("KVTIER_NODE_NAME", "gpu-node-7");
  set("KVTIER_SHM_PREFIX", "kvt");
  set("KVTIER_ENGINE_ID", "10.0.3.17");
  set("KVTIER_VERIFY_READS", "1");
  ClientOptions base;
  base.host_bytes = 123;
  auto o = client_options_from_env(base);
  ASSERT_TRUE(o.ok()) << o.status().to_string();
  EXPECT_EQ(o->node_name, "gpu-node-7");
  EXPECT_EQ(o->shm_prefix, "kvt");
  EXPECT_EQ(o->engine_id, "10.0.3.17");
  EXPECT_TRUE(o->verify_reads);
  EXPECT_EQ(o->host_bytes, 123U);  // the rest comes from `base`
}

TEST_F(ClientOptionsEnvTest, DefaultsWhereUnsetAndBaseNodeNameWithoutTheVariable) {
  set("KVTIER_NODE_NAME", "n1");
  auto o = client_options_from_env();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->shm_prefix, "kvtier");
  EXPECT_EQ(o->engine_id, "");
  EXPECT_FALSE(o->verify_reads);
  clear();
  ClientOptions base;
  base.node_name = "from-code";
  o = client_options_from_env(base);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->node_name, "from-code");
}

TEST_F(ClientOptionsEnvTest, BadValuesNameTheVariable) {
  auto o = client_options_from_env();
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("KVTIER_NODE_NAME is not set"), std::string::npos);
  set("KVTIER_NODE_NAME", "no/slashes");
  o = client_options_from_env();
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("KVTIER_NODE_NAME 'no/slashes'"), std::string::npos);
  set("KVTIER_NODE_NAME", "n1");
  set("KVTIER_SHM_PREFIX", "a b");
  o = client_options_from_env();
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("KVTIER_SHM_PREFIX"), std::string::npos);
  set("KVTIER_SHM_PREFIX", "kvtier");
  set("KVTIER_VERIFY_READS", "yes");
  o = client_options_from_env();
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("KVTIER_VERIFY_READS must be 0 or 1"), std::string::npos);
}

}  // namespace
}  // namespace kvtier
