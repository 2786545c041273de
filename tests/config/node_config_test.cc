#include "config/node_config.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <cctype>
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
  expect_error("host:\n  eviction_policy: mru\n", "host.eviction_policy: unknown eviction policy 'mru'");
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

TEST(NodeConfigTest, VllmEventsAreOffByDefaultAndCheckedWhenSet) {
  const auto def = parse_node_config("", "empty");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_FALSE(def->vllm_events_enabled);
  EXPECT_TRUE(def->vllm_pod_ids().empty());
  const auto on = parse_node_config(
      "events:\n  vllm: {enabled: true, endpoint: \"tcp://10.0.0.5:5557\", connect: true, pod_ids: \" a, b ,,c\",\n"
      "    encoding: map, replay_endpoint: \"\"}\n",
      "on.yaml");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->vllm_events_connect);
  EXPECT_EQ(on->vllm_pod_ids(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(on->vllm_events_replay_endpoint, "");
  expect_error("events:\n  vllm: {endpoint: \"localhost:5557\"}\n", "events.vllm.endpoint must be a ZMQ endpoint");
  expect_error("events:\n  vllm: {replay_endpoint: \"tcp://*:5557\"}\n", "must differ");
  expect_error("events:\n  vllm: {encoding: json}\n", "events.vllm.encoding must be array or map");
  expect_error("events:\n  vllm: {pod_ids: \"a@b\"}\n", "contains '@'");
  expect_error("events:\n  vllm: {ssd_medium: \"local disk\"}\n", "events.vllm.ssd_medium must be 1..32 letters");
  expect_error("events:\n  vllm: {token_ring: 1000}\n", "events.vllm.token_ring must be a power of two");
  expect_error("events:\n  vllm: {enabled: true, max_block_tokens: 8}\n",
               "namespaces[0] has 16 tokens per block, more than events.vllm.max_block_tokens (8)");
  expect_error("events:\n  vllm: {enable: true}\n", "unknown key 'events.vllm.enable'");
  // llm-d splits the topic kv@<pod>@<model> on '@': a model id with one cannot be published.
  expect_error(
      "events:\n  vllm: {enabled: true}\nnamespaces:\n  - model_id: org/model@v2\n"
      "    layout: {dtype: bf16, block_tokens: 16, num_layers: 2, num_kv_heads: 2, head_dim: 16}\n",
      "namespaces[0].model_id 'org/model@v2' contains '@'");
  // The state file defaults to the SSD directory.
  EXPECT_EQ(def->vllm_state_file(), "kvtier-data/ssd/vllm-published");
  EXPECT_EQ(def->vllm_events_encoding, "map");
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

TEST(NodeConfigTest, HostWatermarksDefaultToTheIndexsAndAreValidated) {
  const auto defaults = parse_node_config("", "empty");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->host_high_watermark, kDefaultHighWatermark);
  EXPECT_EQ(defaults->host_low_watermark, kDefaultLowWatermark);
  const auto wide = parse_node_config("host: {high_watermark: 0.95, low_watermark: 0.8}\n", "wide");
  ASSERT_TRUE(wide.ok()) << wide.status();
  EXPECT_TRUE(wide->validate().ok()) << wide->validate();
  EXPECT_EQ(wide->host_high_watermark, 0.95);
  EXPECT_EQ(wide->host_low_watermark, 0.8);
  const auto again = parse_node_config(to_yaml(*wide), "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->host_high_watermark, 0.95);
  EXPECT_EQ(again->host_low_watermark, 0.8);
  for (const char* bad :
       {"host: {high_watermark: 1.5}\n", "host: {low_watermark: 0}\n", "host: {high_watermark: x}\n"}) {
    const auto r = parse_node_config(bad, "bad");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("must be a fraction in (0, 1]"), std::string::npos) << r.status();
  }
  const auto inverted = parse_node_config("host: {high_watermark: 0.9, low_watermark: 0.95}\n", "inverted");
  ASSERT_FALSE(inverted.ok());
  EXPECT_EQ(inverted.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(inverted.status().message().find("0 < low < high <= 1"), std::string::npos) << inverted.status();
}

TEST(NodeConfigTest, PutAdmissionDefaultsToTheIndexsAndIsValidated) {
  const auto defaults = parse_node_config("", "empty");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->put_admission, put_admission_name(kDefaultPutAdmission));
  const auto all = parse_node_config("host: {put_admission: all}\n", "all");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->put_admission, "all");
  const auto again = parse_node_config(to_yaml(*all), "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->put_admission, "all");
  const auto bad = parse_node_config("host: {put_admission: sometimes}\n", "bad");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("host.put_admission"), std::string::npos) << bad.status();
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

TEST(NodeConfigTest, EnvironmentThenFlagsOverrideTheFile) {
  const char* env[] = {"PATH=/usr/bin",
                       "KVTIER_HOST_BYTES=64MiB",
                       "KVTIER_SERVER_GRPC_ADDRESS=127.0.0.1:7000",
                       "KVTIER_SERVER_LIMITS_MAX_KEYS=128",
                       "KVTIER_EVENTS_RING=4096",
                       nullptr};
  const auto from_env = environment_overrides(env);
  ASSERT_EQ(from_env.overrides.size(), 4u);
  EXPECT_TRUE(from_env.unknown.empty());
  EXPECT_EQ(from_env.overrides[0].path, "host.bytes");
  std::vector<ConfigOverride> overrides = from_env.overrides;
  auto flag = parse_override("server.grpc_address=127.0.0.1:7001", "--set");
  ASSERT_TRUE(flag.ok()) << flag.status();
  overrides.push_back(*flag);
  const auto cfg = parse_node_config("host:\n  bytes: 256MiB\nlog:\n  format: json\n", "test.yaml", overrides);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->host_bytes, 64u << 20);           // environment over file
  EXPECT_EQ(cfg->grpc_address, "127.0.0.1:7001");  // flag over environment
  EXPECT_EQ(cfg->max_keys, 128u);
  EXPECT_EQ(cfg->event_ring, 4096u);
  EXPECT_EQ(cfg->log_format, "json");  // file over default
  // The effective YAML carries the overridden values and parses back to the same thing.
  const auto again = parse_node_config(to_yaml(*cfg), "effective");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(to_yaml(*again), to_yaml(*cfg));
}

