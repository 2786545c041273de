// The C API over kvtier::Client. Errors become codes plus a thread-local message; nothing throws.
#include "kvtier/kvtier.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

#include "kvtier/client.h"

struct kvtier_client {
  std::unique_ptr<kvtier::Client> client;
};
struct kvtier_namespace {
  kvtier::NamespaceHandle handle;
};
struct kvtier_blocks {
  std::vector<kvtier::HostBlock> blocks;
};
struct kvtier_reservation {
  kvtier::PutReservation reservation;
};

namespace {

thread_local std::string last_error;

kvtier_code fail(kvtier_code code, std::string message) {
  last_error = std::move(message);
  return code;
}

kvtier_code to_code(const kvtier::Status& s) {
  if (s.ok()) return KVTIER_OK;
  last_error = s.to_string();
  return static_cast<kvtier_code>(static_cast<int>(s.code()));  // same numbering as StatusCode
}

kvtier::BlockKey key_of(kvtier_block_key k) { return {k.hi, k.lo}; }

std::span<const kvtier::BlockKey> keys_of(const kvtier_block_key* keys, size_t n) {
  static_assert(sizeof(kvtier_block_key) == sizeof(kvtier::BlockKey));
  return {reinterpret_cast<const kvtier::BlockKey*>(keys), n};
}

kvtier::ClientOptions options_of(const kvtier_client_options& o) {
  kvtier::ClientOptions c;
  c.node_name = o.node_name;
  if (o.shm_prefix != nullptr) c.shm_prefix = o.shm_prefix;
  c.create_if_missing = o.create_if_missing != 0;
  if (o.index_capacity != 0) c.index_capacity = o.index_capacity;
  if (o.host_bytes != 0) c.host_bytes = o.host_bytes;
  if (o.slab_bytes != 0) c.slab_bytes = o.slab_bytes;
  if (o.engine_id != nullptr) c.engine_id = o.engine_id;
  return c;
}

// Every counter the C API reports, whichever struct the caller asked with.
kvtier_counters counters_of(const kvtier::ClientStats& s) {
  kvtier_counters c{};
  c.size = sizeof(kvtier_counters);
  c.entries = s.index.entries;
  c.host_blocks = s.index.tier_entries[kvtier::tier_index(kvtier::Tier::kHost)];
  c.host_bytes = s.host_bytes;
  c.host_used_bytes = s.host_used_bytes;
  c.puts = s.puts;
  c.put_exists = s.put_exists;
  c.gets = s.gets;
  c.evictions = s.index.evictions;
  c.not_admitted = s.not_admitted;
  c.evictions_for_room = s.evictions_for_room;
  c.room_waits = s.room_waits;
  c.loads_requested = s.loads_requested;
  c.corrupt_dropped = s.corrupt_dropped;
  return c;
}

}  // namespace

static_assert(static_cast<int>(kvtier::StatusCode::kInternal) == KVTIER_INTERNAL, "C codes follow StatusCode");
static_assert(static_cast<int>(kvtier::StatusCode::kNotAdmitted) == KVTIER_NOT_ADMITTED, "C codes follow StatusCode");

extern "C" {

const char* kvtier_last_error(void) { return last_error.c_str(); }

kvtier_code kvtier_client_open(const kvtier_client_options* options, kvtier_client** out) {
  if (options == nullptr || out == nullptr || options->node_name == nullptr) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_client_open: options, options->node_name and out are required");
  }
  auto c = kvtier::Client::open(options_of(*options));
  if (!c.ok()) return to_code(c.status());
  *out = new kvtier_client{std::move(c).value()};
  return KVTIER_OK;
}

void kvtier_client_close(kvtier_client* client) { delete client; }

kvtier_code kvtier_node_destroy(const kvtier_client_options* options) {
  if (options == nullptr || options->node_name == nullptr) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_node_destroy: options->node_name is required");
  }
  return to_code(kvtier::Client::destroy_node(options_of(*options)));
}

