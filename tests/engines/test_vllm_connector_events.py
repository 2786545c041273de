"""kvtier's part of an unmodified vLLM engine's own KV-event stream, read back with vLLM's own
msgspec classes, for both integrations: the kvtier connector (its `take_events` hook) and vLLM's
OffloadingConnector with kvtier as its spec (the manager's OffloadingEvents, which vLLM's event
tracker turns into self-describing events). The blocks the engine saved to a real kvtierd appear by
vLLM's block hashes with the CPU medium, move to STORAGE when the daemon demotes them to SSD, and
are withdrawn when it evicts them; each announced once."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from engine_support import (
    BLOCK,
    ROOT,
    EngineJob,
    free_port,
    kvtier_settings,
    kvtierd_in_workdir,
    prompt,
    tokens,
    vllm_replay,
)

EVICT_NODE = os.path.join(ROOT, "tests", "engines", "evict_node.py")


def replayed_events(replay: str) -> list:
    """Every event the engine published, in order, decoded by vLLM's own classes."""
    import msgspec
    from vllm.distributed.kv_events import KVEventBatch

    decoder = msgspec.msgpack.Decoder(type=KVEventBatch)
    return [e for _, payload in vllm_replay(replay) for e in decoder.decode(payload).events]


def hashes_of(events: list, kind: str, medium: str) -> list:
    return [h for e in events if type(e).__name__ == kind and e.medium == medium for h in e.block_hashes]


def wait_for(path: str, engine: EngineJob, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert engine.proc.poll() is None, engine.tail()
        assert time.monotonic() < deadline, engine.tail()
        time.sleep(0.1)


def evict(address: str, tier: str) -> dict:
    out = subprocess.run(["/usr/bin/python3", EVICT_NODE, address, tier, str(1 << 30)], check=True,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


# The kvtier connector; vLLM's OffloadingConnector with kvtier's spec, its events self-describing.
INTEGRATIONS = {"connector": ("kvtier", {}), "offloading_spec": ("kvtier_offload", {"self_describing_kv_events": True})}


@pytest.mark.parametrize("integration", sorted(INTEGRATIONS))
def test_the_engines_stream_reports_the_blocks_the_node_holds_for_it(model_dir, integration):
    mode, more_settings = INTEGRATIONS[integration]
    served = tokens(6 * BLOCK + 8, seed=70)
    with kvtierd_in_workdir("kvtier-engine-connector-events-", f"cev{os.getpid()}", "64MiB") as (daemon, path):
        pub, replay = f"ipc://{path}/kv-events", f"tcp://127.0.0.1:{free_port()}"
        marks = {name: os.path.join(path, name) for name in ("served", "demoted", "moved", "evicted", "gone", "release")}
        engine = EngineJob(
            path,
            "events",
            {
                "model": model_dir,
                "mode": mode,
                "kvtier": kvtier_settings(daemon.name, **more_settings),
                "hash_algo": "sha256_cbor",
                "kv_events": {"endpoint": pub, "replay_endpoint": replay},
                "phases": [
                    # A second request after the first: the step that saves the first one's last
                    # blocks is followed by steps that announce them.
                    {"prompts": [prompt(served, 4), prompt(tokens(2 * BLOCK, seed=71), 2)], "signal": marks["served"]},
                    {"wait_for": marks["demoted"], "prompts": [prompt(tokens(2 * BLOCK, seed=72), 2)],
                     "signal": marks["moved"]},
                    {"wait_for": marks["evicted"], "prompts": [prompt(tokens(2 * BLOCK, seed=73), 2)],
                     "signal": marks["gone"]},
                    {"wait_for": marks["release"], "prompts": []},
                ],
            },
            env={"PYTHONHASHSEED": "0"},
        )
        try:
            wait_for(marks["served"], engine)
            events = replayed_events(replay)
            # vLLM's own GPU events name the served prompt's whole blocks; the connector's CPU events
            # name the same blocks by the same hashes, with their tokens and parents.
            gpu = {}
            for e in events:
                if type(e).__name__ == "BlockStored" and e.medium == "GPU":
                    for i, h in enumerate(e.block_hashes):
                        gpu[h] = (e.token_ids[i * BLOCK:(i + 1) * BLOCK], e.block_hashes[i - 1] if i else e.parent_block_hash)
            mine = [h for h, (toks, _) in gpu.items() if any(toks == served[j * BLOCK:(j + 1) * BLOCK] for j in range(6))]
            assert len(mine) == 6, engine.tail()
            cpu = [e for e in events if type(e).__name__ == "BlockStored" and e.medium == "CPU"]
            cpu_blocks = {}
            for e in cpu:
                assert e.group_idx == 0 and e.kv_cache_spec_kind == "full_attention" and e.block_size == BLOCK, e
                for i, h in enumerate(e.block_hashes):
                    cpu_blocks[h] = (e.token_ids[i * BLOCK:(i + 1) * BLOCK], e.block_hashes[i - 1] if i else e.parent_block_hash)
            for h in mine:
                assert cpu_blocks.get(h) == gpu[h], "the node's copy is announced by vLLM's hash, tokens and parent"
            assert len(hashes_of(events, "BlockStored", "CPU")) == len(set(hashes_of(events, "BlockStored", "CPU"))), \
                "each block announced once"

            # The daemon demotes them to SSD: the next steps move them to STORAGE.
            assert evict(daemon.address, "host")["blocks_demoted"] >= 6
            open(marks["demoted"], "w").close()
            wait_for(marks["moved"], engine)
            events = replayed_events(replay)
            assert set(mine) <= set(hashes_of(events, "BlockStored", "STORAGE"))
            assert set(mine) <= set(hashes_of(events, "BlockRemoved", "CPU"))

            # Evicted from the node: withdrawn.
            evict(daemon.address, "ssd")
            open(marks["evicted"], "w").close()
            wait_for(marks["gone"], engine)
            events = replayed_events(replay)
            assert set(mine) <= set(hashes_of(events, "BlockRemoved", "STORAGE"))
            for medium in ("CPU", "STORAGE"):
                removed = hashes_of(events, "BlockRemoved", medium)
                assert len([h for h in removed if h in mine]) == len(set(mine)), "each withdrawn once"
        finally:
            open(marks["release"], "w").close()
            for name in ("demoted", "evicted"):
                open(marks[name], "w").close()
            engine.result(timeout=120)
