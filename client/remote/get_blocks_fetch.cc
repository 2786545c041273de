#include "client/remote/get_blocks_fetch.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>

#include "client/remote/remote_status.h"
#include "kvtier/checksum.h"

namespace kvtier::remote {

Result<RemoteFetch> fetch_by_get_blocks(v1::Blocks::Stub& stub, const security::ClientCredentials& credentials,
                                        const RemoteReaderOptions& options, std::span<const BlockKey> keys,
                                        std::span<uint8_t> destination) {
  v1::GetBlocksRequest request;
  for (const BlockKey& k : keys) {
    const auto b = k.to_bytes();
    request.add_keys(b.data(), b.size());
  }
  request.set_include_ssd(options.include_ssd);
  request.set_load_timeout_ms(options.load_timeout_ms);
  grpc::ClientContext context;
  credentials.authorize(context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options.timeout_ms));
  auto stream = stub.GetBlocks(&context, request);
  RemoteFetch out;
  out.path = RemotePath::kGrpc;
  uint64_t block_start = 0;  // where the block being received goes in the destination
  bool stopped = false;      // the destination is full, or a block failed its check
  v1::BlockChunk chunk;
  while (!stopped && stream->Read(&chunk)) {
    if (chunk.offset() == 0) ++out.held;
    const uint64_t end = block_start + chunk.block_bytes();
    const std::string& data = chunk.data();
    if (chunk.block() != out.blocks || end > destination.size() || chunk.offset() + data.size() > chunk.block_bytes()) {
      stopped = true;  // no room for this block (or a stream out of order): what came before stands
      break;
    }
    if (xxh3_64(data.data(), data.size()) != chunk.chunk_xxh3()) {
      out.corrupt = 1;
      stopped = true;
      break;
    }
    std::memcpy(destination.data() + block_start + chunk.offset(), data.data(), data.size());
    if (!chunk.last()) continue;
    if (chunk.offset() + data.size() != chunk.block_bytes() ||
        (chunk.block_xxh3() != 0 &&
         block_checksum(destination.data() + block_start, chunk.block_bytes()) != chunk.block_xxh3())) {
      out.corrupt = 1;
      stopped = true;
      break;
    }
    ++out.blocks;
    out.bytes += chunk.block_bytes();
    out.tiers.push_back(chunk.tier() == v1::TIER_SSD ? Tier::kSsd : Tier::kHost);
    block_start = end;
  }
  if (stopped) {
    context.TryCancel();  // the rest of the stream is not wanted
    while (stream->Read(&chunk)) {
    }
    (void)stream->Finish();
    return out;
  }
  const grpc::Status s = stream->Finish();
  if (!s.ok()) return from_grpc(s, "GetBlocks from the node");
  return out;
}

}  // namespace kvtier::remote
