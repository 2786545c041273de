#include "tiers/host/index_binding.h"

#include <optional>
#include <unordered_set>

namespace kvtier::host {

Status maintain_index_and_arena(BlockIndex& index, HostArena& arena) {
  KVTIER_RETURN_IF_ERROR(index.maintain());
  // Which host blocks the index references matters only for a dead process's reservations, which
  // are rare: scan the index for it on the first such question, not on every call.
  std::optional<std::unordered_set<uint32_t>> referenced;
  arena.reclaim([&](uint32_t owner) { return index.owner_alive(owner); },
                [&](uint32_t loc) {
                  if (!referenced) {
                    referenced.emplace();
                    index.for_each_block([&](const BlockInfo& b) {
                      if (b.in(Tier::kHost)) referenced->insert(b.host_loc);
                    });
                  }
                  return referenced->contains(loc);
                });
  return {};
}

}  // namespace kvtier::host
