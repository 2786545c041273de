"""Unmodified vLLM (CPU build) with kvtier's connector against a real kvtierd: blocks the daemon
demoted to SSD come back into host memory and are used; requests preempted for want of KV memory
leave no pin behind; an engine killed with SIGKILL mid-step is reclaimed and the next engine works
with the blocks that were committed."""

from __future__ import annotations

import os
import time

import pytest

from engine_support import (
    BLOCK,
    EngineJob,
    kvtier_settings,
    kvtierd_in_workdir,
    namespace,
    node_client,
    partly_on_ssd,
    prompt,
    run_alone,
    run_engine,
    tokens,
    whole_blocks_before_last,
)

# A host tier of 128 blocks of 64 KiB (4 layers x K,V x 32 tokens x 2 heads x 64 x bf16): the
# writer's 12 prompts of 20 blocks overflow it, so the first ones go to SSD.
HOST_BYTES = "8MiB"
WRITTEN = [tokens(20 * BLOCK + 7, seed=100 + i) for i in range(12)]


@pytest.fixture(scope="module")
def daemon(model_dir):
    with kvtierd_in_workdir("kvtier-engine-kvtierd-", f"eng{os.getpid()}", HOST_BYTES) as running:
        yield running


def engine_job(model_dir: str, node: str, phases: list, **more) -> dict:
    return {"model": model_dir, "mode": "kvtier", "kvtier": kvtier_settings(node), "phases": phases, **more}


def test_blocks_demoted_to_ssd_come_back_and_are_used(daemon, model_dir):
    d, path = daemon
    writer = run_engine(path, "ssd-writer", engine_job(model_dir, d.name, [{"prompts": [prompt(p, 2) for p in WRITTEN]}]))
    counters = writer["phases"][0]["connector"]
    # Saves are best effort: one that finds the arena full before the daemon made room is refused.
    assert counters["save_blocks"] + counters["save_refused"] + counters["save_not_admitted"] == sum(
        len(p) // BLOCK for p in WRITTEN
    )
    assert counters["save_blocks"] > 64, "more than the host tier holds was saved"

    client = node_client(d.name)
    ns = namespace(client, model_dir)
    i, keys = partly_on_ssd(client, WRITTEN, lambda t: client.keys(ns, t))  # the daemon demoted it

    reader = run_engine(path, "ssd-reader", engine_job(model_dir, d.name, [{"prompts": [prompt(WRITTEN[i], 2)]}]))
    phase = reader["phases"][0]
    assert phase["requests"][0]["num_cached_tokens"] == whole_blocks_before_last(WRITTEN[i])
    assert phase["connector"]["load_blocks"] == len(keys), "every block came from the node, SSD ones through host memory"
    assert phase["requests"][0]["token_ids"] == writer["phases"][0]["requests"][i]["token_ids"]
    assert client.pins(keys) == [0] * len(keys), "the reader's leases ended with its step"


def test_preempted_requests_leave_nothing_pinned(daemon, model_dir):
    d, path = daemon
    # Eight requests of 22 blocks that grow by 7 more, at once, into a KV cache of 96 blocks: vLLM
    # admits four, and preempts some of them when their decode needs blocks.
    prompts = [tokens(22 * BLOCK - 5, seed=200 + i) for i in range(8)]
    result = run_engine(
        path,
        "preempt",
        engine_job(
            model_dir,
            d.name,
            [{"batch": True, "prompts": [prompt(p, 220) for p in prompts]}],
            kv_cache_bytes=96 * 64 * 1024,
            max_model_len=2048,
            max_num_batched_tokens=2048,
        ),
    )
    assert result["phases"][0]["engine"].get("num_preemptions", 0) > 0, "vLLM preempted requests"
    assert all(len(r["token_ids"]) == 220 for r in result["phases"][0]["requests"])
    client = node_client(d.name)
    ns = namespace(client, model_dir)
    for p in prompts:
        keys = client.keys(ns, p)
        assert client.match(keys).overall > 0, "the preempted requests' blocks were saved"
        assert client.pins(keys) == [0] * len(keys)


def test_an_engine_killed_mid_step_is_reclaimed_and_the_next_engine_works(daemon, model_dir):
    d, path = daemon
    client = node_client(d.name)
    ns = namespace(client, model_dir)
    prompts = [tokens(40 * BLOCK + 3, seed=300 + i) for i in range(6)]
    doomed = EngineJob(
        path,
        "doomed",
        engine_job(model_dir, d.name, [{"batch": True, "prompts": [prompt(p, 400) for p in prompts]}]),
    )
    # Kill it while it runs steps: once blocks of the batch are in the node, and decode goes on.
    deadline = time.monotonic() + 300
    while client.match(client.keys(ns, prompts[0])).overall == 0:
        assert doomed.proc.poll() is None, doomed.tail()
        assert time.monotonic() < deadline, "the doomed engine saved nothing"
        time.sleep(0.05)
    reclaimed = client.stats()["processes_reclaimed"]
    doomed.kill()

    # kvtierd's upkeep reclaims the dead processes' pins and reservations; maintain() does it now.
    client.maintain()
    assert client.stats()["processes_reclaimed"] > reclaimed, "the dead engine's process slots were reclaimed"
    for p in prompts:
        keys = client.keys(ns, p)
        assert client.pins(keys) == [0] * len(keys)

    survivor = run_engine(path, "after-kill", engine_job(model_dir, d.name, [{"prompts": [prompt(prompts[0], 4)]}]))
    alone = run_alone(model_dir, [prompt(prompts[0], 4)])
    got = survivor["phases"][0]["requests"][0]
    assert got["num_cached_tokens"] > 0, "what the dead engine committed is used"
    assert got["token_ids"] == alone["phases"][0]["requests"][0]["token_ids"], "and it was whole, not half-written"
