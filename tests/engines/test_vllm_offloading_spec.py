"""Unmodified vLLM (CPU build) with kvtier as the spec of vLLM's own OffloadingConnector
(spec_name KvtierOffloadingSpec, spec_module_path kvtier.vllm_offloading): the same questions as
the connector's tests. Two engine processes alive together share the node's host tier; a fresh
engine loads every whole block but the last, and its output is vLLM's; a shared prefix loads only
the shared blocks, another cache_salt nothing. With a real kvtierd, blocks the daemon demoted to SSD
come back through lookups that wait for them; an engine killed with SIGKILL mid-step leaves nothing
pinned and the next engine uses what it committed."""

from __future__ import annotations

import math
import os
import time

import pytest

from engine_support import (
    BLOCK,
    EngineJob,
    destroy_node,
    kvtier_settings,
    kvtierd_in_workdir,
    node_client,
    partly_on_ssd,
    prompt,
    remove,
    run_alone,
    run_engine,
    spec_keys,
    tokens,
    whole_blocks_before_last,
    workdir,
)

# vLLM with the OffloadingConnector configured decodes with slightly other numerics than vLLM
# without a connector even when it computes every token itself (its writer run below differs from
# vLLM alone by up to 0.054 in one log-prob, with the same tokens): the loaded bytes are checked
# exactly against that writer instead, and against vLLM alone within this.
LOGPROB_TOLERANCE_VS_ALONE = 0.1

PROMPTS = [tokens(100, seed=1), tokens(200, seed=2), tokens(333, seed=3)]
SHARED_BLOCKS = 3
VARIANT = PROMPTS[2][: SHARED_BLOCKS * BLOCK] + tokens(150, seed=4)
SALTED = tokens(170, seed=5)


def spec_job(model_dir: str, node: str, phases: list, **more) -> dict:
    return {"model": model_dir, "mode": "kvtier_offload", "kvtier": kvtier_settings(node, **more.pop("kvtier", {})), "phases": phases, **more}


@pytest.fixture(scope="module")
def runs(model_dir):
    path = workdir("kvtier-engine-spec-")
    node = f"spec{os.getpid()}"
    destroy_node(node)
    embedded = {"kvtier.create_if_missing": True, "kvtier.host_bytes": 256 << 20}
    signal_file = os.path.join(path, "a-stored")
    try:
        a = EngineJob(
            path,
            "spec-writer",
            spec_job(
                model_dir,
                node,
                [{"prompts": [prompt(p) for p in PROMPTS] + [prompt(SALTED, cache_salt="tenant-a")], "signal": signal_file}],
                kvtier=embedded,
            ),
            env={"VLLM_CPU_OMP_THREADS_BIND": "0"},
        )
        b = EngineJob(
            path,
            "spec-reader",
            spec_job(
                model_dir,
                node,
                [
                    {"wait_for": signal_file, "prompts": [prompt(p) for p in PROMPTS]},
                    {"reset_prefix_cache": True, "prompts": [prompt(VARIANT)]},
                    {"reset_prefix_cache": True, "prompts": [prompt(SALTED, cache_salt="tenant-a")]},
                    {"reset_prefix_cache": True, "prompts": [prompt(SALTED, cache_salt="tenant-b"), prompt(SALTED)]},
                ],
                kvtier=embedded,
            ),
            env={"VLLM_CPU_OMP_THREADS_BIND": "1"},
        )
        writer, reader = a.result(), b.result()
        client = node_client(node)
        pins = {i: client.pins(spec_keys(client, model_dir, p)) for i, p in enumerate(PROMPTS)}
        alone = run_alone(model_dir, [prompt(p) for p in PROMPTS + [VARIANT, SALTED]])
        yield writer, reader, alone, pins
    finally:
        destroy_node(node)
        remove(path)


def assert_same_output(got: dict, computed: dict | None, alone: dict) -> None:
    assert got["token_ids"] == alone["token_ids"], "greedy output differs from vLLM alone"
    for g, w in zip(got["logprobs"], alone["logprobs"]):
        assert math.isclose(g, w, abs_tol=LOGPROB_TOLERANCE_VS_ALONE), (got["logprobs"], alone["logprobs"])
    if computed is not None:
        assert got["logprobs"] == computed["logprobs"], "loaded KV gives other log-probs than KV computed here"