kvtier_code kvtier_namespace_register(kvtier_client* client, const kvtier_namespace_spec* spec,
                                      kvtier_namespace** out) {
  if (client == nullptr || spec == nullptr || out == nullptr || spec->model_id == nullptr || spec->dtype == nullptr) {
    return fail(KVTIER_INVALID_ARGUMENT,
                "kvtier_namespace_register: client, spec (with model_id, dtype) and out are required");
  }
  auto dtype = kvtier::parse_dtype(spec->dtype);
  if (!dtype.ok()) return to_code(dtype.status());
  kvtier::NamespaceSpec s;
  s.model_id = spec->model_id;
  s.adapter_id = spec->adapter_id != nullptr ? spec->adapter_id : "";
  s.cache_salt = spec->cache_salt != nullptr ? spec->cache_salt : "";
  s.layout = {*dtype,           spec->block_tokens,
              spec->num_layers, spec->num_kv_heads,
              spec->head_dim,   spec->kv_planes != 0 ? spec->kv_planes : 2};
  auto h = client->client->register_namespace(s);
  if (!h.ok()) return to_code(h.status());
  *out = new kvtier_namespace{std::move(h).value()};
  return KVTIER_OK;
}

void kvtier_namespace_free(kvtier_namespace* ns) { delete ns; }

uint64_t kvtier_namespace_block_bytes(const kvtier_namespace* ns) {
  return ns != nullptr ? ns->handle.ns.bytes_per_block() : 0;
}

kvtier_block_key kvtier_namespace_root(const kvtier_namespace* ns) {
  if (ns == nullptr) return {0, 0};
  return {ns->handle.ns.root().hi, ns->handle.ns.root().lo};
}

size_t kvtier_keys(const kvtier_namespace* ns, const uint32_t* tokens, size_t n, kvtier_block_key* out, size_t cap) {
  if (ns == nullptr || (tokens == nullptr && n > 0)) return 0;
  const size_t total = kvtier::full_blocks(n, ns->handle.ns.block_tokens());
  if (out != nullptr && cap > 0) {
    std::span<kvtier::BlockKey> dst(reinterpret_cast<kvtier::BlockKey*>(out), std::min(cap, total));
    kvtier::compute_chain(ns->handle.ns, {tokens, n}, dst);
  }
  return total;
}

kvtier_code kvtier_match(kvtier_client* client, const kvtier_block_key* keys, size_t n, size_t* overall,
                         size_t per_tier[3]) {
  if (client == nullptr || (keys == nullptr && n > 0) || overall == nullptr) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_match: client, keys and overall are required");
  }
  const kvtier::PrefixMatch m = client->client->match(keys_of(keys, n));
  *overall = m.overall;
  if (per_tier != nullptr) {
    for (size_t t = 0; t < 3; ++t) per_tier[t] = m.per_tier[t];
  }
  return KVTIER_OK;
}

kvtier_code kvtier_acquire(kvtier_client* client, const kvtier_block_key* keys, size_t n, kvtier_blocks** out) {
  if (client == nullptr || (keys == nullptr && n > 0) || out == nullptr) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_acquire: client, keys and out are required");
  }
  auto blocks = client->client->acquire(keys_of(keys, n));
  if (!blocks.ok()) return to_code(blocks.status());
  *out = new kvtier_blocks{std::move(blocks).value()};
  return KVTIER_OK;
}

size_t kvtier_blocks_count(const kvtier_blocks* blocks) { return blocks != nullptr ? blocks->blocks.size() : 0; }

const uint8_t* kvtier_blocks_data(const kvtier_blocks* blocks, size_t i, size_t* size) {
  if (blocks == nullptr || i >= blocks->blocks.size()) return nullptr;
  if (size != nullptr) *size = blocks->blocks[i].size();
  return blocks->blocks[i].data();
}

void kvtier_blocks_release(kvtier_blocks* blocks) { delete blocks; }

kvtier_code kvtier_get_copy(kvtier_client* client, const kvtier_namespace* ns, const kvtier_block_key* keys, size_t n,
                            uint8_t* out, size_t out_bytes, size_t* copied) {
  if (client == nullptr || ns == nullptr || (keys == nullptr && n > 0) || (out == nullptr && out_bytes > 0) ||
      copied == nullptr) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_get_copy: client, ns, keys, out and copied are required");
  }
  auto r = client->client->get_copy(ns->handle, keys_of(keys, n), {out, out_bytes});
  if (!r.ok()) return to_code(r.status());
  *copied = *r;
  return KVTIER_OK;
}

