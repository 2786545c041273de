#pragma once

#include <span>

#include "kvtier/namespace.h"
#include "kvtier/prefix_chain.h"

namespace kvtier::cli {

// Writes `prompt`'s blocks from a forked process and reads them zero-copy here; 0 when every
// byte checks out.
int run_host_demo(const NamespaceSpec& spec, std::span<const TokenId> prompt);

}  // namespace kvtier::cli