TEST(NodeConfigTest, BadOverridesNameTheirSource) {
  const char* misspelt[] = {"KVTIER_HOST_BYTE=1GiB", nullptr};
  const auto env = environment_overrides(misspelt);
  EXPECT_TRUE(env.overrides.empty());
  ASSERT_EQ(env.unknown.size(), 1u);
  EXPECT_EQ(env.unknown[0], "KVTIER_HOST_BYTE");
  EXPECT_FALSE(parse_override("no-equals-sign", "--set").ok());
  const auto unknown = parse_node_config("", "test.yaml", {{"server.nope", "1", "--set server.nope"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("--set server.nope"), std::string::npos) << unknown.status();
  const auto bad_value = parse_node_config("", "test.yaml", {{"events.ring", "lots", "KVTIER_EVENTS_RING"}});
  ASSERT_FALSE(bad_value.ok());
  EXPECT_NE(bad_value.status().message().find("KVTIER_EVENTS_RING"), std::string::npos) << bad_value.status();
  const auto not_pow2 = parse_node_config("", "test.yaml", {{"events.ring", "5000", "KVTIER_EVENTS_RING"}});
  ASSERT_FALSE(not_pow2.ok());
  EXPECT_NE(not_pow2.status().message().find("power of two"), std::string::npos) << not_pow2.status();
  expect_error("log:\n  level: chatty\n", "log.level");
  expect_error("server:\n  limits:\n    max_keys: 0\n", "server.limits.max_keys");
  expect_error("server:\n  limits:\n    max_chunk_bytes: 64MiB\n", "max_chunk_bytes");
  expect_error("server:\n  ucx:\n    lease_ms: 0\n", "server.ucx.lease_ms");
  expect_error("server:\n  ucx:\n    lease_ms: 90000\n", "server.ucx.lease_ms");  // over max_lease_ms
  expect_error("server:\n  ucx:\n    max_leases: 0\n", "server.ucx.max_leases");
  expect_error("server:\n  ucx:\n    leases: 5\n", "server.ucx");
}

TEST(NodeConfigTest, UcxReadsAreOnByDefaultAndTheirSettingsRoundTrip) {
  const auto defaults = parse_node_config("", "test.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_TRUE(defaults->ucx_enabled);
  EXPECT_EQ(defaults->ucx_lease_ms, 10000u);
  const auto cfg = parse_node_config(
      "server:\n  ucx: {enabled: false, lease_ms: 500, max_lease_ms: 1000, max_leases: 7}\n", "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_FALSE(cfg->ucx_enabled);
  EXPECT_EQ(cfg->ucx_lease_ms, 500u);
  EXPECT_EQ(cfg->ucx_max_lease_ms, 1000u);
  EXPECT_EQ(cfg->ucx_max_leases, 7u);
  const auto again = parse_node_config(to_yaml(*cfg), "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ucx_max_leases, 7u);
  EXPECT_FALSE(again->ucx_enabled);
}

TEST(NodeConfigTest, SsdAdmissionCountsANearAncestorsUsesByDefaultAndBoundsTheWalk) {
  const auto defaults = parse_node_config("", "test.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->ssd_min_accesses, 2u);
  EXPECT_EQ(defaults->ssd_ancestor_hops, 1u) << "the parent's uses count";
  const auto cfg = parse_node_config("ssd:\n  admission: {min_accesses: 3, ancestor_hops: 16}\n", "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->ssd_ancestor_hops, 16u);
  const auto again = parse_node_config(to_yaml(*cfg), "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ssd_min_accesses, 3u);
  EXPECT_EQ(again->ssd_ancestor_hops, 16u);
  // Walked under the index's writer lock: a long walk is refused, with the setting's name.
  const auto long_walk = parse_node_config("ssd:\n  admission:\n    ancestor_hops: 17\n", "test.yaml");
  ASSERT_FALSE(long_walk.ok());
  EXPECT_NE(long_walk.status().message().find("ssd.admission.ancestor_hops"), std::string::npos) << long_walk.status();
  EXPECT_NE(long_walk.status().message().find("at most 16"), std::string::npos) << long_walk.status();
}

TEST(NodeConfigTest, HeapTrimsEveryFiveSecondsByDefaultCanBeOffAndIsBounded) {
  const auto defaults = parse_node_config("", "test.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->heap_trim_ms, 5000u);
  const auto off = parse_node_config("server:\n  heap_trim_ms: 0\n", "test.yaml");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->heap_trim_ms, 0u);
  const auto again = parse_node_config(to_yaml(*off), "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->heap_trim_ms, 0u);
  const auto rare = parse_node_config("server:\n  heap_trim_ms: 3600001\n", "test.yaml");
  ASSERT_FALSE(rare.ok());
  EXPECT_NE(rare.status().message().find("server.heap_trim_ms must be at most 3600000"), std::string::npos)
      << rare.status();
}

TEST(NodeConfigTest, EverySettingHasItsOwnEnvironmentVariable) {
  const auto paths = setting_paths();
  EXPECT_NE(std::find(paths.begin(), paths.end(), "ssd.admission.min_accesses"), paths.end());
  EXPECT_EQ(std::find(paths.begin(), paths.end(), "namespaces"), paths.end());
  for (const std::string& path : paths) {
    std::string entry = "KVTIER_";
    for (char c : path) entry += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    entry += "=x";
    const char* env[] = {entry.c_str(), nullptr};
    const auto found = environment_overrides(env);
    ASSERT_EQ(found.overrides.size(), 1u) << entry;
    EXPECT_EQ(found.overrides[0].path, path);  // no two settings share a variable
  }
}

TEST(NodeConfigSecurityTest, TlsAndGrantsParseValidateAndRoundTrip) {
  const auto cfg = parse_node_config(R"(
server:
  grpc_address: 0.0.0.0:50551
  tls: {cert_file: /t/tls.crt, key_file: /t/tls.key, client_ca_file: /t/ca.crt, require_client_cert: false, reload_s: 5}
  access:
    default_roles: [read]
    grants:
      - {identity: "spiffe://c/ns/a/sa/writer", roles: [read, write]}
      - {token_file: /s/admin, roles: [admin]}
)",
                                     "secure");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_TRUE(cfg->validate().ok()) << cfg->validate();
  const ServerSecurity& s = cfg->security;
  EXPECT_TRUE(s.tls.enabled());
  EXPECT_FALSE(s.tls.require_client_cert);
  EXPECT_EQ(s.tls.reload_s, 5u);
  ASSERT_EQ(s.grants.size(), 2u);
  EXPECT_EQ(s.grants[0].roles, static_cast<RoleSet>(Role::kRead) | static_cast<RoleSet>(Role::kWrite));
  EXPECT_EQ(s.grants[1].token_file, "/s/admin");
  EXPECT_EQ(s.roles_of_everyone(), static_cast<RoleSet>(Role::kRead));
  const auto again = parse_node_config(to_yaml(*cfg), "round trip");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << to_yaml(*cfg);
  EXPECT_EQ(to_yaml(*again), to_yaml(*cfg));
  EXPECT_EQ(again->security.grants.size(), 2u);
  EXPECT_EQ(again->security.default_roles, s.default_roles);
}

TEST(NodeConfigSecurityTest, TheDefaultIsOpenOnLoopbackAndGrantsCloseIt) {
  const auto cfg = parse_node_config("", "empty");
  ASSERT_TRUE(cfg.ok());
  EXPECT_FALSE(cfg->security.tls.enabled());
  EXPECT_EQ(cfg->security.roles_of_everyone(), kAllRoles);
  const auto granted = parse_node_config("server: {access: {grants: [{token_file: /t, roles: [read]}]}}", "granted");
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(granted->security.roles_of_everyone(), 0);
  EXPECT_TRUE(granted->validate().ok());
}

TEST(NodeConfigSecurityTest, UnsafeOrIncoherentSettingsAreRefusedWithTheirName) {
  const auto refused = [](const std::string& yaml, const std::string& says) {
    auto cfg = parse_node_config(yaml, "f");
    const Status s = cfg.ok() ? cfg->validate() : cfg.status();
    EXPECT_FALSE(s.ok()) << yaml;
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
  };
  refused("server: {grpc_address: \"0.0.0.0:1\"}", "server.allow_insecure: true");
  refused("server: {grpc_address: \"10.0.0.5:1\"}", "reachable from other machines but has no TLS");
  refused("server: {grpc_address: \"[::]:1\"}", "has no TLS");
  refused("server: {tls: {cert_file: /a}}", "server.tls needs both cert_file and key_file");
  refused("server: {tls: {client_ca_file: /a}}", "needs server.tls.cert_file");
  refused("server: {tls: {cert_file: /a, key_file: /b, reload_s: 0}}", "reload_s must be 1..86400");
  refused("server: {access: {grants: [{identity: x, roles: [read]}]}}", "needs server.tls.client_ca_file");
  refused("server: {access: {grants: [{token_file: /a, identity: x, roles: [read]}]}}", "exactly one of");
  refused("server: {access: {grants: [{token_file: /a, roles: []}]}}", "grants no roles");
  refused("server: {access: {grants: [{token_file: /a, roles: [root]}]}}", "unknown role 'root'");
  refused("server: {access: {grants: [{token_file: /a}]}}", "server.access.grants[0].roles' is required");
  refused("server: {access: {grants: [{token_file: /a, roles: [read]}, {token_file: /a, roles: [write]}]}}",
          "granted twice");
  refused("server: {tls: {cert: /a}}", "unknown key 'server.tls.cert'");
  EXPECT_TRUE(is_loopback_address("127.0.0.1:1"));
  EXPECT_TRUE(is_loopback_address("[::1]:1"));
  EXPECT_TRUE(is_loopback_address("localhost:1"));
  EXPECT_TRUE(is_loopback_address("unix:/run/kvtier.sock"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0:1"));
  EXPECT_FALSE(is_loopback_address("kvtierd.kvtier.svc:1"));
  auto insecure = parse_node_config("server: {grpc_address: \"0.0.0.0:1\", allow_insecure: true}", "f");
  ASSERT_TRUE(insecure.ok());
  EXPECT_TRUE(insecure->validate().ok());
}

}  // namespace
}  // namespace kvtier::config
