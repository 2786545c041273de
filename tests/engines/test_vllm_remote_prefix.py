"""Unmodified vLLM (CPU build) with kvtier's connector loading a prefix another node holds: an engine
on node B computes a prompt and saves its blocks into B's host tier; an engine on node A (its own
kvtierd, nothing cached) is sent the same prompt with kv_transfer_params naming B, as a scheduler
that scored B's blocks would send it. A's connector reads the blocks out of B's arena over UCX
(RemoteReader), puts them into A's host tier, and vLLM loads them instead of computing them: the
outputs are vLLM's own without any cache."""

from __future__ import annotations

import os

import pytest

from engine_support import (
    BLOCK,
    Kvtierd,
    kvtier_settings,
    namespace,
    node_client,
    prompt,
    remove,
    run_alone,
    run_engine,
    tokens,
    whole_blocks_before_last,
    workdir,
)

PROMPT = tokens(12 * BLOCK + 9, seed=900)


@pytest.fixture(scope="module")
def two_nodes():
    path = workdir("kvtier-engine-remote-")
    a = Kvtierd(path, f"nodea{os.getpid()}")
    b = Kvtierd(path, f"nodeb{os.getpid()}")
    try:
        yield a, b, path
    finally:
        a.stop()
        b.stop()
        remove(path)


def job(model_dir: str, node: str, prompts: list) -> dict:
    return {"model": model_dir, "mode": "kvtier", "kvtier": kvtier_settings(node), "phases": [{"prompts": prompts}]}


def test_a_prefix_on_another_node_is_read_over_ucx_and_used(two_nodes, model_dir):
    a, b, path = two_nodes
    writer = run_engine(path, "on-b", job(model_dir, b.name, [prompt(PROMPT, 4)]))
    assert writer["phases"][0]["connector"]["save_blocks"] == len(PROMPT) // BLOCK

    client_a = node_client(a.name)
    keys = client_a.keys(namespace(client_a, model_dir), PROMPT)
    assert client_a.match(keys).overall == 0, "node A holds nothing of the prompt"

    asked = prompt(PROMPT, 4)
    asked["kv_transfer_params"] = {"kvtier_remote_node": b.address}
    reader = run_engine(path, "on-a", job(model_dir, a.name, [asked]))
    got = reader["phases"][0]["requests"][0]
    assert got["num_cached_tokens"] == whole_blocks_before_last(PROMPT), "the prefix came from node B"
    alone = run_alone(model_dir, [prompt(PROMPT, 4)])
    assert got["token_ids"] == alone["phases"][0]["requests"][0]["token_ids"], "and it was B's KV, whole"
    assert client_a.match(keys).host >= whole_blocks_before_last(PROMPT) // BLOCK, "A's host tier holds it now"
    assert b.metric("kvtier_blocks_leased_total") == whole_blocks_before_last(PROMPT) // BLOCK, "read over UCX"
    assert b.metric("kvtier_read_leases_open") == 0, "and the lease released"
