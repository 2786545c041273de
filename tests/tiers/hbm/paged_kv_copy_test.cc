// The paged-KV copy logic (layouts, chunk arithmetic, batching, tickets) through the host copier,
// which runs the same arithmetic as the CUDA kernel: a cache in host memory stands in for the GPU.
// The real GPU copies are in cuda_kv_copier_test (run where a GPU is present).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "client/client_test_support.h"
#include "kvtier/client.h"
#include "kvtier/paged_kv.h"

namespace kvtier {
namespace {

using testing_support::ScopedNode;

constexpr KvShape kShape{/*num_blocks=*/8, /*block_tokens=*/4, /*kv_heads=*/2, /*head_dim=*/8, /*element_bytes=*/2};
constexpr uint32_t kLayers = 3;

uint64_t address(const std::vector<uint8_t>& v) { return reinterpret_cast<uint64_t>(v.data()); }

// The byte a cache holds at (layer, kv, block, i): i is the byte's index within the block's chunk.
uint8_t pattern(uint32_t seed, uint32_t layer, uint32_t kv, uint32_t block, uint64_t i) {
  return static_cast<uint8_t>(seed * 131 + layer * 61 + kv * 29 + block * 7 + i * 3 + (i >> 8));
}

// An engine's cache in one of the three layouts, indexed by hand (not through PagedKvLayout) so
// the test checks the layouts' arithmetic rather than repeating it.
struct EngineCache {
  enum class Kind { kSeparate, kKvOuter, kBlocksOuter } kind;
  std::vector<std::vector<uint8_t>> tensors;  // separate: K0, V0, K1, V1…; others: one per layer
  PagedKvLayout layout;

  explicit EngineCache(Kind k) : kind(k) {
    const uint64_t chunk = kShape.chunk_bytes();
    if (kind == Kind::kSeparate) {
      tensors.assign(2 * kLayers, std::vector<uint8_t>(chunk * kShape.num_blocks));
      std::vector<uint64_t> ks, vs;
      for (uint32_t l = 0; l < kLayers; ++l) {
        ks.push_back(address(tensors[2 * l]));
        vs.push_back(address(tensors[2 * l + 1]));
      }
      layout = PagedKvLayout::separate_kv(ks, vs, kShape).value();
    } else {
      tensors.assign(kLayers, std::vector<uint8_t>(2 * chunk * kShape.num_blocks));
      std::vector<uint64_t> bases;
      for (const auto& t : tensors) bases.push_back(address(t));
      layout =
          (kind == Kind::kKvOuter ? PagedKvLayout::kv_outer(bases, kShape) : PagedKvLayout::blocks_outer(bases, kShape))
              .value();
    }
  }

  uint8_t& at(uint32_t layer, uint32_t kv, uint32_t block, uint64_t i) {
    const uint64_t chunk = kShape.chunk_bytes();
    switch (kind) {
      case Kind::kSeparate: return tensors[2 * layer + kv][block * chunk + i];
      case Kind::kKvOuter:  // [2, num_blocks, …]
        return tensors[layer][(uint64_t{kv} * kShape.num_blocks + block) * chunk + i];
      case Kind::kBlocksOuter:  // [num_blocks, 2, …]
        return tensors[layer][(uint64_t{block} * 2 + kv) * chunk + i];
    }
    std::abort();
  }

  void fill(uint32_t seed) {
    for (uint32_t l = 0; l < kLayers; ++l) {
      for (uint32_t kv = 0; kv < 2; ++kv) {
        for (uint32_t b = 0; b < kShape.num_blocks; ++b) {
          for (uint64_t i = 0; i < kShape.chunk_bytes(); ++i) at(l, kv, b, i) = pattern(seed, l, kv, b, i);
        }
      }
    }
  }

