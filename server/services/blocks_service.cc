#include "server/services/blocks_service.h"

#include <fmt/format.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <cstring>
#include <memory>
#include <optional>

#include "kvtier/checksum.h"
#include "server/services/grpc_status.h"
#include "server/services/held_prefix.h"
#include "server/services/put_blocks_receiver.h"
#include "server/services/request_checks.h"

namespace kvtier::services {
namespace {

// The pins of the blocks a GetBlocks call streams. Shared by the call and by every payload
// slice gRPC still holds: the last of them to go releases the pins.
using PinnedBlocks = HeldPrefix;

void release_pins(void* holder) { delete static_cast<std::shared_ptr<PinnedBlocks>*>(holder); }

void append_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// A stream that ends at once with `status` (bad requests, nothing held).
class FinishedWriter final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FinishedWriter(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// Streams the pinned blocks one chunk per message. A chunk is two slices: the BlockChunk
// fields (serialized by protobuf, ending with the tag and length of `data`) and the payload,
// which is the arena's own memory. Protobuf accepts fields in any order, so the receiver parses
// a normal BlockChunk.
class ChunkWriter final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ChunkWriter(Client& client, std::shared_ptr<PinnedBlocks> pins, uint32_t chunk_bytes, ServiceMetrics& metrics)
      : client_(client),
        pins_(std::move(pins)),
        chunk_bytes_(chunk_bytes),
        metrics_(metrics),
        timer_(metrics, Rpc::kGetBlocks) {
    write_next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      buffer_.Clear();
      pins_.reset();
      Finish(timer_.done({grpc::StatusCode::CANCELLED, "the receiver went away"}));
      return;
    }
    buffer_.Clear();  // gRPC is done with the chunk's slices: the pins can go once all are
    write_next();
  }
  void OnDone() override { delete this; }

 private:
  void write_next() {
    if (block_ == pins_->blocks.size()) {
      pins_.reset();  // unpinned before the receiver hears the stream ended
      Finish(timer_.done(grpc::Status::OK));
      return;
    }
    const HostBlock& b = pins_->blocks[block_];
    const size_t len = std::min<size_t>(chunk_bytes_, b.size() - offset_);
    const uint8_t* data = b.data() + offset_;
    const bool last = offset_ + len == b.size();
    // A block leaves the node sealed: its recorded checksum is what the receiver checks it
    // against, so corruption in this node's memory after the seal is caught there. A block sent
    // as one chunk takes it as the chunk's checksum too (the same XXH3-64 of the same bytes), so
    // a block served again is not hashed again. 1 is ambiguous (block_checksum maps 0 to 1).
    if (offset_ == 0) block_sum_ = client_.sealed_checksum(b);
    const bool whole = offset_ == 0 && last && block_sum_ != 1;
    v1::BlockChunk head;
    head.set_block(static_cast<uint32_t>(block_));
    const auto key = b.key().to_bytes();
    head.set_key(key.data(), key.size());
    head.set_block_bytes(static_cast<uint32_t>(b.size()));
    head.set_offset(static_cast<uint32_t>(offset_));
    head.set_chunk_xxh3(whole ? block_sum_ : xxh3_64(data, len));
    head.set_last(last);
    if (last) head.set_block_xxh3(block_sum_);
    head.set_tier(block_ < pins_->from_host ? v1::TIER_HOST : v1::TIER_SSD);
    std::string prefix = head.SerializeAsString();
    prefix.push_back(static_cast<char>((v1::BlockChunk::kDataFieldNumber << 3) | 2));  // length-delimited
    append_varint(prefix, len);
    const grpc::Slice slices[2] = {
        grpc::Slice(prefix),
        grpc::Slice(const_cast<uint8_t*>(data), len, release_pins, new std::shared_ptr<PinnedBlocks>(pins_)),
    };
    buffer_ = grpc::ByteBuffer(slices, 2);
    metrics_.bytes_served.fetch_add(len, std::memory_order_relaxed);
    offset_ += len;
    if (last) {
      metrics_.blocks_served.fetch_add(1, std::memory_order_relaxed);
      ++block_;
      offset_ = 0;
    }
    StartWrite(&buffer_);
  }

