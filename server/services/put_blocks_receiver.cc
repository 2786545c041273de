#include "server/services/put_blocks_receiver.h"

#include <fmt/format.h>

#include <cstring>

#include "kvtier/checksum.h"
#include "server/services/grpc_status.h"
#include "server/services/request_checks.h"

namespace kvtier::services {

grpc::Status PutBlocksReceiver::fail(grpc::StatusCode code, const std::string& message) const {
  return {code, fmt::format("{} (blocks before it: {} stored, {} already held, {} dropped)", message,
                            response_.stored(), response_.existed(), response_.dropped())};
}

grpc::Status PutBlocksReceiver::receive(const v1::PutBlocksRequest& msg) {
  if (!handle_) {
    if (grpc::Status s = open_namespace(msg); !s.ok()) return s;
  }
  if (!msg.has_chunk()) return grpc::Status::OK;
  const v1::BlockChunk& c = msg.chunk();
  if (c.key().size() != BlockKey::kBytes) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                fmt::format("a chunk's key is {} bytes; a key is {}", c.key().size(), BlockKey::kBytes));
  }
  const BlockKey key = BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(c.key().data()));
  if (grpc::Status s = check_chunk(c, key); !s.ok()) return s;
  if (!open_) {
    if (grpc::Status s = begin_block(c, key); !s.ok()) return s;
  } else if (key != open_->key) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("block {} began before block {} ended at offset {}",
                                                                key.to_hex(), open_->key.to_hex(), open_->next_offset));
  }
  if (grpc::Status s = append(c); !s.ok()) return s;
  return c.last() ? end_block(c) : grpc::Status::OK;
}

grpc::Status PutBlocksReceiver::open_namespace(const v1::PutBlocksRequest& msg) {
  if (!msg.has_namespace_()) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT, "the stream's first message must name the namespace");
  }
  std::optional<Namespace> ns;
  if (grpc::Status s = resolve_namespace(catalog_, msg.namespace_(), ns); !s.ok()) {
    return fail(s.error_code(), s.error_message());
  }
  auto h = handle_for_(*ns);
  if (!h.ok()) return fail(to_grpc_code(h.status().code()), h.status().to_string());
  handle_ = *h;
  return grpc::Status::OK;
}

// What a chunk must be on its own: a usable key, within the size limit, its bytes intact.
grpc::Status PutBlocksReceiver::check_chunk(const v1::BlockChunk& c, const BlockKey& key) const {
  if (key.lo == 0) {
    // The index links a block to its parent by the key's low half, where 0 means "first block
    // of a chain"; a hashed key has it with probability 2^-64, a made-up one would corrupt links.
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                fmt::format("block {}: a key whose low 64 bits are 0 is reserved", key.to_hex()));
  }
  if (c.data().size() > limits_.max_chunk_bytes) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                fmt::format("a chunk of {} bytes is over the limit of {}", c.data().size(), limits_.max_chunk_bytes));
  }
  if (xxh3_64(c.data().data(), c.data().size()) != c.chunk_xxh3()) {
    return fail(grpc::StatusCode::DATA_LOSS,
                fmt::format("block {} chunk at offset {}: checksum mismatch", key.to_hex(), c.offset()));
  }
  return grpc::Status::OK;
}

// A block's first chunk: its size and parent checked, arena space reserved for it.
grpc::Status PutBlocksReceiver::begin_block(const v1::BlockChunk& c, const BlockKey& key) {
  if (c.offset() != 0) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                fmt::format("block {} starts at offset {}, not 0", key.to_hex(), c.offset()));
  }
  if (c.block_bytes() != block_bytes()) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("block {} is {} bytes; the namespace's blocks are {}",
                                                                key.to_hex(), c.block_bytes(), block_bytes()));
  }
  BlockKey parent = handle_->ns.root();
  if (!c.parent().empty()) {
    if (c.parent().size() != BlockKey::kBytes) {
      return fail(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("block {}: parent is {} bytes; a key is {}",
                                                                  key.to_hex(), c.parent().size(), BlockKey::kBytes));
    }
    parent = BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(c.parent().data()));
  }
  open_ = Receiving{key, 0, std::nullopt};
  auto r = client_.reserve(*handle_, key, parent);
  if (!r.ok()) {
    // Full, or refused by the node's put admission: not stored, and the stream goes on.
    if (r.status().code() != StatusCode::kResourceExhausted && r.status().code() != StatusCode::kNotAdmitted) {
      return fail(to_grpc_code(r.status().code()), r.status().to_string());
    }
    response_.set_dropped(response_.dropped() + 1);
  } else if (r->exists()) {
    response_.set_existed(response_.existed() + 1);
  } else {
    open_->reservation.emplace(std::move(*r));
  }
  return grpc::Status::OK;
}

grpc::Status PutBlocksReceiver::append(const v1::BlockChunk& c) {
  const std::string& data = c.data();
  if (c.offset() != open_->next_offset || uint64_t{c.offset()} + data.size() > block_bytes()) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT,
                fmt::format("block {}: a chunk of {} bytes at offset {} (expected offset {} of {})",
                            open_->key.to_hex(), data.size(), c.offset(), open_->next_offset, block_bytes()));
  }
  if (open_->reservation) std::memcpy(open_->reservation->data() + c.offset(), data.data(), data.size());
  open_->next_offset += static_cast<uint32_t>(data.size());
  metrics_.bytes_received.fetch_add(data.size(), std::memory_order_relaxed);
  return grpc::Status::OK;
}

// The block's last chunk arrived: whole and matching its checksum, it is committed.
grpc::Status PutBlocksReceiver::end_block(const v1::BlockChunk& c) {
  const BlockKey key = open_->key;
  if (open_->next_offset != block_bytes()) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("block {} ended after {} of its {} bytes", key.to_hex(),
                                                                open_->next_offset, block_bytes()));
  }
  if (open_->reservation) {
    if (c.block_xxh3() != 0 && xxh3_64(open_->reservation->data(), block_bytes()) != c.block_xxh3()) {
      return fail(grpc::StatusCode::DATA_LOSS, fmt::format("block {}: checksum mismatch", key.to_hex()));
    }
    const Status committed = std::move(*open_->reservation).commit();
    if (committed.ok()) {
      response_.set_stored(response_.stored() + 1);
    } else if (committed.code() == StatusCode::kAlreadyExists) {
      response_.set_existed(response_.existed() + 1);  // another writer published it first
    } else {
      return fail(to_grpc_code(committed.code()), committed.to_string());
    }
  }
  metrics_.blocks_received.fetch_add(1, std::memory_order_relaxed);
  open_.reset();
  return grpc::Status::OK;
}

grpc::Status PutBlocksReceiver::finish() {
  if (open_) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("the stream ended inside block {} (after {} bytes)",
                                                                open_->key.to_hex(), open_->next_offset));
  }
  if (!handle_) return fail(grpc::StatusCode::INVALID_ARGUMENT, "the stream named no namespace");
  return grpc::Status::OK;
}

}  // namespace kvtier::services
