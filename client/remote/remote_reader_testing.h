// The tests' seam into RemoteReader (not part of kvtier's API): a failure made to happen at an
// exact point of a fetch, such as the node restarting between a lease and its reads.
#pragma once

#include <functional>

#include "kvtier/remote_reader.h"

namespace kvtier::detail {

struct RemoteReaderTesting {
  // Runs in every fetch after the lease is granted and before its blocks are read.
  static void set_after_lease_hook(RemoteReader& reader, std::function<void()> hook);
};

}  // namespace kvtier::detail
