// A fetch over Blocks.GetBlocks: the path when UCX is unavailable on either end. Chunks are
// written straight into the destination and each block checked against its sealed checksum.
#pragma once

#include <span>

#include "kvtier/remote_reader.h"
#include "kvtier/v1/blocks.grpc.pb.h"
#include "server/security/client_credentials.h"

namespace kvtier::remote {

Result<RemoteFetch> fetch_by_get_blocks(v1::Blocks::Stub& stub, const security::ClientCredentials& credentials,
                                        const RemoteReaderOptions& options, std::span<const BlockKey> keys,
                                        std::span<uint8_t> destination);

}  // namespace kvtier::remote
