#include "server/services/locality_service.h"

#include <fmt/format.h>

#include <vector>

#include "kvtier/prefix_chain.h"
#include "server/services/request_checks.h"

namespace kvtier::services {
grpc::Status LocalityService::match(const v1::MatchPrefixRequest& request, v1::MatchPrefixResponse* response) const {
  const bool by_tokens = request.token_ids_size() > 0;
  const bool by_keys = request.keys_size() > 0;
  const bool by_packed = !request.packed_keys().empty();
  if (int{by_tokens} + int{by_keys} + int{by_packed} != 1) {
    return invalid_argument("give exactly one of token_ids, keys and packed_keys");
  }
  // Per-thread scratch: a match allocates nothing on the steady path.
  thread_local std::vector<BlockKey> keys;
  keys.clear();
  if (by_tokens) {
    if (static_cast<uint32_t>(request.token_ids_size()) > limits_.max_tokens) {
      return invalid_argument(
          fmt::format("{} token ids is more than the limit of {}", request.token_ids_size(), limits_.max_tokens));
    }
    if (!request.has_namespace_()) return invalid_argument("token_ids need a namespace");
    std::optional<Namespace> ns;
    if (grpc::Status s = resolve_namespace(catalog_, request.namespace_(), ns); !s.ok()) return s;
    keys = compute_chain(*ns, {request.token_ids().data(), static_cast<size_t>(request.token_ids_size())});
    response->set_block_tokens(ns->block_tokens());
  } else if (by_keys) {
    if (grpc::Status s = parse_keys(request.keys(), limits_.max_keys, keys); !s.ok()) return s;
  } else {
    const std::string& packed = request.packed_keys();
    if (packed.size() % BlockKey::kBytes != 0) {
      return invalid_argument(
          fmt::format("packed_keys is {} bytes, not a whole number of {}-byte keys", packed.size(), BlockKey::kBytes));
    }
    const size_t n = packed.size() / BlockKey::kBytes;
    if (n > limits_.max_keys)
      return invalid_argument(fmt::format("{} keys is more than the limit of {}", n, limits_.max_keys));
    const auto* p = reinterpret_cast<const uint8_t*>(packed.data());
    for (size_t i = 0; i < n; ++i) keys.push_back(BlockKey::from_bytes(p + i * BlockKey::kBytes));
  }
  const PrefixMatch m = index_.match_prefix(keys);
  metrics_.blocks_asked.fetch_add(keys.size(), std::memory_order_relaxed);
  for (Tier t : kAllTiers) metrics_.tier_hits[tier_index(t)].fetch_add(m.in(t), std::memory_order_relaxed);
  response->set_matched_blocks(static_cast<uint32_t>(m.overall));
  response->set_blocks_asked(static_cast<uint32_t>(keys.size()));
  for (Tier t : kAllTiers) {
    v1::TierMatch* tm = response->add_per_tier();
    tm->set_tier(static_cast<v1::Tier>(tier_index(t) + 1));
    tm->set_blocks(static_cast<uint32_t>(m.in(t)));
  }
  return grpc::Status::OK;
}

grpc::Status LocalityService::match_batch(const v1::MatchPrefixBatchRequest& request,
                                          v1::MatchPrefixBatchResponse* response) const {
  if (static_cast<uint32_t>(request.requests_size()) > limits_.max_batch) {
    return invalid_argument(
        fmt::format("{} requests is more than the batch limit of {}", request.requests_size(), limits_.max_batch));
  }
  for (int i = 0; i < request.requests_size(); ++i) {
    const grpc::Status s = match(request.requests(i), response->add_responses());
    if (!s.ok()) return {s.error_code(), fmt::format("requests[{}]: {}", i, s.error_message())};
  }
  return grpc::Status::OK;
}

namespace {

// One posted request slot of the asynchronous API, and then the call it receives.
class PendingCall {
 public:
  virtual ~PendingCall() = default;
  // The queue delivered this call's tag: `ok` false means the server is shutting down.
  virtual void proceed(bool ok) = 0;
};

// A unary method's call: posted, received (answered at once, and a new slot posted), finished.
// Requests for `Method`: Request(service, ctx, req, responder, cq) posts the slot; Answer(service,
// req, resp) computes the status.
template <typename Req, typename Resp, typename Method>
class UnaryCall final : public PendingCall {
 public:
  UnaryCall(LocalityService& service, grpc::ServerCompletionQueue* cq) : service_(service), cq_(cq), responder_(&ctx_) {
    Method::request(service_.service(), &ctx_, &request_, &responder_, cq_, this);
  }
  void proceed(bool ok) override {
    if (finishing_ || !ok) {
      delete this;
      return;
    }
    if (service_.accepting()) new UnaryCall(service_, cq_);  // the next request finds a slot waiting
    RpcTimer timer(service_.metrics(), Method::kRpc);
    finishing_ = true;
    grpc::Status status = service_.access().check(ctx_, config::Role::kRead, rpc_name(Method::kRpc));
    if (status.ok()) status = Method::answer(service_, request_, &response_);
    responder_.Finish(response_, timer.done(std::move(status)), this);
  }

