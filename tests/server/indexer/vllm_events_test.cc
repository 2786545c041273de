// vLLM's KV event batches decoded from msgpack in both of vLLM's encodings (tagged arrays with
// trailing defaults omitted; maps keyed by field name), and every way a payload can be wrong.
// Payloads are packed here field by field from the documented format (docs/scheduler.md).
#include "server/indexer/vllm_events.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

namespace kvtier::indexer {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

std::span<const uint8_t> bytes(const msgpack::sbuffer& b) {
  return {reinterpret_cast<const uint8_t*>(b.data()), b.size()};
}

void str(Packer& p, std::string_view s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

// [ts, [events], rank] with `events` written by `body`.
template <typename Body>
msgpack::sbuffer batch(uint32_t n, Body body, bool with_rank = true) {
  msgpack::sbuffer buf;
  Packer p(buf);
  p.pack_array(with_rank ? 3 : 2);
  p.pack_double(1700000000.25);
  p.pack_array(n);
  body(p);
  if (with_rank) p.pack(3);
  return buf;
}

TEST(VllmEventsTest, ArrayEncodingWithTrailingDefaultsOmitted) {
  const auto buf = batch(3, [](Packer& p) {
    // BlockStored: hashes, parent, token_ids, block_size, lora_id, medium (lora_name omitted).
    p.pack_array(7);
    str(p, "BlockStored");
    p.pack_array(2);
    p.pack(uint64_t{0xfedcba9876543210ULL});
    p.pack(int64_t{-5});  // a negative Python int
    p.pack(uint64_t{42});
    p.pack_array(32);
    for (int i = 0; i < 32; ++i) p.pack(i);
    p.pack(16);
    p.pack_nil();
    str(p, "CPU");
    // BlockRemoved with medium omitted (its default, None: GPU).
    p.pack_array(2);
    str(p, "BlockRemoved");
    p.pack_array(1);
    p.pack(uint64_t{7});
    p.pack_array(1);
    str(p, "AllBlocksCleared");
  });
  const auto b = decode_vllm_batch(bytes(buf));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_DOUBLE_EQ(b->ts, 1700000000.25);
  EXPECT_EQ(b->data_parallel_rank, 3);
  ASSERT_EQ(b->events.size(), 3u);
  const VllmEvent& s = b->events[0];
  EXPECT_EQ(s.kind, VllmEvent::Kind::kStored);
  EXPECT_EQ(s.hashes, (std::vector<uint64_t>{0xfedcba9876543210ULL, static_cast<uint64_t>(int64_t{-5})}));
  EXPECT_EQ(s.parent, 42u);
  EXPECT_EQ(s.token_count, 32u);
  EXPECT_EQ(s.block_size, 16u);
  EXPECT_EQ(s.tier, Tier::kHost);
  EXPECT_EQ(b->events[1].kind, VllmEvent::Kind::kRemoved);
  EXPECT_EQ(b->events[1].tier, Tier::kHbm);
  EXPECT_EQ(b->events[2].kind, VllmEvent::Kind::kAllCleared);
  EXPECT_EQ(b->unknown_events + b->malformed_events, 0u);
}

// vLLM 0.32.0's array form carries, after lora_name: extra_keys, group_idx, kv_cache_spec_kind,
// kv_cache_spec_sliding_window, locality, ownership, session_id (BlockStored) and group_idx,
// locality, ownership (BlockRemoved): a hybrid model's groups.
TEST(VllmEventsTest, KvCacheGroupsOfAHybridModel) {
  const auto buf = batch(2, [](Packer& p) {
    p.pack_array(14);
    str(p, "BlockStored");
    p.pack_array(1);
    p.pack(uint64_t{11});
    p.pack_nil();
    p.pack_array(0);
    p.pack(16);
    p.pack_nil();
    str(p, "GPU");
    p.pack_nil();              // lora_name
    p.pack_nil();              // extra_keys
    p.pack(1);                 // group_idx
    str(p, "sliding_window");  // kv_cache_spec_kind
    p.pack(4096);              // kv_cache_spec_sliding_window
    p.pack_nil();              // locality
    p.pack_nil();              // ownership
    p.pack_map(2);
    str(p, "type");
    str(p, "BlockRemoved");
    str(p, "group_idx");
    p.pack(1);
  });
  // The removal's block_hashes are missing: malformed, and counted.
  const auto b = decode_vllm_batch(bytes(buf));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_EQ(b->events.size(), 1u);
  EXPECT_EQ(b->malformed_events, 1u);
  EXPECT_EQ(b->events[0].group_idx, 1u);
  EXPECT_EQ(b->events[0].spec_kind, "sliding_window");
  EXPECT_FALSE(holds_prefix(b->events[0].spec_kind));
  for (const char* kind : {"", "full_attention", "mla_attention", "sink_full_attention"})
    EXPECT_TRUE(holds_prefix(kind));
  for (const char* kind : {"mamba", "chunked_local_attention", "sliding_window_mla", "unknown"}) {
    EXPECT_FALSE(holds_prefix(kind)) << kind;
  }

  const auto removed = batch(1, [](Packer& p) {
    p.pack_array(4);
    str(p, "BlockRemoved");
    p.pack_array(1);
    p.pack(uint64_t{11});
    str(p, "GPU");
    p.pack(0);
  });
  const auto r = decode_vllm_batch(bytes(removed));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->events.size(), 1u);
  EXPECT_EQ(r->events[0].group_idx, 0u);
  EXPECT_TRUE(r->events[0].spec_kind.empty());
}

TEST(VllmEventsTest, MapEncodingAndByteHashes) {
  const auto buf = batch(2, [](Packer& p) {
    p.pack_map(6);
    str(p, "type");
    str(p, "BlockStored");
    str(p, "block_hashes");
    p.pack_array(1);
    const std::string digest(32, '\x01');
    p.pack_bin(32);
    p.pack_bin_body(digest.data(), 32);
    str(p, "parent_block_hash");
    p.pack_nil();
    str(p, "token_ids");
    p.pack_array(0);
    str(p, "medium");
    str(p, "STORAGE");
    str(p, "lora_name");
    str(p, "sql-lora");
    p.pack_map(2);
    str(p, "block_hashes");
    p.pack_array(1);
    p.pack(1);
    str(p, "type");
    str(p, "BlockRemoved");
  });
  const auto b = decode_vllm_batch(bytes(buf));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_EQ(b->events.size(), 2u);
  EXPECT_EQ(b->events[0].hashes, std::vector<uint64_t>{0x0101010101010101ULL}) << "bytes: the last 8, big-endian";
  EXPECT_FALSE(b->events[0].parent);
  EXPECT_EQ(b->events[0].tier, Tier::kSsd);
  EXPECT_EQ(b->events[0].lora_name, "sql-lora");
  EXPECT_EQ(b->events[1].kind, VllmEvent::Kind::kRemoved);
}

TEST(VllmEventsTest, UnknownAndMalformedEventsAreCountedAndSkipped) {
  const auto buf = batch(
      5,
      [](Packer& p) {
        p.pack_array(2);
        str(p, "BlockMovedToTheMoon");  // unknown type
        p.pack(1);
        p.pack_array(2);
        str(p, "BlockRemoved");
        str(p, "not a list");  // malformed hashes
        p.pack_array(3);
        str(p, "BlockRemoved");
        p.pack_array(1);
        p.pack(9);
        str(p, "QUANTUM");  // unknown medium
        p.pack(17);         // not an event at all
        p.pack_array(2);
        str(p, "BlockRemoved");
        p.pack_array(1);
        p.pack(10);
      },
      false);
  const auto b = decode_vllm_batch(bytes(buf));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_FALSE(b->data_parallel_rank);
  EXPECT_EQ(b->unknown_events, 1u);
  EXPECT_EQ(b->malformed_events, 3u);
  ASSERT_EQ(b->events.size(), 1u);
  EXPECT_EQ(b->events[0].hashes, std::vector<uint64_t>{10});
}

TEST(VllmEventsTest, PayloadsThatAreNotBatchesAreErrors) {
  const auto good = batch(1, [](Packer& p) {
    p.pack_array(1);
    str(p, "AllBlocksCleared");
  });
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(decode_vllm_batch(bytes(good).first(cut)).ok()) << "truncated to " << cut << " bytes";
  }
  const uint8_t garbage[] = {0xc1, 0xff, 0x00};
  EXPECT_FALSE(decode_vllm_batch(garbage).ok());
  msgpack::sbuffer not_batch;
  Packer p(not_batch);
  p.pack_array(2);
  str(p, "ts");
  p.pack(1);
  EXPECT_FALSE(decode_vllm_batch(bytes(not_batch)).ok());
  EXPECT_TRUE(decode_vllm_batch(bytes(good)).ok());
}

}  // namespace
}  // namespace kvtier::indexer
