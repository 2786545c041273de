// What every service checks in a request, and the one Status → gRPC mapping, on their own (the
// real daemon answers the same through every RPC in kvtierd_grpc_test.cc).
#include "server/services/request_checks.h"

#include <gtest/gtest.h>

#include "server/services/grpc_status.h"

namespace kvtier::services {
namespace {

Namespace model(const std::string& id, const std::string& salt = "") {
  NamespaceSpec spec;
  spec.model_id = id;
  spec.cache_salt = salt;
  spec.layout.num_layers = 2;
  spec.layout.num_kv_heads = 2;
  spec.layout.head_dim = 64;
  return Namespace::create(spec).value();
}

TEST(RequestChecks, ANamespaceResolvesByModelAdapterAndSaltOnly) {
  const NamespaceCatalog catalog({model("m"), model("m", "tenant-a")});
  v1::NamespaceRef ref;
  ref.set_model_id("m");
  std::optional<Namespace> ns;
  ASSERT_TRUE(resolve_namespace(catalog, ref, ns).ok());
  EXPECT_EQ(ns->spec().cache_salt, "");
  ref.set_cache_salt("tenant-a");
  ASSERT_TRUE(resolve_namespace(catalog, ref, ns).ok());
  EXPECT_EQ(ns->spec().cache_salt, "tenant-a");
  ref.set_cache_salt("tenant-b");
  const grpc::Status s = resolve_namespace(catalog, ref, ns);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("cache_salt 'tenant-b' is not configured"), std::string::npos) << s.error_message();
  EXPECT_FALSE(ns.has_value());
}

TEST(RequestChecks, KeysAreSixteenBytesAndWithinTheLimit) {
  google::protobuf::RepeatedPtrField<std::string> keys;
  const BlockKey k{0x0102030405060708ULL, 0x1112131415161718ULL};
  const auto bytes = k.to_bytes();
  keys.Add(std::string(bytes.begin(), bytes.end()));
  keys.Add(std::string(bytes.begin(), bytes.end()));
  std::vector<BlockKey> out;
  ASSERT_TRUE(parse_keys(keys, 2, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], k);
  out.clear();
  const grpc::Status over = parse_keys(keys, 1, out);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(over.error_message().find("2 keys is more than the limit of 1"), std::string::npos);
  keys.Add(std::string(15, 'x'));
  const grpc::Status short_key = parse_keys(keys, 8, out);
  EXPECT_EQ(short_key.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(short_key.error_message().find("keys[2] is 15 bytes"), std::string::npos) << short_key.error_message();
}

TEST(GrpcStatus, EveryCodeHasOneMappingAndKeepsItsMessage) {
  EXPECT_TRUE(to_grpc(Status()).ok());
  const std::pair<Status, grpc::StatusCode> cases[] = {
      {Status::invalid_argument("a"), grpc::StatusCode::INVALID_ARGUMENT},
      {Status::not_found("b"), grpc::StatusCode::NOT_FOUND},
      {Status::already_exists("c"), grpc::StatusCode::ALREADY_EXISTS},
      {Status::resource_exhausted("d"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {Status::version_mismatch("e"), grpc::StatusCode::FAILED_PRECONDITION},
      {Status::corruption("f"), grpc::StatusCode::DATA_LOSS},
      {Status::io_error("g"), grpc::StatusCode::INTERNAL},
      {Status::unavailable("h"), grpc::StatusCode::UNAVAILABLE},
      {Status::failed_precondition("i"), grpc::StatusCode::FAILED_PRECONDITION},
      {Status::internal("j"), grpc::StatusCode::INTERNAL},
  };
  for (const auto& [status, code] : cases) {
    const grpc::Status g = to_grpc(status.with_context("while testing"));
    EXPECT_EQ(g.error_code(), code) << status;
    EXPECT_NE(g.error_message().find(status.message()), std::string::npos) << g.error_message();
    EXPECT_NE(g.error_message().find("while testing"), std::string::npos) << g.error_message();
  }
}

}  // namespace
}  // namespace kvtier::services