  // What a host block holding `block` must contain: its chunks in tensor order (layer 0 K, layer 0 V…).
  std::vector<uint8_t> expected_host_block(uint32_t block) {
    std::vector<uint8_t> out;
    for (uint32_t l = 0; l < kLayers; ++l) {
      for (uint32_t kv = 0; kv < 2; ++kv) {
        for (uint64_t i = 0; i < kShape.chunk_bytes(); ++i) out.push_back(at(l, kv, block, i));
      }
    }
    return out;
  }
};

class PagedKvLayouts : public ::testing::TestWithParam<EngineCache::Kind> {};

TEST_P(PagedKvLayouts, OffloadWritesEachBlocksChunksInTensorOrder) {
  EngineCache cache(GetParam());
  cache.fill(1);
  ASSERT_EQ(cache.layout.block_bytes(), 2 * kLayers * kShape.chunk_bytes());
  auto copier = make_host_kv_copier(cache.layout).value();
  std::vector<std::vector<uint8_t>> host(3, std::vector<uint8_t>(cache.layout.block_bytes()));
  const std::vector<KvBlockCopy> blocks{{5, host[0].data()}, {0, host[1].data()}, {7, host[2].data()}};
  auto ticket = copier->start(KvCopyDirection::kOffload, blocks);
  ASSERT_TRUE(ticket.ok()) << ticket.status();
  EXPECT_TRUE(copier->done(*ticket).value());
  ASSERT_TRUE(copier->wait(*ticket).ok());
  EXPECT_EQ(host[0], cache.expected_host_block(5));
  EXPECT_EQ(host[1], cache.expected_host_block(0));
  EXPECT_EQ(host[2], cache.expected_host_block(7));
}

TEST_P(PagedKvLayouts, OnboardIntoOtherBlockIdsOfAnotherLayoutRestoresTheKv) {
  // Blocks leave one engine (any layout) and land in another engine's free blocks, in another layout.
  EngineCache source(GetParam());
  source.fill(2);
  EngineCache target(EngineCache::Kind::kBlocksOuter);
  target.fill(3);
  auto out = make_host_kv_copier(source.layout).value();
  auto in = make_host_kv_copier(target.layout).value();
  std::vector<std::vector<uint8_t>> host(2, std::vector<uint8_t>(source.layout.block_bytes()));
  ASSERT_TRUE(out->wait(out->start(KvCopyDirection::kOffload,
                                   std::vector<KvBlockCopy>{{1, host[0].data()}, {6, host[1].data()}})
                            .value())
                  .ok());
  ASSERT_TRUE(
      in->wait(in->start(KvCopyDirection::kOnboard, std::vector<KvBlockCopy>{{4, host[0].data()}, {2, host[1].data()}})
                   .value())
          .ok());
  EXPECT_EQ(target.expected_host_block(4), source.expected_host_block(1));
  EXPECT_EQ(target.expected_host_block(2), source.expected_host_block(6));
  EXPECT_EQ(target.at(0, 0, 3, 0), pattern(3, 0, 0, 3, 0)) << "a block not copied into is untouched";
}

TEST_P(PagedKvLayouts, LayerByLayerCopiesEqualOneWholeCopy) {
  EngineCache cache(GetParam());
  cache.fill(4);
  auto copier = make_host_kv_copier(cache.layout).value();
  std::vector<uint8_t> whole(cache.layout.block_bytes()), layered(cache.layout.block_bytes());
  ASSERT_TRUE(
      copier->wait(copier->start(KvCopyDirection::kOffload, std::vector<KvBlockCopy>{{3, whole.data()}}).value()).ok());
  for (uint32_t l = 0; l < kLayers; ++l) {
    auto t = copier->start(KvCopyDirection::kOffload, std::vector<KvBlockCopy>{{3, layered.data()}}, {2 * l, 2});
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_TRUE(copier->wait(*t).ok());
    // Only this layer's chunks have arrived so far.
    const uint64_t end = cache.layout.chunk_offset(2 * l + 2);
    EXPECT_TRUE(std::equal(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(end), layered.begin()));
    EXPECT_TRUE(
        std::all_of(layered.begin() + static_cast<ptrdiff_t>(end), layered.end(), [](uint8_t b) { return b == 0; }));
  }
  EXPECT_EQ(whole, layered);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PagedKvLayouts,
                         ::testing::Values(EngineCache::Kind::kSeparate, EngineCache::Kind::kKvOuter,
                                           EngineCache::Kind::kBlocksOuter),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case EngineCache::Kind::kSeparate: return "SeparateKv";
                             case EngineCache::Kind::kKvOuter: return "KvOuter";
                             case EngineCache::Kind::kBlocksOuter: return "BlocksOuter";
                           }
                           return "";
                         });

