// This process's pid without a system call (glibc no longer caches getpid). Pins and leases
// check it on every operation to stay inert in a forked child.
#pragma once

#include <sys/types.h>

namespace kvtier {

pid_t current_pid();

}  // namespace kvtier
