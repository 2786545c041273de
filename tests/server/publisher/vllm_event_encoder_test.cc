// kvtierd's vLLM-format batches: the array form laid out field by field as llm-d-kv-cache's vLLM
// adapter reads it (positional fields up to kv_cache_spec_kind), the map form keyed by field name
// as vLLM 0.32's msgspec classes name them, both read back by kvtier-indexer's decoder of vLLM
// engines' streams. (vLLM's own decoder reads the map form in tests/engines/test_vllm_node_events.py.)
#include "server/publisher/vllm_event_encoder.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "server/indexer/vllm_events.h"

namespace kvtier::publisher {
namespace {

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

std::string sample(VllmEncoding encoding) {
  VllmBatchWriter w(encoding);
  w.stored({{0xFFFFFFFFFFFFFFF0ULL, 42}, std::nullopt, {1, 2, 3, 4, 5, 6}, 3, Tier::kHost, "", "tenant-a"});
  w.stored({{7}, 42, {}, 3, Tier::kSsd, "adapter-a", "tenant-a"});
  w.removed({{42, 7}, Tier::kHost});
  EXPECT_EQ(w.events(), 3U);
  return w.finish(1700000000.5);
}

TEST(VllmEventEncoder, ArrayFormIsPositionalAsVllmSendsIt) {
  const std::string payload = sample(VllmEncoding::kArray);
  const msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
  const msgpack::object& batch = h.get();
  ASSERT_EQ(batch.type, msgpack::type::ARRAY);
  ASSERT_EQ(batch.via.array.size, 3U);
  EXPECT_DOUBLE_EQ(batch.via.array.ptr[0].as<double>(), 1700000000.5);
  EXPECT_TRUE(batch.via.array.ptr[2].is_nil());  // data_parallel_rank
  const msgpack::object& evs = batch.via.array.ptr[1];
  ASSERT_EQ(evs.via.array.size, 3U);

  const msgpack::object_array& s0 = evs.via.array.ptr[0].via.array;
  ASSERT_EQ(s0.size, 11U);
  EXPECT_EQ(s0.ptr[0].as<std::string>(), "BlockStored");
  EXPECT_EQ(s0.ptr[1].as<std::vector<uint64_t>>(), (std::vector<uint64_t>{0xFFFFFFFFFFFFFFF0ULL, 42}));
  EXPECT_TRUE(s0.ptr[2].is_nil());  // parent of a first block
  EXPECT_EQ(s0.ptr[3].as<std::vector<uint32_t>>(), (std::vector<uint32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s0.ptr[4].as<uint32_t>(), 3U);
  EXPECT_TRUE(s0.ptr[5].is_nil());  // lora_id
  EXPECT_EQ(s0.ptr[6].as<std::string>(), "CPU");
  EXPECT_TRUE(s0.ptr[7].is_nil());  // lora_name
  // extra_keys, one entry per block: the salt on the chain's first block only.
  const msgpack::object_array& x0 = s0.ptr[8].via.array;
  ASSERT_EQ(x0.size, 2U);
  EXPECT_EQ(x0.ptr[0].as<std::vector<std::string>>(), (std::vector<std::string>{"tenant-a"}));
  EXPECT_TRUE(x0.ptr[1].is_nil());
  EXPECT_EQ(s0.ptr[9].as<uint32_t>(), 0U);  // group_idx
  EXPECT_EQ(s0.ptr[10].as<std::string>(), "full_attention");

  const msgpack::object_array& s1 = evs.via.array.ptr[1].via.array;
  ASSERT_EQ(s1.size, 11U);
  EXPECT_EQ(s1.ptr[2].as<uint64_t>(), 42U);
  EXPECT_EQ(s1.ptr[3].via.array.size, 0U);
  EXPECT_EQ(s1.ptr[6].as<std::string>(), "STORAGE");
  EXPECT_EQ(s1.ptr[7].as<std::string>(), "adapter-a");
  // Not a first block: the LoRA name only, no salt.
  const msgpack::object_array& x1 = s1.ptr[8].via.array;
  ASSERT_EQ(x1.size, 1U);
  EXPECT_EQ(x1.ptr[0].as<std::vector<std::string>>(), (std::vector<std::string>{"adapter-a"}));

  const msgpack::object_array& r = evs.via.array.ptr[2].via.array;
  ASSERT_EQ(r.size, 4U);
  EXPECT_EQ(r.ptr[0].as<std::string>(), "BlockRemoved");
  EXPECT_EQ(r.ptr[1].as<std::vector<uint64_t>>(), (std::vector<uint64_t>{42, 7}));
  EXPECT_EQ(r.ptr[2].as<std::string>(), "CPU");
  EXPECT_EQ(r.ptr[3].as<uint32_t>(), 0U);  // group_idx
}

TEST(VllmEventEncoder, MapFormNamesEveryField) {
  const std::string payload = sample(VllmEncoding::kMap);
  const msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
  const msgpack::object& s0 = h.get().via.array.ptr[1].via.array.ptr[0];
  ASSERT_EQ(s0.type, msgpack::type::MAP);
  std::map<std::string, msgpack::object> fields;
  for (uint32_t i = 0; i < s0.via.map.size; ++i) {
    fields[s0.via.map.ptr[i].key.as<std::string>()] = s0.via.map.ptr[i].val;
  }
  EXPECT_EQ(fields.at("type").as<std::string>(), "BlockStored");
  EXPECT_EQ(fields.at("block_hashes").as<std::vector<uint64_t>>().size(), 2U);
  EXPECT_TRUE(fields.at("parent_block_hash").is_nil());
  EXPECT_EQ(fields.at("token_ids").as<std::vector<uint32_t>>().size(), 6U);
  EXPECT_EQ(fields.at("block_size").as<uint32_t>(), 3U);
  EXPECT_TRUE(fields.at("lora_id").is_nil());
  EXPECT_EQ(fields.at("medium").as<std::string>(), "CPU");
  // vLLM's msgspec decoder requires lora_name (it has no default), so it is there, nil.
  EXPECT_TRUE(fields.at("lora_name").is_nil());
  EXPECT_EQ(fields.at("extra_keys").via.array.size, 2U);
  EXPECT_EQ(fields.at("group_idx").as<uint32_t>(), 0U);
  EXPECT_EQ(fields.at("kv_cache_spec_kind").as<std::string>(), "full_attention");
  EXPECT_EQ(fields.size(), 11U);
}

TEST(VllmEventEncoder, BothFormsReadBackThroughTheIndexersDecoder) {
  for (VllmEncoding e : {VllmEncoding::kArray, VllmEncoding::kMap}) {
    auto batch = indexer::decode_vllm_batch(bytes(sample(e)));
    ASSERT_TRUE(batch.ok()) << batch.status().to_string();
    EXPECT_EQ(batch->malformed_events, 0U);
    EXPECT_EQ(batch->unknown_events, 0U);
    ASSERT_EQ(batch->events.size(), 3U);
    const auto& s0 = batch->events[0];
    EXPECT_EQ(s0.kind, indexer::VllmEvent::Kind::kStored);
    EXPECT_EQ(s0.hashes, (std::vector<uint64_t>{0xFFFFFFFFFFFFFFF0ULL, 42}));
    EXPECT_FALSE(s0.parent.has_value());
    EXPECT_EQ(s0.token_count, 6U);
    EXPECT_EQ(s0.block_size, 3U);
    EXPECT_EQ(s0.tier, Tier::kHost);
    const auto& s1 = batch->events[1];
    EXPECT_EQ(s1.parent, 42U);
    EXPECT_EQ(s1.tier, Tier::kSsd);
    EXPECT_EQ(s1.lora_name, "adapter-a");
    EXPECT_EQ(batch->events[2].kind, indexer::VllmEvent::Kind::kRemoved);
    EXPECT_EQ(batch->events[2].hashes, (std::vector<uint64_t>{42, 7}));
  }
}

TEST(VllmEventEncoder, AWriterIsEmptyAfterFinish) {
  VllmBatchWriter w(VllmEncoding::kArray);
  w.removed({{1}, Tier::kHost});
  (void)w.finish(1.0);
  EXPECT_EQ(w.events(), 0U);
  auto batch = indexer::decode_vllm_batch(bytes(w.finish(2.0)));
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(batch->events.empty());
  EXPECT_EQ(parse_vllm_encoding("map"), VllmEncoding::kMap);
  EXPECT_FALSE(parse_vllm_encoding("json").has_value());
  EXPECT_EQ(VllmMedia{}.of(Tier::kHbm), "GPU");
  // Media are the consumer's spelling (Dynamo's router reads CPU_PINNED and DISK).
  VllmBatchWriter dynamo(VllmEncoding::kArray, {"GPU", "CPU_PINNED", "DISK"});
  dynamo.removed({{1}, Tier::kHost});
  dynamo.removed({{2}, Tier::kSsd});
  const std::string raw = dynamo.finish(3.0);
  EXPECT_NE(raw.find("CPU_PINNED"), std::string::npos);
  EXPECT_NE(raw.find("DISK"), std::string::npos);
  auto read = indexer::decode_vllm_batch(bytes(raw));
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->events.size(), 2U);
  EXPECT_EQ(read->events[0].tier, Tier::kHost);
  EXPECT_EQ(read->events[1].tier, Tier::kSsd);
}

}  // namespace
}  // namespace kvtier::publisher