TEST(PagedKvLayout, BadShapesAndLayoutsAreRefused) {
  const std::vector<uint64_t> bases{0x1000, 0x900000};
  KvShape zero = kShape;
  zero.head_dim = 0;
  EXPECT_EQ(PagedKvLayout::kv_outer(bases, zero).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PagedKvLayout::separate_kv(bases, std::vector<uint64_t>{0x2000}, kShape).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PagedKvLayout::kv_outer({}, kShape).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PagedKvLayout::blocks_outer(std::vector<uint64_t>{0}, kShape).status().code(),
            StatusCode::kInvalidArgument);

  PagedKvLayout overlapping;
  overlapping.num_blocks = 4;
  overlapping.tensors = {{0x1000, 64, 128}};
  EXPECT_EQ(overlapping.validate().code(), StatusCode::kInvalidArgument);
  PagedKvLayout overflowing;
  overflowing.num_blocks = 1 << 20;
  overflowing.tensors = {{~uint64_t{0} - (1 << 20), 4096, 4096}};
  EXPECT_EQ(overflowing.validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(make_host_kv_copier(PagedKvLayout{}).status().code(), StatusCode::kInvalidArgument);
}

TEST(PagedKvCopier, BadBlocksRangesAndTicketsAreRefusedAndCopyNothing) {
  EngineCache cache(EngineCache::Kind::kKvOuter);
  cache.fill(5);
  auto copier = make_host_kv_copier(cache.layout).value();
  std::vector<uint8_t> host(cache.layout.block_bytes(), 0xEE);
  const std::vector<KvBlockCopy> out_of_range{{1, host.data()}, {kShape.num_blocks, host.data()}};
  EXPECT_EQ(copier->start(KvCopyDirection::kOffload, out_of_range).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::all_of(host.begin(), host.end(), [](uint8_t b) { return b == 0xEE; }))
      << "a refused batch copies nothing";
  EXPECT_EQ(copier->start(KvCopyDirection::kOffload, std::vector<KvBlockCopy>{{1, nullptr}}).status().code(),
            StatusCode::kInvalidArgument);
  const std::vector<KvBlockCopy> one{{1, host.data()}};
  EXPECT_EQ(copier->start(KvCopyDirection::kOffload, one, {2 * kLayers, 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(copier->start(KvCopyDirection::kOffload, one, {1, 2 * kLayers}).status().code(),
            StatusCode::kInvalidArgument);

  EXPECT_EQ(copier->wait(KvCopyTicket{12345}).code(), StatusCode::kInvalidArgument);
  auto t = copier->start(KvCopyDirection::kOffload, one).value();
  EXPECT_TRUE(copier->order_before(t, 0).ok());
  EXPECT_TRUE(copier->wait(t).ok());
  EXPECT_EQ(copier->wait(t).code(), StatusCode::kInvalidArgument) << "a ticket is waited once";
  EXPECT_EQ(copier->done(t).status().code(), StatusCode::kInvalidArgument);
  EXPECT_STREQ(copier->method(), "host");
}

TEST(PagedKvCopier, CudaCopierIsRefusedClearlyWhereThereIsNoGpu) {
  EngineCache cache(EngineCache::Kind::kSeparate);
  auto copier = make_cuda_kv_copier(cache.layout, {});
  if (copier.ok()) GTEST_SKIP() << "a CUDA device is present: cuda_kv_copier_test covers it";
  // Without CUDA in the build or a device on the machine the answer is unavailable; with a device,
  // host-memory tensors are refused as not GPU memory.
  EXPECT_TRUE(copier.status().code() == StatusCode::kUnavailable ||
              copier.status().code() == StatusCode::kInvalidArgument)
      << copier.status();
  EXPECT_EQ(make_cuda_kv_copier(PagedKvLayout{}, {}).status().code(), StatusCode::kInvalidArgument);
}

// The engine's path end to end with a real node: offload blocks into reservations in the shared
// arena, commit them, and a second engine (another client, another cache) acquires and onboards them.
TEST(PagedKvCopier, BlocksMoveBetweenTwoEnginesThroughTheHostArena) {
  ScopedNode node;
  auto writer = node.open();
  auto reader = node.open();
  NamespaceSpec spec;
  spec.model_id = "test/paged";
  spec.layout = {KvDType::kBFloat16, kShape.block_tokens, kLayers, kShape.kv_heads, kShape.head_dim, 2};
  auto ns_w = writer->register_namespace(spec).value();
  auto ns_r = reader->register_namespace(spec).value();

  EngineCache engine_a(EngineCache::Kind::kKvOuter);
  engine_a.fill(6);
  ASSERT_EQ(engine_a.layout.block_bytes(), ns_w.ns.bytes_per_block())
      << "the layout and the namespace agree on block size";
  std::vector<TokenId> tokens(3 * kShape.block_tokens);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<TokenId>(1000 + i);
  const auto keys = writer->keys(ns_w, tokens);
  ASSERT_EQ(keys.size(), 3U);

  auto out = make_host_kv_copier(engine_a.layout).value();
  const uint32_t a_ids[] = {6, 2, 4};
  std::vector<PutReservation> reservations;
  std::vector<KvBlockCopy> copies;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto r = writer->reserve(ns_w, keys[i], i == 0 ? ns_w.ns.root() : keys[i - 1]);
    ASSERT_TRUE(r.ok()) << r.status();
    const auto memory = writer->host_memory();
    EXPECT_GE(r->data(), memory.data());
    EXPECT_LE(r->data() + r->size(), memory.data() + memory.size()) << "a reservation lies in host_memory()";
    copies.push_back({a_ids[i], r->data()});
    reservations.push_back(std::move(r).value());
  }
  ASSERT_TRUE(out->wait(out->start(KvCopyDirection::kOffload, copies).value()).ok());
  for (auto& r : reservations) ASSERT_TRUE(std::move(r).commit().ok());

  EngineCache engine_b(EngineCache::Kind::kSeparate);
  auto in = make_host_kv_copier(engine_b.layout).value();
  auto held = reader->acquire(keys);
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_EQ(held->size(), 3U);
  const uint32_t b_ids[] = {0, 7, 1};
  std::vector<KvBlockCopy> loads;
  for (size_t i = 0; i < held->size(); ++i) loads.push_back({b_ids[i], const_cast<uint8_t*>((*held)[i].data())});
  // Layer by layer, as an engine onboards while its forward pass runs.
  for (uint32_t l = 0; l < kLayers; ++l)
    ASSERT_TRUE(in->wait(in->start(KvCopyDirection::kOnboard, loads, {2 * l, 2}).value()).ok());
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(engine_b.expected_host_block(b_ids[i]), engine_a.expected_host_block(a_ids[i]));
}

}  // namespace
}  // namespace kvtier
