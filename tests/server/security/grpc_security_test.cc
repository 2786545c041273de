// kvtierd's port protected end to end: the real daemon with TLS, mutual TLS and access grants,
// certificates made by the test (TestPki), clients through kvtier's own ClientCredentials and the
// `kvtier` CLI. A wrong CA, an expired certificate, a missing role and a token mismatch are each
// refused; rotated certificates and tokens take effect without a restart; a reachable plaintext
// port needs allow_insecure.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "daemon_process.h"
#include "indexer/indexer_process.h"
#include "kvtier/v1/admin.grpc.pb.h"
#include "kvtier/v1/blocks.grpc.pb.h"
#include "kvtier/v1/events.grpc.pb.h"
#include "kvtier/v1/locality.grpc.pb.h"
#include "kvtier/v1/scheduler.grpc.pb.h"
#include "node_test_support.h"
#include "server/security/client_credentials.h"
#include "support/test_pki.h"
#include "tiers/ssd/ssd_test_support.h"

namespace kvtier::node {
namespace {

using kvtier::testing::TestPki;
using testing::Daemon;
using testing::ScratchDir;

constexpr const char* kModel = "node-test/model";

// A kvtierd whose server section the test writes (everything but the addresses).
struct SecureNode {
  ScratchDir dir;
  TestPki pki{dir.path().string()};
  std::string node = "sec" + std::to_string(::getpid());
  int port = testing::free_port();
  std::string address = "127.0.0.1:" + std::to_string(port);
  int metrics_port = testing::free_port();
  Daemon daemon;

  SecureNode() { pki.standard_set(); }
  // `server` holds the server section's further keys, e.g. "tls: {...}, access: {...}".
  void start(const std::string& server, const std::string& listen = "") {
    std::ostringstream sections;
    sections << "index: {capacity: 4096}\nhost: {bytes: 8MiB, slab_bytes: 1MiB}\nssd: {enabled: false}\n"
             << "server: {grpc_address: \"" << (listen.empty() ? address : listen)
             << "\", metrics_address: \"127.0.0.1:" << metrics_port << "\", " << server << "}\n";
    testing::write_node_config(dir / "node.yaml", node, sections.str());
    daemon = Daemon::start(dir / "node.yaml");
  }
  std::string tls_files(bool mutual) const {
    std::string s = "cert_file: " + pki.crt("server") + ", key_file: " + pki.key("server") + ", reload_s: 1";
    if (mutual) s += ", client_ca_file: " + pki.crt("ca");
    return "tls: {" + s + "}";
  }
  std::string file(const std::string& name, const std::string& text) const {
    const std::string path = dir / name;
    std::ofstream(path) << text;
    return path;
  }
  ~SecureNode() {
    if (daemon.pid > 0) daemon.stop();
    testing::destroy_daemon_segments(node);
  }
};

// A client of the node: TLS trusting `ca` (none: plaintext), with `who`'s certificate (none:
// no certificate) and a token file (none: no token).
struct Caller {
  std::shared_ptr<const security::ClientCredentials> credentials;
  std::shared_ptr<grpc::Channel> channel;

