#include "server/indexer/vllm_events.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <msgpack.hpp>
#include <string_view>

namespace kvtier::indexer {
namespace {

using msgpack::object;
namespace type = msgpack::type;

// A field a decoder cannot use: the event is skipped and counted.
struct Malformed {};

std::string_view as_text(const object& o) {
  if (o.type == type::STR) return {o.via.str.ptr, o.via.str.size};
  if (o.type == type::BIN) return {o.via.bin.ptr, o.via.bin.size};
  throw Malformed{};
}

bool is_nil(const object& o) { return o.type == type::NIL; }

uint64_t as_u64(const object& o) {
  if (o.type == type::POSITIVE_INTEGER) return o.via.u64;
  if (o.type == type::NEGATIVE_INTEGER) return static_cast<uint64_t>(o.via.i64);
  throw Malformed{};
}

// ExternalBlockHash: an int, or the digest's bytes (then vLLM's int form: last 8, big-endian).
uint64_t as_hash(const object& o) {
  if (o.type == type::POSITIVE_INTEGER || o.type == type::NEGATIVE_INTEGER) return as_u64(o);
  if (o.type == type::BIN || o.type == type::STR) {
    const std::string_view b = as_text(o);
    if (b.empty()) throw Malformed{};
    uint64_t v = 0;
    for (size_t i = b.size() > 8 ? b.size() - 8 : 0; i < b.size(); ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
    return v;
  }
  throw Malformed{};
}

std::vector<uint64_t> as_hashes(const object& o) {
  if (o.type != type::ARRAY) throw Malformed{};
  std::vector<uint64_t> out;
  out.reserve(o.via.array.size);
  for (uint32_t i = 0; i < o.via.array.size; ++i) out.push_back(as_hash(o.via.array.ptr[i]));
  return out;
}

Tier as_tier(const object& o) {
  if (is_nil(o)) return Tier::kHbm;
  std::string m(as_text(o));
  for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (m == "GPU" || m == "HBM" || m == "DEVICE") return Tier::kHbm;
  if (m == "CPU" || m == "HOST" || m == "CPU_PINNED") return Tier::kHost;
  if (m == "STORAGE" || m == "DISK" || m == "SSD" || m == "LOCALDISK") return Tier::kSsd;
  throw Malformed{};
}

// The fields of an event, by name, whichever encoding carried them.
class Fields {
 public:
  // Array form: fields in declaration order after the tag; trailing ones may be missing.
  Fields(const object& array, std::span<const std::string_view> order) {
    for (uint32_t i = 1; i < array.via.array.size && i - 1 < order.size(); ++i) {
      items_.emplace_back(order[i - 1], &array.via.array.ptr[i]);
    }
  }
  // Map form.
  explicit Fields(const object& map) {
    for (uint32_t i = 0; i < map.via.map.size; ++i) {
      const auto& kv = map.via.map.ptr[i];
      if (kv.key.type == type::STR) items_.emplace_back(as_text(kv.key), &kv.val);
    }
  }
  const object* get(std::string_view name) const {
    for (const auto& [n, o] : items_) {
      if (n == name) return o;
    }
    return nullptr;
  }

 private:
  std::vector<std::pair<std::string_view, const object*>> items_;
};

// Declaration order of the fields vLLM writes in the array form (newer versions append more; as
// of vLLM 0.32.0's vllm/distributed/kv_events.py).
constexpr std::array<std::string_view, 14> kStoredOrder = {"block_hashes",
                                                           "parent_block_hash",
                                                           "token_ids",
                                                           "block_size",
                                                           "lora_id",
                                                           "medium",
                                                           "lora_name",
                                                           "extra_keys",
                                                           "group_idx",
                                                           "kv_cache_spec_kind",
                                                           "kv_cache_spec_sliding_window",
                                                           "locality",
                                                           "ownership",
                                                           "session_id"};
constexpr std::array<std::string_view, 5> kRemovedOrder = {"block_hashes", "medium", "group_idx", "locality",
                                                           "ownership"};

VllmEvent decode_fields(std::string_view tag, const Fields& f) {
  VllmEvent e;
  if (tag == "AllBlocksCleared") {
    e.kind = VllmEvent::Kind::kAllCleared;
    return e;
  }
  const object* hashes = f.get("block_hashes");
  if (hashes == nullptr) throw Malformed{};
  e.hashes = as_hashes(*hashes);
  if (const object* m = f.get("medium"); m != nullptr) e.tier = as_tier(*m);
  if (const object* g = f.get("group_idx"); g != nullptr && !is_nil(*g))
    e.group_idx = static_cast<uint32_t>(as_u64(*g));
  if (tag == "BlockRemoved") {
    e.kind = VllmEvent::Kind::kRemoved;
    return e;
  }
  e.kind = VllmEvent::Kind::kStored;
  if (const object* p = f.get("parent_block_hash"); p != nullptr && !is_nil(*p)) e.parent = as_hash(*p);
  if (const object* t = f.get("token_ids"); t != nullptr) {
    if (t->type != type::ARRAY) throw Malformed{};
    e.token_count = t->via.array.size;
  }
  if (const object* b = f.get("block_size"); b != nullptr) e.block_size = static_cast<uint32_t>(as_u64(*b));
  if (const object* l = f.get("lora_name"); l != nullptr && !is_nil(*l)) e.lora_name = std::string(as_text(*l));
  if (const object* k = f.get("kv_cache_spec_kind"); k != nullptr && !is_nil(*k))
    e.spec_kind = std::string(as_text(*k));
  return e;
}

// One event; false when its type is unknown (counted by the caller), Malformed when unreadable.
bool decode_event(const object& o, VllmEvent& out) {
  std::string_view tag;
  if (o.type == type::ARRAY) {
    if (o.via.array.size == 0) throw Malformed{};
    tag = as_text(o.via.array.ptr[0]);
    if (tag != "BlockStored" && tag != "BlockRemoved" && tag != "AllBlocksCleared") return false;
    out = decode_fields(tag, Fields(o, tag == "BlockStored" ? std::span<const std::string_view>(kStoredOrder)
                                                            : std::span<const std::string_view>(kRemovedOrder)));
    return true;
  }
  if (o.type == type::MAP) {
    const Fields f(o);
    const object* t = f.get("type");
    if (t == nullptr) throw Malformed{};
    tag = as_text(*t);
    if (tag != "BlockStored" && tag != "BlockRemoved" && tag != "AllBlocksCleared") return false;
    out = decode_fields(tag, f);
    return true;
  }
  throw Malformed{};
}

}  // namespace

bool holds_prefix(std::string_view spec_kind) {
  return spec_kind.empty() || spec_kind == "full_attention" || spec_kind == "mla_attention" ||
         spec_kind == "sink_full_attention";
}

// vLLM 0.32's batches nest about seven deep (batch, events, event, extra_keys, a block's tuple of
// anything, a value inside it, its bytes); 16 leaves room for what a later version adds.
constexpr size_t kMaxDepth = 16;

Result<VllmEventBatch> decode_vllm_batch(std::span<const uint8_t> payload) {
  // msgpack-c allocates a container's declared size before reading its elements: a 5-byte header
  // claiming 2^32 entries would ask for tens of GB. Every element takes at least a byte (a map
  // entry two), so no honest payload declares more than that; deeper nesting than vLLM's is refused.
  const size_t n = payload.size();
  const msgpack::unpack_limit limits(/*array=*/n, /*map=*/n / 2, /*str=*/n, /*bin=*/n, /*ext=*/n, /*depth=*/kMaxDepth);
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(reinterpret_cast<const char*>(payload.data()), n, nullptr, nullptr, limits);
  } catch (const std::exception& e) {
    return Status::invalid_argument(fmt::format("not a msgpack value ({} bytes): {}", payload.size(), e.what()));
  }
  const object& root = handle.get();
  const object* ts = nullptr;
  const object* events = nullptr;
  const object* rank = nullptr;
  if (root.type == type::ARRAY && root.via.array.size >= 2) {
    ts = &root.via.array.ptr[0];
    events = &root.via.array.ptr[1];
    if (root.via.array.size >= 3) rank = &root.via.array.ptr[2];
  } else if (root.type == type::MAP) {
    const Fields f(root);
    ts = f.get("ts");
    events = f.get("events");
    rank = f.get("data_parallel_rank");
  }
  if (ts == nullptr || events == nullptr || events->type != type::ARRAY ||
      (ts->type != type::FLOAT64 && ts->type != type::FLOAT32 && ts->type != type::POSITIVE_INTEGER)) {
    return Status::invalid_argument("not a vLLM event batch: expected [ts, [events…], data_parallel_rank]");
  }
  VllmEventBatch batch;
  batch.ts = ts->type == type::POSITIVE_INTEGER ? static_cast<double>(ts->via.u64) : ts->via.f64;
  if (rank != nullptr && (rank->type == type::POSITIVE_INTEGER || rank->type == type::NEGATIVE_INTEGER)) {
    batch.data_parallel_rank = rank->via.i64;
  }
  batch.events.reserve(events->via.array.size);
  for (uint32_t i = 0; i < events->via.array.size; ++i) {
    VllmEvent e;
    try {
      if (decode_event(events->via.array.ptr[i], e)) {
        batch.events.push_back(std::move(e));
      } else {
        ++batch.unknown_events;
      }
    } catch (const Malformed&) {
      ++batch.malformed_events;
    } catch (const std::exception&) {
      ++batch.malformed_events;
    }
  }
  return batch;
}

}  // namespace kvtier::indexer
