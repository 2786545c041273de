#include "server/publisher/vllm_event_encoder.h"

#include <msgpack.hpp>

namespace kvtier::publisher {
namespace {

// msgpack::packer's output stream: appends to a string.
struct StringSink {
  std::string* out;
  void write(const char* data, size_t size) { out->append(data, size); }
};
using Packer = msgpack::packer<StringSink>;

void pack_str(Packer& p, std::string_view s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_hashes(Packer& p, const std::vector<uint64_t>& hashes) {
  p.pack_array(static_cast<uint32_t>(hashes.size()));
  for (uint64_t h : hashes) p.pack_uint64(h);
}

}  // namespace

std::optional<VllmEncoding> parse_vllm_encoding(std::string_view name) {
  if (name == "array") return VllmEncoding::kArray;
  if (name == "map") return VllmEncoding::kMap;
  return std::nullopt;
}

const std::string& VllmMedia::of(Tier tier) const {
  switch (tier) {
    case Tier::kHbm: return hbm;
    case Tier::kSsd: return ssd;
    case Tier::kHost: break;
  }
  return host;
}

void VllmBatchWriter::stored(const VllmStored& e) {
  StringSink sink{&events_};
  Packer p(sink);
  // Every field up to the group's kind, in vLLM's declaration order: the array form is positional,
  // and a field after lora_name needs lora_name's place kept.
  if (encoding_ == VllmEncoding::kArray) {
    p.pack_array(11);
    pack_str(p, "BlockStored");
  } else {
    p.pack_map(11);
    pack_str(p, "type");
    pack_str(p, "BlockStored");
  }
  const auto field = [&](std::string_view name) {
    if (encoding_ == VllmEncoding::kMap) pack_str(p, name);
  };
  const auto str_or_nil = [&](const std::string& s) {
    if (s.empty()) {
      p.pack_nil();
    } else {
      pack_str(p, s);
    }
  };
  field("block_hashes");
  pack_hashes(p, e.hashes);
  field("parent_block_hash");
  if (e.parent) {
    p.pack_uint64(*e.parent);
  } else {
    p.pack_nil();
  }
  field("token_ids");
  p.pack_array(static_cast<uint32_t>(e.tokens.size()));
  for (TokenId t : e.tokens) p.pack_uint32(t);
  field("block_size");
  p.pack_uint32(e.block_size);
  field("lora_id");
  p.pack_nil();  // deprecated in vLLM; consumers key by lora_name
  field("medium");
  pack_str(p, media_.of(e.tier));
  field("lora_name");
  str_or_nil(e.lora_name);
  // One entry per block, as vLLM publishes them untagged: the LoRA name, then the cache salt on
  // a chain's first block; nil for a block with neither.
  field("extra_keys");
  p.pack_array(static_cast<uint32_t>(e.hashes.size()));
  for (size_t i = 0; i < e.hashes.size(); ++i) {
    const bool salt = i == 0 && !e.parent && !e.cache_salt.empty();
    const uint32_t n = (e.lora_name.empty() ? 0 : 1) + (salt ? 1 : 0);
    if (n == 0) {
      p.pack_nil();
      continue;
    }
    p.pack_array(n);
    if (!e.lora_name.empty()) pack_str(p, e.lora_name);
    if (salt) pack_str(p, e.cache_salt);
  }
  field("group_idx");
  p.pack_uint32(kVllmGroupIdx);
  field("kv_cache_spec_kind");
  pack_str(p, kVllmSpecKind);
  ++count_;
}

void VllmBatchWriter::removed(const VllmRemoved& e) {
  StringSink sink{&events_};
  Packer p(sink);
  if (encoding_ == VllmEncoding::kArray) {
    p.pack_array(4);
    pack_str(p, "BlockRemoved");
  } else {
    p.pack_map(4);
    pack_str(p, "type");
    pack_str(p, "BlockRemoved");
    pack_str(p, "block_hashes");
  }
  pack_hashes(p, e.hashes);
  if (encoding_ == VllmEncoding::kMap) pack_str(p, "medium");
  pack_str(p, media_.of(e.tier));
  if (encoding_ == VllmEncoding::kMap) pack_str(p, "group_idx");
  p.pack_uint32(kVllmGroupIdx);
  ++count_;
}

std::string VllmBatchWriter::finish(double ts) {
  std::string out;
  out.reserve(events_.size() + 16);
  StringSink sink{&out};
  Packer p(sink);
  p.pack_array(3);
  p.pack_double(ts);
  p.pack_array(static_cast<uint32_t>(count_));
  out += events_;
  p.pack_nil();  // data_parallel_rank: a node is not a data-parallel rank
  events_.clear();
  count_ = 0;
  return out;
}

}  // namespace kvtier::publisher