  Caller(const SecureNode& n, const std::string& ca, const std::string& who = "", const std::string& token_file = "") {
    config::ClientSecurity s;
    if (!ca.empty()) s.ca_file = n.pki.crt(ca);
    if (!who.empty()) {
      s.cert_file = n.pki.crt(who);
      s.key_file = n.pki.key(who);
    }
    s.token_file = token_file;
    credentials = security::ClientCredentials::open(s).value();
    channel = credentials->channel(n.address);
  }
  std::unique_ptr<grpc::ClientContext> context() const {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    credentials->authorize(*c);
    return c;
  }
  grpc::Status match() const {
    v1::MatchPrefixRequest r;
    r.mutable_namespace_()->set_model_id(kModel);
    for (uint32_t t = 0; t < 64; ++t) r.add_token_ids(t);
    v1::MatchPrefixResponse out;
    return v1::Locality::NewStub(channel)->MatchPrefix(context().get(), r, &out);
  }
  grpc::Status stats() const {
    v1::GetStatsResponse out;
    return v1::Admin::NewStub(channel)->GetStats(context().get(), v1::GetStatsRequest(), &out);
  }
  grpc::Status snapshot() const {
    v1::SnapshotResponse out;
    return v1::Events::NewStub(channel)->Snapshot(context().get(), v1::SnapshotRequest(), &out);
  }
  grpc::Status get_blocks() const {
    v1::GetBlocksRequest r;
    r.add_keys(std::string(16, '\1'));
    auto c = context();
    auto reader = v1::Blocks::NewStub(channel)->GetBlocks(c.get(), r);
    v1::BlockChunk chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish();
  }
  // One whole block of a new chain; OK when stored.
  grpc::Status put_block(uint32_t seed) const {
    const size_t bytes = testing::small_namespace().layout.bytes_per_block();
    std::vector<uint8_t> data(bytes, static_cast<uint8_t>(seed));
    const BlockKey key = ssd::testing::test_key(seed);
    v1::PutBlocksRequest req;
    req.mutable_namespace_()->set_model_id(kModel);
    v1::BlockChunk* c = req.mutable_chunk();
    const auto kb = key.to_bytes();
    c->set_key(kb.data(), kb.size());
    c->set_block_bytes(static_cast<uint32_t>(bytes));
    c->set_data(data.data(), data.size());
    c->set_chunk_xxh3(XXH3_64bits(data.data(), data.size()));
    c->set_last(true);
    c->set_block_xxh3(XXH3_64bits(data.data(), data.size()));
    v1::PutBlocksResponse r;
    auto ctx = context();
    auto writer = v1::Blocks::NewStub(channel)->PutBlocks(ctx.get(), &r);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish();
  }
  grpc::Status evict() const {
    v1::EvictRequest r;
    r.set_tier(v1::TIER_HOST);
    r.set_bytes(1);
    v1::EvictResponse out;
    return v1::Admin::NewStub(channel)->Evict(context().get(), r, &out);
  }
  grpc::Status clear() const {
    v1::ClearNamespaceRequest r;
    r.mutable_namespace_()->set_model_id(kModel);
    v1::ClearNamespaceResponse out;
    return v1::Admin::NewStub(channel)->ClearNamespace(context().get(), r, &out);
  }
};

std::string metric_line(int port, const std::string& prefix) {
  std::istringstream text(testing::http_get(port, "/metrics"));
  for (std::string line; std::getline(text, line);) {
    if (line.starts_with(prefix)) return line;
  }
  return "(no " + prefix + ")";
}

// Runs the `kvtier` CLI; returns its exit status and output.
std::pair<int, std::string> run_cli(const std::string& args) {
  const std::string command = std::string(KVTIER_BIN_DIR) + "/kvtier " + args + " 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

#define EXPECT_CODE(expr, code)                                                                \
  do {                                                                                         \
    const grpc::Status s_ = (expr);                                                            \
    EXPECT_EQ(s_.error_code(), grpc::StatusCode::code) << #expr << ": " << s_.error_message(); \
  } while (0)

TEST(GrpcSecurity, MutualTlsGivesEachIdentityItsRolesAndRefusesTheRest) {
  SecureNode n;
  n.start(n.tls_files(true) +
          ", access: {grants: [{identity: \"spiffe://kvtier.test/reader\", roles: [read]}, "
          "{identity: \"spiffe://kvtier.test/writer\", roles: [read, write]}, "
          "{identity: \"spiffe://kvtier.test/admin\", roles: [admin]}]}");
  EXPECT_NE(n.daemon.start_log.find("mutual TLS"), std::string::npos) << n.daemon.start_log;

  const Caller reader(n, "ca", "reader");
  EXPECT_CODE(reader.match(), OK);
  EXPECT_CODE(reader.stats(), OK);
  EXPECT_CODE(reader.snapshot(), OK);
  EXPECT_CODE(reader.get_blocks(), OK);
  EXPECT_CODE(reader.put_block(1), PERMISSION_DENIED);
  EXPECT_CODE(reader.evict(), PERMISSION_DENIED);
  EXPECT_CODE(reader.clear(), PERMISSION_DENIED);

  const Caller writer(n, "ca", "writer");
  EXPECT_CODE(writer.put_block(2), OK);
  EXPECT_CODE(writer.match(), OK);
  EXPECT_CODE(writer.clear(), PERMISSION_DENIED);

  const Caller admin(n, "ca", "admin");
  EXPECT_CODE(admin.evict(), OK);
  EXPECT_CODE(admin.clear(), OK);
  EXPECT_CODE(admin.match(), PERMISSION_DENIED);
  const grpc::Status denied = admin.put_block(3);
  EXPECT_NE(denied.error_message().find("PutBlocks needs the write role"), std::string::npos) << denied.error_message();

  // Refused at the handshake: no TLS, an unknown CA, an expired certificate, none at all, and a
  // client that does not trust the node's CA.
  EXPECT_CODE(Caller(n, "").match(), UNAVAILABLE);
  EXPECT_CODE(Caller(n, "ca", "stranger").match(), UNAVAILABLE);
  EXPECT_CODE(Caller(n, "ca", "expired").match(), UNAVAILABLE);
  EXPECT_CODE(Caller(n, "ca").match(), UNAVAILABLE);
  EXPECT_CODE(Caller(n, "other-ca", "reader").match(), UNAVAILABLE);

  EXPECT_EQ(metric_line(n.metrics_port, "kvtier_access_refused_total{role=\"write\",code=\"permission_denied\"}"),
            "kvtier_access_refused_total{role=\"write\",code=\"permission_denied\"} 2");
  EXPECT_EQ(metric_line(n.metrics_port, "kvtier_access_refused_total{role=\"admin\",code=\"permission_denied\"}"),
            "kvtier_access_refused_total{role=\"admin\",code=\"permission_denied\"} 3");
  EXPECT_EQ(metric_line(n.metrics_port, "kvtier_requests_total{rpc=\"PutBlocks\",outcome=\"denied\"}"),
            "kvtier_requests_total{rpc=\"PutBlocks\",outcome=\"denied\"} 2");

  // The CLI, with the reader's certificate: stats works; without a certificate it cannot connect.
  const std::string tls =
      "--tls-ca " + n.pki.crt("ca") + " --tls-cert " + n.pki.crt("reader") + " --tls-key " + n.pki.key("reader");
  const auto [ok_status, ok_out] = run_cli("stats -a " + n.address + " " + tls);
  EXPECT_EQ(ok_status, 0) << ok_out;
  EXPECT_NE(ok_out.find("node " + n.node), std::string::npos) << ok_out;
  const auto [bad_status, bad_out] = run_cli("stats -a " + n.address + " --tls-ca " + n.pki.crt("ca"));
  EXPECT_EQ(bad_status, 1) << bad_out;
  // What the pod's probe runs: the health service needs no role, only the handshake.
  const auto [probe_status, probe_out] = run_cli("health -a " + n.address + " " + tls);
  EXPECT_EQ(probe_status, 0) << probe_out;
  EXPECT_EQ(probe_out, "SERVING\n");
  EXPECT_EQ(run_cli("health --timeout-s 2 -a " + n.address).first, 1);  // plaintext: no handshake
}

TEST(GrpcSecurity, BearerTokensGrantRolesAndAMismatchIsRefused) {
  SecureNode n;
  const std::string read_token = n.file("read-token", "r3ad-token-0001\n");
  const std::string write_token = n.file("write-token", "wr1te-token-0002");
  n.start(n.tls_files(false) + ", access: {grants: [{token_file: " + read_token +
          ", roles: [read]}, {token_file: " + write_token + ", roles: [read, write]}]}");

  EXPECT_CODE(Caller(n, "ca").match(), PERMISSION_DENIED);  // no token: no roles
  const std::string wrong = n.file("wrong-token", "r3ad-token-0009");
  EXPECT_CODE(Caller(n, "ca", "", wrong).match(), UNAUTHENTICATED);
  const Caller reader(n, "ca", "", read_token);
  EXPECT_CODE(reader.match(), OK);
  EXPECT_CODE(reader.put_block(1), PERMISSION_DENIED);
  EXPECT_CODE(Caller(n, "ca", "", write_token).put_block(1), OK);
  EXPECT_EQ(metric_line(n.metrics_port, "kvtier_access_refused_total{role=\"read\",code=\"unauthenticated\"}"),
            "kvtier_access_refused_total{role=\"read\",code=\"unauthenticated\"} 1");

  // The Secret rotates: the old token stops working and the new one works, without a restart.
  const std::string old_copy = n.file("old-read-token", "r3ad-token-0001");
  std::ofstream(read_token + ".new") << "r3ad-token-0003\n";
  std::filesystem::rename(read_token + ".new", read_token);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (Caller(n, "ca", "", old_copy).match().ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_CODE(Caller(n, "ca", "", old_copy).match(), UNAUTHENTICATED);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the client re-reads its file at most once a second
  EXPECT_CODE(reader.match(), OK);
}

TEST(GrpcSecurity, ARotatedServerCertificateIsServedWithoutARestart) {
  SecureNode n;
  n.start(n.tls_files(false));
  EXPECT_CODE(Caller(n, "ca").match(), OK);  // no grants: every caller holds every role
  EXPECT_CODE(Caller(n, "other-ca").match(), UNAVAILABLE);
  // The right CA is not enough: the certificate must name the host dialled, or server_name.
  for (const auto& [name, code] : {std::pair{"localhost", grpc::StatusCode::OK},
                                   std::pair{"kvtierd.elsewhere.example", grpc::StatusCode::UNAVAILABLE}}) {
    config::ClientSecurity s;
    s.ca_file = n.pki.crt("ca");
    s.server_name = name;
    const auto credentials = security::ClientCredentials::open(s).value();
    grpc::ClientContext c;
    v1::GetStatsResponse out;
    EXPECT_EQ(v1::Admin::NewStub(credentials->channel(n.address))->GetStats(&c, {}, &out).error_code(), code) << name;
  }
  // cert-manager writes the renewed pair; here one another CA signed, so the change is visible.
  std::filesystem::copy_file(n.pki.key("server-other"), n.pki.key("server") + ".new");
  std::filesystem::copy_file(n.pki.crt("server-other"), n.pki.crt("server") + ".new");
  std::filesystem::rename(n.pki.key("server") + ".new", n.pki.key("server"));
  std::filesystem::rename(n.pki.crt("server") + ".new", n.pki.crt("server"));
  grpc::Status s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    s = Caller(n, "other-ca").match();
  } while (!s.ok() && std::chrono::steady_clock::now() < deadline);
  EXPECT_TRUE(s.ok()) << "the renewed certificate was not served: " << s.error_message();
  EXPECT_CODE(Caller(n, "ca").match(), UNAVAILABLE);
}

TEST(GrpcSecurity, APlaintextPortOtherMachinesCanReachNeedsAllowInsecure) {
  SecureNode n;
  const std::string everywhere = "0.0.0.0:" + std::to_string(n.port);
  try {
    n.start("drain_ms: 100", everywhere);
    ADD_FAILURE() << "kvtierd served plaintext on " << everywhere << " without allow_insecure";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("allow_insecure"), std::string::npos) << e.what();
  }
  n.start("allow_insecure: true", everywhere);
  EXPECT_NE(n.daemon.start_log.find("plaintext and reachable from other machines"), std::string::npos)
      << n.daemon.start_log;
  EXPECT_CODE(Caller(n, "").match(), OK);
}

TEST(GrpcSecurity, DefaultRolesOpenReadingToEveryCallerAndBadFilesAreStartErrors) {
  SecureNode n;
  const std::string token = n.file("admin-token", "adm1n");
  n.start(n.tls_files(false) + ", access: {default_roles: [read], grants: [{token_file: " + token +
          ", roles: [admin]}]}");
  const Caller anyone(n, "ca");
  EXPECT_CODE(anyone.match(), OK);
  EXPECT_CODE(anyone.put_block(4), PERMISSION_DENIED);
  EXPECT_CODE(Caller(n, "ca", "", token).evict(), OK);
  n.daemon.stop();
  n.daemon.pid = -1;

  SecureNode m;
  try {
    m.start("tls: {cert_file: " + m.pki.crt("server") + ", key_file: " + m.pki.key("reader") + "}");
    ADD_FAILURE() << "kvtierd started with a key that is not its certificate's";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not the key of the certificate"), std::string::npos) << e.what();
  }
  try {
    m.start("access: {grants: [{token_file: " + (m.dir / "absent") + ", roles: [read]}]}");
    ADD_FAILURE() << "kvtierd started with a missing token file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("token file"), std::string::npos) << e.what();
  }
}

// What a client (the CLI, the indexer's followers, an engine's C++ code) is told when its own
// files are wrong: before any connection, with the file and what is wrong with it.
TEST(GrpcSecurity, ClientCredentialsRefuseBadFilesWithTheirNames) {
  ScratchDir dir;
  TestPki pki(dir.path().string());
  pki.standard_set();
  const auto refused = [](const config::ClientSecurity& s, const std::string& says) {
    const auto c = security::ClientCredentials::open(s);
    EXPECT_FALSE(c.ok()) << says;
    if (!c.ok()) {
      EXPECT_NE(c.status().message().find(says), std::string::npos) << c.status().to_string();
    }
  };
  config::ClientSecurity s;
  s.ca_file = dir / "missing-ca.crt";
  refused(s, "missing-ca.crt");
  s.ca_file = pki.key("ca");  // a key where the CA certificate belongs
  refused(s, "holds no PEM certificate");
  s.ca_file = pki.crt("ca");
  s.cert_file = pki.crt("reader");
  s.key_file = pki.key("writer");  // another certificate's key
  refused(s, "is not the key of the certificate");
  s.key_file = pki.key("reader");
  s.token_file = dir / "missing-token";
  refused(s, "missing-token");
  s.token_file.clear();
  EXPECT_TRUE(security::ClientCredentials::open(s).ok());
  s.key_file.clear();  // a certificate without its key
  EXPECT_FALSE(security::ClientCredentials::open(s).ok());
}

TEST(GrpcSecurity, TheIndexerFollowsAMutualTlsNodeAndServesSchedulersOverTls) {
  SecureNode n;
  n.start(n.tls_files(true) +
          ", access: {grants: [{identity: \"spiffe://kvtier.test/reader\", roles: [read]}, "
          "{identity: \"spiffe://kvtier.test/writer\", roles: [read, write]}]}");
  ASSERT_TRUE(Caller(n, "ca", "writer").put_block(7).ok());
  const std::string address = "127.0.0.1:" + std::to_string(testing::free_port());
  const std::string scheduler_token = n.file("scheduler-token", "sch3duler");
  const int metrics_port = testing::free_port();
  std::ofstream(n.dir / "indexer.yaml") << "grpc_address: \"" << address << "\"\nnodes: [\"" << n.address << "\"]\n"
                                        << "metrics_address: \"127.0.0.1:" << metrics_port << "\"\n"
                                        << "tls: {cert_file: " << n.pki.crt("server")
                                        << ", key_file: " << n.pki.key("server") << "}\n"
                                        << "access: {grants: [{token_file: " << scheduler_token
                                        << ", roles: [read]}]}\n"
                                        << "node_client: {ca_file: " << n.pki.crt("ca")
                                        << ", cert_file: " << n.pki.crt("reader")
                                        << ", key_file: " << n.pki.key("reader") << ", server_name: localhost}\n";
  auto indexer = testing::IndexerProcess::start({"--config", n.dir / "indexer.yaml"}, n.dir / "indexer.log");
  EXPECT_NE(indexer.log().find("nodes reached with mutual TLS"), std::string::npos) << indexer.log();

  config::ClientSecurity tls;
  tls.ca_file = n.pki.crt("ca");
  tls.token_file = scheduler_token;
  const auto credentials = security::ClientCredentials::open(tls).value();
  const auto scheduler = v1::Scheduler::NewStub(credentials->channel(address));
  v1::FollowedNode followed;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (followed.state() != v1::FollowedNode::STATE_FOLLOWING && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    grpc::ClientContext c;
    credentials->authorize(c);
    v1::ListNodesResponse r;
    const grpc::Status s = scheduler->ListNodes(&c, v1::ListNodesRequest(), &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    if (r.nodes_size() == 1) followed = r.nodes(0);
  }
  EXPECT_EQ(followed.state(), v1::FollowedNode::STATE_FOLLOWING) << indexer.log();
  EXPECT_EQ(followed.node(), n.node);

  // Without the token the indexer refuses; without TLS it cannot be reached at all.
  grpc::ClientContext anonymous;
  v1::ListNodesResponse ignored;
  EXPECT_EQ(scheduler->ListNodes(&anonymous, v1::ListNodesRequest(), &ignored).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext plain;
  EXPECT_EQ(v1::Scheduler::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))
                ->ListNodes(&plain, v1::ListNodesRequest(), &ignored)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // The indexer's /metrics counts the refusal and shows the node it follows.
  EXPECT_EQ(metric_line(metrics_port, "kvtier_access_refused_total{role=\"read\",code=\"permission_denied\"}"),
            "kvtier_access_refused_total{role=\"read\",code=\"permission_denied\"} 1");
  EXPECT_EQ(metric_line(metrics_port, "kvtier_requests_total{rpc=\"ListNodes\",outcome=\"denied\"}"),
            "kvtier_requests_total{rpc=\"ListNodes\",outcome=\"denied\"} 1");
  EXPECT_EQ(metric_line(metrics_port, "kvtier_indexer_followed_nodes{state=\"following\"}"),
            "kvtier_indexer_followed_nodes{state=\"following\"} 1");
  const std::string node_labels = "{node=\"" + n.node + "\",address=\"" + n.address + "\"}";
  EXPECT_EQ(metric_line(metrics_port, "kvtier_indexer_node_following" + node_labels),
            "kvtier_indexer_node_following" + node_labels + " 1");
  EXPECT_EQ(metric_line(metrics_port, "kvtier_indexer_keys"), "kvtier_indexer_keys 1");
}

}  // namespace
}  // namespace kvtier::node
