#include "server/indexer/scheduler_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>

#include "kvtier/key_profile.h"
#include "kvtier/prefix_chain.h"
#include "server/services/request_checks.h"

namespace kvtier::indexer {

void configure_scheduler_server(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_MINIMAL_STACK, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  builder.SetMaxReceiveMessageSize(64 << 20);  // a 4M-token prompt as token ids
}

using services::invalid_argument;

grpc::Status SchedulerService::ScoreNodes(grpc::ServerContext* context, const v1::ScoreNodesRequest* request,
                                          v1::ScoreNodesResponse* response) {
  services::RpcTimer timer(score_nodes_);
  return timer.done(score_nodes(context, request, response));
}

grpc::Status SchedulerService::ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest* request,
                                         v1::ListNodesResponse* response) {
  services::RpcTimer timer(list_nodes_);
  return timer.done(list_nodes(context, request, response));
}

void SchedulerService::visit_counters(CounterVisitor& visitor) const {
  const std::array<services::NamedRpcCounters, 2> rpcs = {{{"ScoreNodes", &score_nodes_}, {"ListNodes", &list_nodes_}}};
  services::visit_request_counters(visitor, rpcs);
}

grpc::Status SchedulerService::score_nodes(grpc::ServerContext* context, const v1::ScoreNodesRequest* request,
                                           v1::ScoreNodesResponse* response) {
  if (auto s = access_.check(*context, config::Role::kRead, "ScoreNodes"); !s.ok()) return s;
  const bool by_tokens = request->token_ids_size() > 0;
  const bool by_keys = !request->packed_keys().empty();
  if (by_tokens == by_keys) return invalid_argument("give the prompt as token_ids (with a namespace) or packed_keys");
  std::vector<BlockKey> keys;
  uint32_t block_tokens = 16;
  if (by_tokens) {
    if (static_cast<uint32_t>(request->token_ids_size()) > limits_.max_tokens) {
      return invalid_argument(fmt::format("{} token ids; at most {}", request->token_ids_size(), limits_.max_tokens));
    }
    const std::span<const TokenId> tokens(request->token_ids().data(), static_cast<size_t>(request->token_ids_size()));
    const v1::NamespaceRef& ref = request->namespace_();
    const auto engine_ns = std::find_if(engine_namespaces_.begin(), engine_namespaces_.end(),
                                        [&](const EngineNamespace& e) { return e.model_id == ref.model_id(); });
    if (engine_ns != engine_namespaces_.end()) {
      KeyProfile profile = engine_ns->profile;
      if (profile.kind == KeyProfileKind::kVllmSha256Cbor && !ref.adapter_id().empty()) {
        const auto path = engine_ns->lora_paths.find(ref.adapter_id());
        if (path == engine_ns->lora_paths.end()) {
          return invalid_argument(fmt::format(
              "namespace {}: adapter '{}' has no entry in the engine namespace's lora_paths (vLLM hashes an "
              "adapter's path with its name)",
              ref.model_id(), ref.adapter_id()));
        }
        profile.lora_path = path->second;
      }
      if (profile.kind == KeyProfileKind::kVllmSha256Cbor || profile.kind == KeyProfileKind::kDynamoXxh3) {
        profile.lora_name = ref.adapter_id();
        profile.cache_salt = ref.cache_salt();
      } else if (profile.kind == KeyProfileKind::kLlmdFnv64Cbor && ref.cache_salt().empty()) {
        profile.lora_name = ref.adapter_id();  // llm-d roots an adapter's chains at its name
      } else if (!ref.adapter_id().empty() || !ref.cache_salt().empty()) {
        return invalid_argument(fmt::format("namespace {}: key profile {} has no adapter or cache_salt keys",
                                            ref.model_id(), key_profile_name(profile.kind)));
      }
      for (const uint64_t h : engine_block_hashes(profile, tokens)) {
        keys.push_back(engine_index_key(engine_ns->key_space(), h));
      }
      block_tokens = profile.block_tokens;
    } else {
      std::optional<Namespace> ns;
      if (grpc::Status s = services::resolve_namespace(catalog_, ref, ns); !s.ok()) return s;
      keys = compute_chain(*ns, tokens);
      block_tokens = ns->block_tokens();
    }
  } else {
    const std::string& packed = request->packed_keys();
    if (packed.size() % BlockKey::kBytes != 0) {
      return invalid_argument(
          fmt::format("packed_keys is {} bytes, not a multiple of {}", packed.size(), BlockKey::kBytes));
    }
    if (packed.size() / BlockKey::kBytes > limits_.max_keys) {
      return invalid_argument(fmt::format("{} keys; at most {}", packed.size() / BlockKey::kBytes, limits_.max_keys));
    }
    keys.reserve(packed.size() / BlockKey::kBytes);
    for (size_t i = 0; i < packed.size(); i += BlockKey::kBytes) {
      keys.push_back(BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(packed.data() + i)));
    }
    // Keys alone do not say the block size: the namespace's, when one is named.
    if (request->has_namespace_() && !request->namespace_().model_id().empty()) {
      std::optional<Namespace> ns;
      if (grpc::Status s = services::resolve_namespace(catalog_, request->namespace_(), ns); !s.ok()) return s;
      block_tokens = ns->block_tokens();
    }
  }
  if (static_cast<uint32_t>(request->candidates_size()) > limits_.max_candidates) {
    return invalid_argument(
        fmt::format("{} candidates; at most {}", request->candidates_size(), limits_.max_candidates));
  }
  cluster::TierWeights w = weights_;
  const v1::TierWeights& o = request->weights();
  if (o.has_hbm()) w.hbm = o.hbm().value();
  if (o.has_host()) w.host = o.host().value();
  if (o.has_ssd()) w.ssd = o.ssd().value();
  if (o.has_remote()) w.remote = o.remote().value();
  if (Status s = w.validate(); !s.ok()) return invalid_argument(std::string(s.message()));
  const std::vector<std::string> candidates(request->candidates().begin(), request->candidates().end());
  const cluster::ScoreResult r = cluster::score_nodes(index_, keys, candidates, w, block_tokens);
  response->set_blocks(r.keys);
  response->set_cluster_prefix_blocks(r.cluster_prefix);
  response->set_block_tokens(block_tokens);
  // Where each scored node is followed (once per request: followers are looked at under a lock).
  std::map<std::string, std::string> addresses = followers_.addresses();
  for (const auto& e : engines_) {
    const VllmFollowerStatus v = e->status();
    addresses.emplace(v.name, v.endpoint);
  }
  for (const cluster::NodeScore& s : r.nodes) {
    v1::NodeScore* n = response->add_nodes();
    n->set_node(s.name);
    if (auto a = addresses.find(s.name); a != addresses.end()) n->set_address(a->second);
    n->set_hbm_blocks(s.blocks[tier_index(Tier::kHbm)]);
    n->set_host_blocks(s.blocks[tier_index(Tier::kHost)]);
    n->set_ssd_blocks(s.blocks[tier_index(Tier::kSsd)]);
    n->set_prefix_blocks(s.prefix_blocks);
    n->set_remote_blocks(s.remote_blocks);
    n->set_score(s.score);
  }
  if (!r.nodes.empty()) response->set_best_node(r.nodes.front().name);
  return grpc::Status::OK;
}

