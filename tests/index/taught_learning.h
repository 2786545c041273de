// What admission and placement tests teach an index's reuse learning: blocks used twice come back
// within 100 ticks, blocks used once rarely come back at all (20 of 200, after 5,000 ticks). The
// densities it leaves put a block used twice far above one used once at any young age.
#pragma once

#include <gtest/gtest.h>

#include <utility>

#include "index/index_mechanics.h"
#include "index/reuse_learning.h"
#include "kvtier/block_index.h"

namespace kvtier::testing_support {

inline void teach_twice_used_blocks_return(index::ReuseLearning& learning) {
  for (int i = 0; i < 200; ++i) index::observe_return(&learning, 2, 100);
  for (int i = 0; i < 20; ++i) index::observe_return(&learning, 1, 5000);
  for (int i = 0; i < 180; ++i) index::observe_forgotten(&learning, 1, 6000);
  index::update_densities(learning, 100'000);
}

// An index on the manual clock, set to `now`.
inline BlockIndex manual_clock_index(IndexOptions options, uint32_t now) {
  options.manual_clock = true;
  auto made = BlockIndex::create(options);
  EXPECT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(index::IndexMechanics::set_clock(*made, now).ok());
  return std::move(made).value();
}

}  // namespace kvtier::testing_support
