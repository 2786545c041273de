"""Unmodified vLLM (CPU build) with kvtier's connector: two engine processes on one node, both
alive. Engine A serves prompts and saves their blocks; engine B, which never saw them, loads every
whole block but the last from the node's host tier, and its greedy output equals vLLM without the
connector token for token. A shared prefix with another suffix loads only the shared blocks; a
request under another cache_salt loads nothing."""

from __future__ import annotations

import math
import os

import pytest

from engine_support import (
    BLOCK,
    EngineJob,
    destroy_node,
    kvtier_settings,
    prompt,
    remove,
    run_alone,
    tokens,
    whole_blocks_before_last,
    workdir,
)

# Log-probs of the same greedy tokens, engine with loaded KV vs vLLM computing everything: the
# loaded bytes are the bytes vLLM wrote, but attention over a cached prefix runs other kernels
# (chunked vs whole prefill), so bf16 rounding differs a little.
LOGPROB_TOLERANCE = 0.05

PROMPTS = [tokens(100, seed=1), tokens(200, seed=2), tokens(333, seed=3)]
SHARED_BLOCKS = 3  # the suffix variant keeps the first 3 blocks of PROMPTS[2]
VARIANT = PROMPTS[2][: SHARED_BLOCKS * BLOCK] + tokens(150, seed=4)
SALTED = tokens(170, seed=5)


@pytest.fixture(scope="module")
def runs(model_dir):
    path = workdir("kvtier-engine-share-")
    node = f"share{os.getpid()}"
    destroy_node(node)
    settings = kvtier_settings(node, **{"kvtier.create_if_missing": True, "kvtier.host_bytes": 256 << 20})
    signal_file = os.path.join(path, "a-saved")
    base = {"model": model_dir, "kv_cache_bytes": 64 << 20}
    try:
        # Both engines start together; B's first requests wait until A has served and saved.
        a = EngineJob(
            path,
            "writer",
            {
                **base,
                "mode": "kvtier",
                "kvtier": settings,
                "phases": [
                    {"prompts": [prompt(p) for p in PROMPTS] + [prompt(SALTED, cache_salt="tenant-a")], "signal": signal_file}
                ],
            },
            env={"VLLM_CPU_OMP_THREADS_BIND": "0"},
        )
        b = EngineJob(
            path,
            "reader",
            {
                **base,
                "mode": "kvtier",
                "kvtier": settings,
                "phases": [
                    {"wait_for": signal_file, "prompts": [prompt(p) for p in PROMPTS]},
                    {"reset_prefix_cache": True, "prompts": [prompt(VARIANT)]},
                    {"reset_prefix_cache": True, "prompts": [prompt(SALTED, cache_salt="tenant-a")]},
                    {"reset_prefix_cache": True, "prompts": [prompt(SALTED, cache_salt="tenant-b"), prompt(SALTED)]},
                ],
            },
            env={"VLLM_CPU_OMP_THREADS_BIND": "1"},
        )
        writer, reader = a.result(), b.result()
        alone = run_alone(model_dir, [prompt(p) for p in PROMPTS + [VARIANT, SALTED]])
        yield writer, reader, alone
    finally:
        destroy_node(node)
        remove(path)


def assert_same_output(got: dict, want: dict) -> None:
    assert got["token_ids"] == want["token_ids"], "greedy output differs from vLLM alone"
    for g, w in zip(got["logprobs"], want["logprobs"]):
        assert math.isclose(g, w, abs_tol=LOGPROB_TOLERANCE), (got["logprobs"], want["logprobs"])


def test_the_writer_computes_and_saves_every_whole_block(runs):
    writer, _, alone = runs
    phase = writer["phases"][0]
    assert all(r["num_cached_tokens"] == 0 for r in phase["requests"]), "the node was empty"
    whole = sum(len(p) // BLOCK for p in PROMPTS + [SALTED])
    assert phase["connector"]["save_blocks"] == whole
    reference = alone["phases"][0]["requests"]
    for got, want in zip(phase["requests"], reference[:3] + [reference[4]]):
        assert_same_output(got, want)


def test_a_fresh_engine_loads_every_whole_block_but_the_last(runs):
    _, reader, alone = runs
    phase = reader["phases"][0]
    expected = [whole_blocks_before_last(p) for p in PROMPTS]
    assert [r["num_cached_tokens"] for r in phase["requests"]] == expected
    assert phase["connector"]["load_blocks"] == sum(expected) // BLOCK
    assert phase["connector"]["load_errors"] == 0
    assert phase["engine"]["external_prefix_cache_hits"] == sum(expected), "vLLM counted the hits as external"
    assert phase["engine"]["prefix_cache_hits"] == 0, "nothing came from vLLM's own cache"
    for got, want in zip(phase["requests"], alone["phases"][0]["requests"]):
        assert_same_output(got, want)
    assert phase["connector"]["save_existing"] == 0, "loaded blocks are not offered back to the node"


def test_a_shared_prefix_with_another_suffix_loads_only_the_shared_blocks(runs):
    _, reader, alone = runs
    phase = reader["phases"][1]
    before = reader["phases"][0]["connector"]["load_blocks"]
    assert phase["requests"][0]["num_cached_tokens"] == SHARED_BLOCKS * BLOCK
    assert phase["connector"]["load_blocks"] - before == SHARED_BLOCKS
    assert_same_output(phase["requests"][0], alone["phases"][0]["requests"][3])


def test_cache_salt_separates_tenants(runs):
    _, reader, alone = runs
    same_tenant, other_tenants = reader["phases"][2], reader["phases"][3]
    reference = alone["phases"][0]["requests"][4]
    assert same_tenant["requests"][0]["num_cached_tokens"] == whole_blocks_before_last(SALTED)
    assert_same_output(same_tenant["requests"][0], reference)
    assert [r["num_cached_tokens"] for r in other_tenants["requests"]] == [0, 0], "another salt, or none, hits nothing"
    assert other_tenants["connector"]["load_blocks"] == same_tenant["connector"]["load_blocks"]
    for got in other_tenants["requests"]:
        assert_same_output(got, reference)