def test_the_writer_computes_and_stores_every_whole_prompt_block(runs):
    writer, _, alone, _ = runs
    phase = writer["phases"][0]
    assert all(r["num_cached_tokens"] == 0 for r in phase["requests"]), "the node was empty"
    assert phase["engine"]["kvtier_store_blocks"] == sum(len(p) // BLOCK for p in PROMPTS + [SALTED])
    reference = alone["phases"][0]["requests"]
    for got, want in zip(phase["requests"], reference[:3] + [reference[4]]):
        assert_same_output(got, None, want)


def test_a_fresh_engine_loads_every_whole_block_but_the_last(runs):
    writer, reader, alone, pins = runs
    phase = reader["phases"][0]
    expected = [whole_blocks_before_last(p) for p in PROMPTS]
    assert [r["num_cached_tokens"] for r in phase["requests"]] == expected
    assert phase["engine"]["kvtier_load_blocks"] == sum(expected) // BLOCK
    assert phase["engine"]["external_prefix_cache_hits"] == sum(expected), "vLLM counted the hits as external"
    assert phase["engine"]["prefix_cache_hits"] == 0, "nothing came from vLLM's own cache"
    for got, computed, want in zip(phase["requests"], writer["phases"][0]["requests"], alone["phases"][0]["requests"]):
        assert_same_output(got, computed, want)
    assert phase["engine"].get("kvtier_store_blocks", 0) == 0, "loaded blocks are not stored again"
    for i, p in enumerate(PROMPTS):
        assert pins[i] == [0] * (len(p) // BLOCK), "the engines' leases ended with their jobs"


def test_a_shared_prefix_with_another_suffix_loads_only_the_shared_blocks(runs):
    _, reader, alone, _ = runs
    phase = reader["phases"][1]
    before = reader["phases"][0]["engine"]["kvtier_load_blocks"]
    assert phase["requests"][0]["num_cached_tokens"] == SHARED_BLOCKS * BLOCK
    assert phase["engine"]["kvtier_load_blocks"] - before == SHARED_BLOCKS
    assert_same_output(phase["requests"][0], None, alone["phases"][0]["requests"][3])


def test_cache_salt_separates_tenants(runs):
    writer, reader, alone, _ = runs
    same_tenant, other_tenants = reader["phases"][2], reader["phases"][3]
    reference = alone["phases"][0]["requests"][4]
    assert same_tenant["requests"][0]["num_cached_tokens"] == whole_blocks_before_last(SALTED)
    assert_same_output(same_tenant["requests"][0], writer["phases"][0]["requests"][3], reference)
    assert [r["num_cached_tokens"] for r in other_tenants["requests"]] == [0, 0], "another salt, or none, hits nothing"
    assert other_tenants["engine"]["kvtier_load_blocks"] == same_tenant["engine"]["kvtier_load_blocks"]


# A host tier of 128 blocks of 64 KiB: the writer's 12 prompts of 20 blocks overflow it, so the
# first ones go to SSD.
HOST_BYTES = "8MiB"
WRITTEN = [tokens(20 * BLOCK + 7, seed=400 + i) for i in range(12)]


@pytest.fixture(scope="module")
def daemon(model_dir):
    with kvtierd_in_workdir("kvtier-engine-spec-kvtierd-", f"spec{os.getpid()}d", HOST_BYTES) as running:
        yield running


def test_blocks_demoted_to_ssd_come_back_and_are_used(daemon, model_dir):
    d, path = daemon
    writer = run_engine(path, "spec-ssd-writer", spec_job(model_dir, d.name, [{"prompts": [prompt(p, 2) for p in WRITTEN]}]))
    counters = writer["phases"][0]["engine"]
    # Stores are best effort: one that finds the arena full of pinned blocks is refused.
    assert counters["kvtier_store_blocks"] + counters.get("kvtier_store_refused", 0) + counters.get(
        "kvtier_store_not_admitted", 0
    ) == sum(len(p) // BLOCK for p in WRITTEN)
    assert counters["kvtier_store_blocks"] > 64, "more than the host tier holds was stored"

    client = node_client(d.name)
    i, keys = partly_on_ssd(client, WRITTEN, lambda t: spec_keys(client, model_dir, t))  # the daemon demoted it

    reader = run_engine(path, "spec-ssd-reader", spec_job(model_dir, d.name, [{"prompts": [prompt(WRITTEN[i], 2)]}]))
    phase = reader["phases"][0]
    assert phase["requests"][0]["num_cached_tokens"] == whole_blocks_before_last(WRITTEN[i])
    assert phase["engine"]["kvtier_ssd_blocks_requested"] > 0, "the lookups asked the daemon for the SSD blocks"
    assert phase["engine"]["kvtier_load_blocks"] == len(keys)
    assert phase["requests"][0]["token_ids"] == writer["phases"][0]["requests"][i]["token_ids"]
    assert phase["requests"][0]["logprobs"] == writer["phases"][0]["requests"][i]["logprobs"]
    assert client.pins(keys) == [0] * len(keys), "the reader's leases ended with its loads"


def test_an_engine_killed_mid_step_is_reclaimed_and_the_next_engine_works(daemon, model_dir):
    d, path = daemon
    client = node_client(d.name)
    prompts = [tokens(40 * BLOCK + 3, seed=300 + i) for i in range(6)]  # as the connector's test: one reference
    first_keys = spec_keys(client, model_dir, prompts[0])
    doomed = EngineJob(
        path, "spec-doomed", spec_job(model_dir, d.name, [{"batch": True, "prompts": [prompt(p, 400) for p in prompts]}])
    )
    # Kill it while it runs steps: once blocks of the batch are in the node, and decode goes on.
    deadline = time.monotonic() + 300
    while client.match(first_keys).overall == 0:
        assert doomed.proc.poll() is None, doomed.tail()
        assert time.monotonic() < deadline, "the doomed engine stored nothing"
        time.sleep(0.05)
    reclaimed = client.stats()["processes_reclaimed"]
    doomed.kill()

    client.maintain()  # what kvtierd's upkeep does on its own: reclaim the dead processes' slots
    assert client.stats()["processes_reclaimed"] > reclaimed, "the dead engine's process slots were reclaimed"
    for p in prompts:
        keys = spec_keys(client, model_dir, p)
        assert client.pins(keys) == [0] * len(keys)

    survivor = run_engine(path, "spec-after-kill", spec_job(model_dir, d.name, [{"prompts": [prompt(prompts[0], 4)]}]))
    alone = run_alone(model_dir, [prompt(prompts[0], 4)])  # the connector's kill test has the same prompts
    got = survivor["phases"][0]["requests"][0]
    assert got["num_cached_tokens"] > 0, "what the dead engine committed is used"
    assert got["token_ids"] == alone["phases"][0]["requests"][0]["token_ids"], "and it was whole, not half-written"
