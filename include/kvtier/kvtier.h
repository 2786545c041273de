/* kvtier C API: the client library for engines not written in C++ (docs/client.md).
 *
 * Every fallible call returns a kvtier_code; on error kvtier_last_error() describes it (per
 * thread, valid until the thread's next kvtier call). Handles are opaque; each *_open / *_register
 * / acquire / reserve has a matching close / free / release / commit-or-abort. No call throws,
 * and none crashes on bad input: NULL arguments are KVTIER_INVALID_ARGUMENT. */
#ifndef KVTIER_KVTIER_H_
#define KVTIER_KVTIER_H_

/* A C header, with C's conventions (typedefs, <stdint.h>, UPPER_CASE codes); the C++ style checks
 * do not apply. NOLINTBEGIN */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvtier_code {
  KVTIER_OK = 0,
  KVTIER_INVALID_ARGUMENT = 1,
  KVTIER_NOT_FOUND = 2,
  KVTIER_ALREADY_EXISTS = 3,
  KVTIER_RESOURCE_EXHAUSTED = 4,
  KVTIER_VERSION_MISMATCH = 5,
  KVTIER_CORRUPTION = 6,
  KVTIER_IO_ERROR = 7,
  KVTIER_UNAVAILABLE = 8,
  KVTIER_FAILED_PRECONDITION = 9,
  KVTIER_INTERNAL = 10,
  KVTIER_NOT_ADMITTED = 11 /* a put the node chose not to cache: the engine keeps its own copy */
} kvtier_code;

typedef enum kvtier_tier { KVTIER_TIER_HBM = 0, KVTIER_TIER_HOST = 1, KVTIER_TIER_SSD = 2 } kvtier_tier;

typedef struct kvtier_block_key {
  uint64_t hi, lo; /* canonical form: hi then lo, each big-endian (docs/keys.md) */
} kvtier_block_key;

typedef struct kvtier_client kvtier_client;
typedef struct kvtier_namespace kvtier_namespace;
typedef struct kvtier_blocks kvtier_blocks;
typedef struct kvtier_reservation kvtier_reservation;

typedef struct kvtier_client_options {
  const char* node_name;                           /* required */
  const char* shm_prefix;                          /* NULL: "kvtier" */
  int create_if_missing;                           /* embedded use: create the node's segments with the sizes below */
  uint64_t index_capacity, host_bytes, slab_bytes; /* 0: defaults (1M blocks, 1 GiB, 32 MiB) */
  const char* engine_id; /* NULL: none; what a node publishing vLLM-format events names this engine */
} kvtier_client_options;

typedef struct kvtier_namespace_spec {
  const char* model_id;   /* required */
  const char* adapter_id; /* NULL or "" for the base model */
  const char* cache_salt; /* NULL or "" for no salt */
  const char* dtype;      /* "fp16", "bf16", "fp32", "fp8_e4m3", "fp8_e5m2", "int8" */
  uint32_t block_tokens, num_layers, num_kv_heads, head_dim, kv_planes; /* kv_planes 0: 2 */
} kvtier_namespace_spec;

typedef struct kvtier_stats {
  uint64_t entries, host_blocks, host_bytes, host_used_bytes, puts, put_exists, gets, evictions;
} kvtier_stats;

/* Every counter of kvtier_stats and those added since, in a struct that only grows at its end.
 * Set `size` to sizeof(kvtier_counters) before kvtier_client_counters: the library fills the
 * fields that fit and sets `size` to the bytes it filled, so a program built against an older or
 * newer header than the library's still gets exactly the fields both know. */
typedef struct kvtier_counters {
  uint64_t size;
  uint64_t entries, host_blocks, host_bytes, host_used_bytes, puts, put_exists, gets, evictions;
  uint64_t not_admitted;       /* puts the node's admission refused (KVTIER_NOT_ADMITTED) */
  uint64_t evictions_for_room; /* blocks this process evicted to make room for its puts */
  uint64_t room_waits;         /* puts that found the arena full and got room from the daemon */
  uint64_t loads_requested;    /* blocks asked of the node daemon (SSD loads) */
  uint64_t corrupt_dropped;    /* blocks found damaged and dropped */
} kvtier_counters;