  Client& client_;
  std::shared_ptr<PinnedBlocks> pins_;
  uint32_t chunk_bytes_;
  ServiceMetrics& metrics_;
  RpcTimer timer_;
  size_t block_ = 0, offset_ = 0;
  uint64_t block_sum_ = 0;  // the sealed checksum of blocks_[block_]
  grpc::ByteBuffer buffer_;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* BlocksService::GetBlocks(grpc::CallbackServerContext* context,
                                                                     const grpc::ByteBuffer* raw) {
  const auto refuse = [&](const grpc::Status& status) {
    RpcTimer(metrics_, Rpc::kGetBlocks).done(status);
    return new FinishedWriter(status);
  };
  if (auto s = access_.check(*context, config::Role::kRead, "GetBlocks"); !s.ok()) return refuse(s);
  v1::GetBlocksRequest request;
  grpc::ByteBuffer copy(*raw);  // Deserialize consumes its buffer; this copies references only
  if (!grpc::SerializationTraits<v1::GetBlocksRequest>::Deserialize(&copy, &request).ok()) {
    return refuse(invalid_argument("the request is not a GetBlocksRequest"));
  }
  GetBlocksAsk ask;
  if (grpc::Status s = check_get_blocks(request, limits_, ask); !s.ok()) return refuse(s);
  const std::vector<BlockKey>& keys = ask.keys;
  const uint32_t chunk_bytes = ask.chunk_bytes;
  const uint32_t timeout = request.load_timeout_ms() == 0 ? kDefaultLoadTimeoutMs : request.load_timeout_ms();
  auto held = pin_held_prefix(client_, keys, request.include_ssd(), std::chrono::milliseconds(timeout));
  if (!held.ok()) return refuse(to_grpc(held.status()));
  auto pins = std::make_shared<PinnedBlocks>(std::move(held).value());
  metrics_.blocks_asked.fetch_add(keys.size(), std::memory_order_relaxed);
  metrics_.tier_hits[tier_index(Tier::kHost)].fetch_add(pins->from_host, std::memory_order_relaxed);
  metrics_.tier_hits[tier_index(Tier::kSsd)].fetch_add(pins->blocks.size() - pins->from_host,
                                                       std::memory_order_relaxed);
  return new ChunkWriter(client_, std::move(pins), chunk_bytes, metrics_);
}

Result<NamespaceHandle> BlocksService::handle_for(const Namespace& ns) {
  std::lock_guard lock(handles_mu_);
  auto it = handles_.find(ns.index_id());
  if (it != handles_.end()) return it->second;
  KVTIER_ASSIGN_OR_RETURN(NamespaceHandle h, client_.register_namespace(ns.spec()));
  handles_.emplace(ns.index_id(), h);
  return h;
}

grpc::Status BlocksService::PutBlocks(grpc::ServerContext* context, grpc::ServerReader<v1::PutBlocksRequest>* reader,
                                      v1::PutBlocksResponse* response) {
  RpcTimer timer(metrics_, Rpc::kPutBlocks);
  // Refused before a byte of the stream is read: nothing of an unauthorized writer's reaches the arena.
  if (auto s = access_.check(*context, config::Role::kWrite, "PutBlocks"); !s.ok()) return timer.done(s);
  PutBlocksReceiver receiver(
      client_, catalog_, limits_, metrics_, [this](const Namespace& ns) { return handle_for(ns); }, *response);
  v1::PutBlocksRequest msg;
  while (reader->Read(&msg)) {
    if (grpc::Status s = receiver.receive(msg); !s.ok()) return timer.done(s);
  }
  return timer.done(receiver.finish());
}

}  // namespace kvtier::services
