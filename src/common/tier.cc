#include "kvtier/tier.h"

namespace kvtier {

std::string_view tier_name(Tier t) {
  switch (t) {
    case Tier::kHbm: return "hbm";
    case Tier::kHost: return "host";
    case Tier::kSsd: return "ssd";
  }
  return "unknown";
}

}  // namespace kvtier