const char* kvtier_last_error(void);

kvtier_code kvtier_client_open(const kvtier_client_options* options, kvtier_client** out);
void kvtier_client_close(kvtier_client* client);
kvtier_code kvtier_node_destroy(const kvtier_client_options* options);

kvtier_code kvtier_namespace_register(kvtier_client* client, const kvtier_namespace_spec* spec, kvtier_namespace** out);
void kvtier_namespace_free(kvtier_namespace* ns);
uint64_t kvtier_namespace_block_bytes(const kvtier_namespace* ns);
kvtier_block_key kvtier_namespace_root(const kvtier_namespace* ns);

/* Keys of the full blocks of tokens[0..n); writes at most cap keys; returns how many there are. */
size_t kvtier_keys(const kvtier_namespace* ns, const uint32_t* tokens, size_t n, kvtier_block_key* out, size_t cap);

/* Longest resident prefix: overall and per tier (indexed by kvtier_tier). */
kvtier_code kvtier_match(kvtier_client* client, const kvtier_block_key* keys, size_t n, size_t* overall,
                         size_t per_tier[3]);

/* Pins the host-resident prefix; read each block in place until kvtier_blocks_release. */
kvtier_code kvtier_acquire(kvtier_client* client, const kvtier_block_key* keys, size_t n, kvtier_blocks** out);
size_t kvtier_blocks_count(const kvtier_blocks* blocks);
const uint8_t* kvtier_blocks_data(const kvtier_blocks* blocks, size_t i, size_t* size);
void kvtier_blocks_release(kvtier_blocks* blocks);

/* Copies the host-resident prefix into out (as many whole blocks as fit); *copied = blocks. */
kvtier_code kvtier_get_copy(kvtier_client* client, const kvtier_namespace* ns, const kvtier_block_key* keys, size_t n,
                            uint8_t* out, size_t out_bytes, size_t* copied);

/* Writes a block: size must be the namespace's block size. A block already cached is a no-op. */
kvtier_code kvtier_put(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key, kvtier_block_key parent,
                       const uint8_t* bytes, size_t size);
/* Zero-copy put: reserve, fill kvtier_reservation_data, then commit (or abort). data is NULL when
 * the block is already cached (commit is then a no-op). Commit and abort free the handle. */
kvtier_code kvtier_reserve(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key,
                           kvtier_block_key parent, kvtier_reservation** out);
/* The same with the block's token ids (exactly the namespace's block_tokens of them), which a node
 * publishing vLLM-format events sends with the block (docs/scheduler.md). */
kvtier_code kvtier_put_with_tokens(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key,
                                   kvtier_block_key parent, const uint8_t* bytes, size_t size, const uint32_t* tokens,
                                   size_t num_tokens);
kvtier_code kvtier_reserve_with_tokens(kvtier_client* client, const kvtier_namespace* ns, kvtier_block_key key,
                                       kvtier_block_key parent, const uint32_t* tokens, size_t num_tokens,
                                       kvtier_reservation** out);
uint8_t* kvtier_reservation_data(kvtier_reservation* r, size_t* size);
kvtier_code kvtier_reservation_commit(kvtier_reservation* r);
void kvtier_reservation_abort(kvtier_reservation* r);

kvtier_code kvtier_maintain(kvtier_client* client);
kvtier_code kvtier_client_stats(kvtier_client* client, kvtier_stats* out);
/* The client's counters (kvtier_counters: set out->size first). */
kvtier_code kvtier_client_counters(kvtier_client* client, kvtier_counters* out);

#ifdef __cplusplus
}
#endif

/* NOLINTEND */
#endif /* KVTIER_KVTIER_H_ */
