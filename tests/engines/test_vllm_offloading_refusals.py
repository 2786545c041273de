"""kvtier's offloading spec refuses what it does not support with a clear error, given vLLM's own
OffloadingConfig (vllm/v1/kv_offload/config.py, 0.32.0): several KV-cache groups, offload blocks of
several vLLM blocks, more than one worker, a block size it cannot lay out; and a load of a block its
lookup never leased."""

from __future__ import annotations

import os

import pytest

from engine_support import SHM_PREFIX, destroy_node


@pytest.fixture
def node():
    name = f"refuse{os.getpid()}"
    destroy_node(name)
    yield name
    destroy_node(name)


def config(node: str, groups: int = 1, world_size: int = 1, blocks_per_chunk: int = 1, block_bytes: int = 2 * 32 * 256):
    from vllm.v1.kv_offload.config import (
        OffloadingCacheConfig,
        OffloadingConfig,
        OffloadingGroupConfig,
        OffloadingModelConfig,
        OffloadingParallelConfig,
    )

    return OffloadingConfig(
        groups=tuple(OffloadingGroupConfig(tokens_per_block=32, layer_names=("l0", "l1"), group_id=g) for g in range(groups)),
        worker_kv_bytes_per_block=block_bytes,
        enable_kv_cache_events=False,
        extra_config={
            "kvtier.node_name": node,
            "kvtier.shm_prefix": SHM_PREFIX,
            "kvtier.create_if_missing": True,
            "kvtier.host_bytes": 64 << 20,
        },
        engine_id="engine-0",
        model=OffloadingModelConfig(name="kvtier-test/refusals", dtype="bfloat16"),
        cache=OffloadingCacheConfig(tokens_per_hash=32, blocks_per_chunk=blocks_per_chunk),
        parallel=OffloadingParallelConfig(
            rank=0,
            world_size=world_size,
            tp_size=world_size,
            pp_size=1,
            pcp_size=1,
            dcp_size=1,
            data_parallel_index=0,
            data_parallel_size=1,
            data_parallel_rank_local=None,
            is_parallelism_agnostic=True,
        ),
    )


def test_unsupported_setups_are_refused_at_start(node):
    from kvtier.vllm_offloading import KvtierOffloadingSpec

    with pytest.raises(ValueError, match="2 KV-cache groups"):
        KvtierOffloadingSpec(config(node, groups=2))
    with pytest.raises(ValueError, match="one vLLM block"):
        KvtierOffloadingSpec(config(node, blocks_per_chunk=2))
    with pytest.raises(ValueError, match="one worker only"):
        KvtierOffloadingSpec(config(node, world_size=2))
    with pytest.raises(ValueError, match="do not split into 32 tokens"):
        KvtierOffloadingSpec(config(node, block_bytes=32 * 65537 * 2 + 1)).get_manager()


def test_a_load_of_a_block_lookup_never_leased_is_an_error(node):
    from kvtier.vllm_offloading import KvtierOffloadingSpec
    from vllm.v1.kv_offload.base import LookupResult, ReqContext, make_offload_key

    manager = KvtierOffloadingSpec(config(node)).get_manager()
    ctx = ReqContext(req_id="r")
    manager.on_new_request(ctx)
    key = make_offload_key(bytes(range(32)), 0)
    assert manager.lookup(key, ctx) == LookupResult.MISS  # not in the node, no daemon for an SSD tier
    with pytest.raises(RuntimeError, match="not leased by lookup"):
        manager.prepare_load([key], ctx)