grpc::Status SchedulerService::list_nodes(grpc::ServerContext* context, const v1::ListNodesRequest* /*request*/,
                                          v1::ListNodesResponse* response) {
  if (auto s = access_.check(*context, config::Role::kRead, "ListNodes"); !s.ok()) return s;
  for (const FollowerStatus& f : followers_.status()) {
    v1::FollowedNode* n = response->add_nodes();
    n->set_address(f.address);
    n->set_node(f.node);
    n->set_state(static_cast<v1::FollowedNode::State>(f.state));
    n->set_epoch(f.epoch);
    n->set_next_seq(f.next_seq);
    n->set_events(f.events);
    n->set_snapshots(f.snapshots);
    n->set_restarts(f.restarts);
    n->set_down_ms(f.down_ms);
    n->set_kind("kvtierd");
  }
  for (const auto& e : engines_) {
    const VllmFollowerStatus v = e->status();
    v1::FollowedNode* n = response->add_nodes();
    n->set_kind("vllm");
    n->set_address(v.endpoint);
    n->set_node(v.name);
    n->set_state(v.receiving ? v1::FollowedNode::STATE_FOLLOWING : v1::FollowedNode::STATE_WAITING);
    n->set_next_seq(v.next_seq);
    n->set_events(v.events);
    n->set_restarts(v.restarts);
    n->set_malformed(v.malformed);
    n->set_unknown_events(v.unknown_events);
    n->set_gaps(v.gaps);
    n->set_replayed(v.replayed);
    n->set_other_group_events(v.other_group_events);
  }
  const cluster::ClusterIndexStats s = index_.stats();
  response->set_keys(s.keys);
  response->set_residency(s.residency);
  return grpc::Status::OK;
}

}  // namespace kvtier::indexer
