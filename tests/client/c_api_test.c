/* The C API from C: open an embedded node, put, read in place and by copy, reserve/commit,
 * and bad input answered with codes and messages. Exits non-zero on the first failed check. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvtier/kvtier.h"

static int failures = 0, checks = 0;
#define CHECK(cond)                                                                                      \
  do {                                                                                                   \
    ++checks;                                                                                            \
    if (!(cond)) {                                                                                       \
      fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, kvtier_last_error()); \
      ++failures;                                                                                        \
    }                                                                                                    \
  } while (0)

int main(void) {
  char node[64];
  snprintf(node, sizeof node, "c-api-%d", (int)getpid());
  kvtier_client_options opts = {node, NULL, 1, 4096, 16u << 20, 4u << 20, "c-engine"};
  kvtier_client* client = NULL;
  CHECK(kvtier_client_open(&opts, &client) == KVTIER_OK);

  kvtier_namespace_spec spec = {"c/model", NULL, "tenant-c", "bf16", 16, 2, 2, 64, 0};
  kvtier_namespace* ns = NULL;
  CHECK(kvtier_namespace_register(client, &spec, &ns) == KVTIER_OK);
  const size_t block = (size_t)kvtier_namespace_block_bytes(ns);
  CHECK(block == 16384);

  uint32_t tokens[16 * 3 + 5];
  for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; ++i) tokens[i] = (uint32_t)(i * 7);
  kvtier_block_key keys[3];
  CHECK(kvtier_keys(ns, tokens, sizeof tokens / sizeof tokens[0], keys, 3) == 3);

  unsigned char* bytes = malloc(block);
  kvtier_block_key parent = kvtier_namespace_root(ns);
  for (int k = 0; k < 2; ++k) {
    memset(bytes, 'a' + k, block);
    CHECK(kvtier_put(client, ns, keys[k], parent, bytes, block) == KVTIER_OK);
    parent = keys[k];
  }
  /* The third block through a zero-copy reservation. */
  kvtier_reservation* r = NULL;
  CHECK(kvtier_reserve(client, ns, keys[2], keys[1], &r) == KVTIER_OK);
  size_t size = 0;
  unsigned char* dst = kvtier_reservation_data(r, &size);
  CHECK(dst != NULL && size == block);
  if (dst != NULL) memset(dst, 'c', size);
  CHECK(kvtier_reservation_commit(r) == KVTIER_OK);

  size_t overall = 0, per_tier[3] = {0, 0, 0};
  CHECK(kvtier_match(client, keys, 3, &overall, per_tier) == KVTIER_OK);
  CHECK(overall == 3 && per_tier[KVTIER_TIER_HOST] == 3);

  kvtier_blocks* blocks = NULL;
  CHECK(kvtier_acquire(client, keys, 3, &blocks) == KVTIER_OK);
  CHECK(kvtier_blocks_count(blocks) == 3);
  for (size_t i = 0; i < kvtier_blocks_count(blocks); ++i) {
    const unsigned char* data = kvtier_blocks_data(blocks, i, &size);
    CHECK(data != NULL && size == block && data[0] == 'a' + i && data[block - 1] == 'a' + i);
  }
  kvtier_blocks_release(blocks);

  unsigned char* out = malloc(3 * block);
  size_t copied = 0;
  CHECK(kvtier_get_copy(client, ns, keys, 3, out, 3 * block, &copied) == KVTIER_OK);
  CHECK(copied == 3 && out[2 * block] == 'c');

  /* Bad input: codes and messages, no crash. */
  kvtier_block_key fresh = {1, 2};
  CHECK(kvtier_put(client, ns, fresh, parent, bytes, 5) == KVTIER_INVALID_ARGUMENT);
  CHECK(strstr(kvtier_last_error(), "16384 bytes") != NULL);
  CHECK(kvtier_put(NULL, ns, fresh, parent, bytes, block) == KVTIER_INVALID_ARGUMENT);
  /* Token ids go with a block only as a whole block's worth. */
  uint32_t block_tokens[16] = {0};
  CHECK(kvtier_put_with_tokens(client, ns, fresh, parent, bytes, block, block_tokens, 15) == KVTIER_INVALID_ARGUMENT);
  CHECK(strstr(kvtier_last_error(), "16 tokens") != NULL);
  CHECK(kvtier_put_with_tokens(client, ns, fresh, parent, bytes, block, NULL, 16) == KVTIER_INVALID_ARGUMENT);
  CHECK(kvtier_put_with_tokens(client, ns, fresh, parent, bytes, block, block_tokens, 16) == KVTIER_OK);
  kvtier_namespace_spec bad = spec;
  bad.dtype = "fp64";
  kvtier_namespace* none = NULL;
  CHECK(kvtier_namespace_register(client, &bad, &none) == KVTIER_INVALID_ARGUMENT);
  kvtier_client_options missing = {"c-api-no-such-node", NULL, 0, 0, 0, 0, NULL};
  kvtier_client* nobody = NULL;
  CHECK(kvtier_client_open(&missing, &nobody) == KVTIER_NOT_FOUND);

  kvtier_stats stats;
  CHECK(kvtier_client_stats(client, &stats) == KVTIER_OK);
  CHECK(stats.host_blocks == 4 && stats.puts == 4); /* three chain blocks and the one with tokens */

  /* The counters that grow: the same figures, and exactly as many fields as the caller's size. */
  kvtier_counters counters;
  memset(&counters, 0xAB, sizeof(counters));
  counters.size = sizeof(counters);
  CHECK(kvtier_client_counters(client, &counters) == KVTIER_OK);
  CHECK(counters.size == sizeof(counters));
  CHECK(counters.entries == stats.entries && counters.host_blocks == 4 && counters.puts == 4);
  CHECK(counters.not_admitted == 0 && counters.room_waits == 0 && counters.corrupt_dropped == 0);
  kvtier_counters older; /* a caller built when the struct ended at `evictions` */
  memset(&older, 0xAB, sizeof(older));
  older.size = offsetof(kvtier_counters, not_admitted) + 3; /* a torn last field is not written */
  CHECK(kvtier_client_counters(client, &older) == KVTIER_OK);
  CHECK(older.size == offsetof(kvtier_counters, not_admitted));
  CHECK(older.puts == 4 && older.evictions == stats.evictions);
  CHECK(older.not_admitted == 0xABABABABABABABABULL); /* untouched */
  kvtier_counters tiny;
  tiny.size = 4;
  CHECK(kvtier_client_counters(client, &tiny) == KVTIER_INVALID_ARGUMENT);
  CHECK(strstr(kvtier_last_error(), "sizeof(kvtier_counters)") != NULL);
  CHECK(kvtier_client_counters(client, NULL) == KVTIER_INVALID_ARGUMENT);

  free(out);
  free(bytes);
  kvtier_namespace_free(ns);
  kvtier_client_close(client);
  CHECK(kvtier_node_destroy(&opts) == KVTIER_OK);
  printf("c_api_test: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