kvtier_code kvtier_put(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key, kvtier_block_key parent,
                       const uint8_t* bytes, size_t size) {
  if (client == nullptr || ns == nullptr || bytes == nullptr) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_put: client, ns and bytes are required");
  }
  return to_code(client->client->put(ns->handle, key_of(key), key_of(parent), {bytes, size}));
}

kvtier_code kvtier_reserve(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key,
                           kvtier_block_key parent, kvtier_reservation** out) {
  return kvtier_reserve_with_tokens(client, ns, key, parent, nullptr, 0, out);
}

kvtier_code kvtier_put_with_tokens(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key,
                                   kvtier_block_key parent, const uint8_t* bytes, size_t size, const uint32_t* tokens,
                                   size_t num_tokens) {
  if (client == nullptr || ns == nullptr || bytes == nullptr || (tokens == nullptr && num_tokens != 0)) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_put_with_tokens: client, ns, bytes and tokens are required");
  }
  return to_code(client->client->put(ns->handle, key_of(key), key_of(parent), {bytes, size}, {tokens, num_tokens}));
}

kvtier_code kvtier_reserve_with_tokens(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key,
                                       kvtier_block_key parent, const uint32_t* tokens, size_t num_tokens,
                                       kvtier_reservation** out) {
  if (client == nullptr || ns == nullptr || out == nullptr || (tokens == nullptr && num_tokens != 0)) {
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_reserve: client, ns and out are required");
  }
  auto r = client->client->reserve(ns->handle, key_of(key), key_of(parent), {tokens, num_tokens});
  if (!r.ok()) return to_code(r.status());
  *out = new kvtier_reservation{std::move(r).value()};
  return KVTIER_OK;
}

uint8_t* kvtier_reservation_data(kvtier_reservation* r, size_t* size) {
  if (r == nullptr || r->reservation.exists()) {
    if (size != nullptr) *size = 0;
    return nullptr;
  }
  if (size != nullptr) *size = r->reservation.size();
  return r->reservation.data();
}

kvtier_code kvtier_reservation_commit(kvtier_reservation* r) {
  if (r == nullptr) return fail(KVTIER_INVALID_ARGUMENT, "kvtier_reservation_commit: reservation is NULL");
  const kvtier::Status s = std::move(r->reservation).commit();
  delete r;
  return to_code(s);
}

void kvtier_reservation_abort(kvtier_reservation* r) { delete r; }

kvtier_code kvtier_maintain(kvtier_client* client) {
  if (client == nullptr) return fail(KVTIER_INVALID_ARGUMENT, "kvtier_maintain: client is NULL");
  return to_code(client->client->maintain());
}

kvtier_code kvtier_client_stats(kvtier_client* client, kvtier_stats* out) {
  if (client == nullptr || out == nullptr)
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_client_stats: client and out are required");
  const kvtier_counters c = counters_of(client->client->stats());
  *out = kvtier_stats{c.entries, c.host_blocks, c.host_bytes, c.host_used_bytes,
                      c.puts,    c.put_exists,  c.gets,       c.evictions};
  return KVTIER_OK;
}

kvtier_code kvtier_client_counters(kvtier_client* client, kvtier_counters* out) {
  if (client == nullptr || out == nullptr)
    return fail(KVTIER_INVALID_ARGUMENT, "kvtier_client_counters: client and out are required");
  constexpr size_t kFirstField = offsetof(kvtier_counters, entries);
  if (out->size < kFirstField + sizeof(uint64_t)) {
    return fail(KVTIER_INVALID_ARGUMENT,
                "kvtier_client_counters: set out->size to sizeof(kvtier_counters), got " + std::to_string(out->size));
  }
  const kvtier_counters all = counters_of(client->client->stats());
  // Whole fields only, as many as both sides know: the caller's struct may be older or newer.
  const size_t filled = std::min<uint64_t>(out->size, sizeof(kvtier_counters)) / sizeof(uint64_t) * sizeof(uint64_t);
  std::memcpy(reinterpret_cast<char*>(out) + kFirstField, reinterpret_cast<const char*>(&all) + kFirstField,
              filled - kFirstField);
  out->size = filled;
  return KVTIER_OK;
}

}  // extern "C"