 private:
  LocalityService& service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  Req request_;
  Resp response_;
  grpc::ServerAsyncResponseWriter<Resp> responder_;
  bool finishing_ = false;
};

struct MatchPrefixMethod {
  static constexpr Rpc kRpc = Rpc::kMatchPrefix;
  static void request(v1::Locality::AsyncService& s, grpc::ServerContext* ctx, v1::MatchPrefixRequest* req,
                      grpc::ServerAsyncResponseWriter<v1::MatchPrefixResponse>* responder,
                      grpc::ServerCompletionQueue* cq, void* tag) {
    s.RequestMatchPrefix(ctx, req, responder, cq, cq, tag);
  }
  static grpc::Status answer(const LocalityService& s, const v1::MatchPrefixRequest& req,
                             v1::MatchPrefixResponse* resp) {
    return s.match(req, resp);
  }
};

struct MatchPrefixBatchMethod {
  static constexpr Rpc kRpc = Rpc::kMatchPrefixBatch;
  static void request(v1::Locality::AsyncService& s, grpc::ServerContext* ctx, v1::MatchPrefixBatchRequest* req,
                      grpc::ServerAsyncResponseWriter<v1::MatchPrefixBatchResponse>* responder,
                      grpc::ServerCompletionQueue* cq, void* tag) {
    s.RequestMatchPrefixBatch(ctx, req, responder, cq, cq, tag);
  }
  static grpc::Status answer(const LocalityService& s, const v1::MatchPrefixBatchRequest& req,
                             v1::MatchPrefixBatchResponse* resp) {
    return s.match_batch(req, resp);
  }
};

// Requests each queue keeps posted per method: enough for bursts from many clients.
constexpr int kSlotsPerQueue = 64;

}  // namespace

void LocalityService::register_with(grpc::ServerBuilder& builder, int threads) {
  builder.RegisterService(&service_);
  for (int i = 0; i < threads; ++i) queues_.push_back(builder.AddCompletionQueue());
}

void LocalityService::start() {
  for (auto& q : queues_) {
    for (int i = 0; i < kSlotsPerQueue; ++i) {
      new UnaryCall<v1::MatchPrefixRequest, v1::MatchPrefixResponse, MatchPrefixMethod>(*this, q.get());
      new UnaryCall<v1::MatchPrefixBatchRequest, v1::MatchPrefixBatchResponse, MatchPrefixBatchMethod>(*this, q.get());
    }
    threads_.emplace_back([cq = q.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) static_cast<PendingCall*>(tag)->proceed(ok);
    });
  }
}

void LocalityService::stop() {
  if (stopped_) return;
  stopped_ = true;
  accepting_ = false;
  // The server has shut down: every posted slot comes back with ok = false and is freed.
  for (auto& q : queues_) q->Shutdown();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace kvtier::services
