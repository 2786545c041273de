#include "tiers/ssd/admission_filter.h"

#include <algorithm>

namespace kvtier::ssd {

bool AdmissionFilter::admit(uint64_t bytes, Clock::time_point now) {
  if (options_.write_budget_bytes_per_s > 0) {
    const auto rate = static_cast<double>(options_.write_budget_bytes_per_s);
    if (tokens_ < 0) {
      tokens_ = rate;
    } else {
      const double elapsed = std::chrono::duration<double>(now - refilled_).count();
      tokens_ = std::min(rate, tokens_ + elapsed * rate);
    }
    refilled_ = now;
    if (tokens_ < static_cast<double>(bytes)) {
      ++stats_.rejected_budget;
      return false;
    }
    tokens_ -= static_cast<double>(bytes);
  }
  ++stats_.admitted;
  stats_.admitted_bytes += bytes;
  return true;
}

}  // namespace kvtier::ssd
