// kvtier.v1.Blocks.ReadBlocks: a read session. Each OpenRead pins the held prefix of a chain (as
// GetBlocks does) and answers where each block lies in the arena, with its sealed checksum; the
// reader gets the bytes over UCX and releases the lease. Every lease of the session ends with
// the stream, so a reader that dies holding leases (its connection closes, or gRPC's keepalive
// finds it gone) leaves nothing pinned.
#include <fmt/format.h>

#include <algorithm>

#include "server/services/blocks_service.h"
#include "server/services/grpc_status.h"
#include "server/services/held_prefix.h"
#include "server/services/request_checks.h"

namespace kvtier::services {
namespace {

// Ends every lease of a session when its handler returns, however it returns.
class SessionLeases {
 public:
  explicit SessionLeases(transport::ReadLeases& leases) : leases_(leases), id_(leases.new_session()) {}
  ~SessionLeases() { (void)leases_.end_session(id_); }
  SessionLeases(const SessionLeases&) = delete;
  SessionLeases& operator=(const SessionLeases&) = delete;
  uint64_t id() const { return id_; }

 private:
  transport::ReadLeases& leases_;
  uint64_t id_;
};

void refuse_open(v1::ReadReply& reply, const grpc::Status& status) {
  reply.set_error_code(static_cast<int32_t>(status.error_code()));
  reply.set_error_message(status.error_message());
}

}  // namespace

v1::ReadReply BlocksService::open_read(uint64_t session, const v1::OpenRead& open) {
  RpcTimer timer(metrics_, Rpc::kReadBlocks);
  v1::ReadReply reply;
  std::vector<BlockKey> keys;
  if (grpc::Status s = parse_keys(open.keys(), limits_.max_keys, keys); !s.ok()) {
    refuse_open(reply, timer.done(s));
    return reply;
  }
  const uint32_t timeout = open.load_timeout_ms() == 0 ? kDefaultLoadTimeoutMs : open.load_timeout_ms();
  auto held = pin_held_prefix(client_, keys, open.include_ssd(), std::chrono::milliseconds(timeout));
  if (!held.ok()) {
    refuse_open(reply, timer.done(to_grpc(held.status())));
    return reply;
  }
  metrics_.blocks_asked.fetch_add(keys.size(), std::memory_order_relaxed);
  metrics_.tier_hits[tier_index(Tier::kHost)].fetch_add(held->from_host, std::memory_order_relaxed);
  metrics_.tier_hits[tier_index(Tier::kSsd)].fetch_add(held->blocks.size() - held->from_host,
                                                       std::memory_order_relaxed);
  v1::ReadLease& lease = *reply.mutable_lease();
  lease.set_epoch(reads_.epoch);
  if (held->blocks.empty()) {
    timer.done(grpc::Status::OK);
    return reply;  // id 0: nothing held, nothing to release
  }
  uint64_t bytes = 0;
  for (size_t i = 0; i < held->blocks.size(); ++i) {
    const HostBlock& b = held->blocks[i];
    v1::LeasedBlock& out = *lease.add_blocks();
    const auto key = b.key().to_bytes();
    out.set_key(key.data(), key.size());
    out.set_address(reinterpret_cast<uint64_t>(b.data()));
    out.set_size(static_cast<uint32_t>(b.size()));
    out.set_xxh3(client_.sealed_checksum(b));  // a block leaves the node sealed, as in GetBlocks
    out.set_tier(i < held->from_host ? v1::TIER_HOST : v1::TIER_SSD);
    bytes += b.size();
  }
  const auto ttl = open.lease_ms() == 0 ? reads_.default_lease
                                        : std::min(std::chrono::milliseconds(open.lease_ms()), reads_.max_lease);
  const size_t leased = held->blocks.size();
  auto id = reads_.leases->grant(session, std::move(held->blocks), ttl);
  if (!id.ok()) {
    reply.clear_lease();
    refuse_open(reply, timer.done(to_grpc(id.status())));
    return reply;
  }
  lease.set_id(*id);
  lease.set_lease_ms(static_cast<uint32_t>(ttl.count()));
  metrics_.blocks_leased.fetch_add(leased, std::memory_order_relaxed);
  metrics_.bytes_leased.fetch_add(bytes, std::memory_order_relaxed);
  timer.done(grpc::Status::OK);
  return reply;
}

grpc::Status BlocksService::ReadBlocks(grpc::ServerContext* context,
                                       grpc::ServerReaderWriter<v1::ReadReply, v1::ReadRequest>* stream) {
  if (auto s = access_.check(*context, config::Role::kRead, "ReadBlocks"); !s.ok()) {
    return RpcTimer(metrics_, Rpc::kReadBlocks).done(s);
  }
  if (reads_.arena == nullptr) {
    return RpcTimer(metrics_, Rpc::kReadBlocks)
        .done({grpc::StatusCode::FAILED_PRECONDITION,
               fmt::format("this node serves no UCX reads ({}); use GetBlocks", reads_.unavailable)});
  }
  SessionLeases session(*reads_.leases);
  bool first = true;
  v1::ReadRequest request;
  while (stream->Read(&request)) {
    switch (request.ask_case()) {
      case v1::ReadRequest::kOpen: {
        v1::ReadReply reply = open_read(session.id(), request.open());
        if (first) {
          v1::UcxArena& ucx = *reply.mutable_ucx();
          ucx.set_worker_address(reads_.arena->worker_address());
          ucx.set_rkey(reads_.arena->rkey());
          ucx.set_address(reads_.arena->address());
          ucx.set_bytes(reads_.arena->bytes());
          ucx.set_tcp_segment_bytes(reads_.arena->tcp_segment_bytes());
          first = false;
        }
        if (!stream->Write(reply)) return grpc::Status::OK;  // the reader went away: its leases end here
        break;
      }
      case v1::ReadRequest::kRelease: (void)reads_.leases->release(session.id(), request.release()); break;
      case v1::ReadRequest::ASK_NOT_SET:
        return RpcTimer(metrics_, Rpc::kReadBlocks)
            .done(invalid_argument("a ReadRequest with neither open nor release"));
    }
  }
  return grpc::Status::OK;
}

}  // namespace kvtier::services
