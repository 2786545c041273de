"""kvtierd's vLLM-format events read back by vLLM's own decoder: msgspec with vLLM 0.32's
`KVEventBatch` classes (vllm/distributed/kv_events.py), which reject an event missing a field
vLLM requires. A real kvtierd publishes, with its default (map) encoding, chains stored through
the client library in three namespaces: plain, salted and a LoRA adapter. Each block carries the
fields vLLM's own CPU offloading sends (group 0, full_attention, extra_keys: the LoRA name on every
block, the salt on a chain's first block), parents come before children, and the stream never
carries AllBlocksCleared, which consumers apply to the engine's own GPU blocks."""

from __future__ import annotations

import time

import pytest

from engine_support import (
    Kvtierd,
    free_port,
    node_client,
    publishing_node_config,
    put_chain,
    remove,
    tokens,
    vllm_replay,
    workdir,
)

MODEL_ID = "kvtier-test/node-events"
POD = "10.0.0.7:8000"
BLOCK = 16
LAYOUT = {"dtype": "bf16", "block_tokens": BLOCK, "num_layers": 2, "num_kv_heads": 2, "head_dim": 16}


@pytest.fixture
def node():
    path = workdir("kvtier-engine-node-events-")
    replay = f"tcp://127.0.0.1:{free_port()}"
    extra = publishing_node_config(f"tcp://127.0.0.1:{free_port()}", replay, POD, MODEL_ID, LAYOUT,
                                   ["", "cache_salt: tenant-a", "adapter_id: adapter-a"])
    d = Kvtierd(path, "nodeevents", extra_config=extra)
    try:
        yield d, replay
    finally:
        d.stop()
        remove(path)


def blocks_of(messages: list[tuple[str, bytes]]):
    """Every published block in order, decoded by vLLM's own classes."""
    import msgspec
    from vllm.distributed.kv_events import AllBlocksCleared, BlockStored, KVEventBatch

    decoder = msgspec.msgpack.Decoder(type=KVEventBatch)
    out = []
    for topic, payload in messages:
        batch = decoder.decode(payload)  # raises on a missing or mistyped field
        for e in batch.events:
            assert not isinstance(e, AllBlocksCleared)
            if not isinstance(e, BlockStored):
                continue
            for i, h in enumerate(e.block_hashes):
                out.append(
                    {
                        "topic": topic,
                        "hash": h,
                        "parent": e.parent_block_hash if i == 0 else e.block_hashes[i - 1],
                        "tokens": list(e.token_ids[i * BLOCK : (i + 1) * BLOCK]),
                        "extra": e.extra_keys[i] if e.extra_keys is not None else "missing",
                        "lora_name": e.lora_name,
                        "group_idx": e.group_idx,
                        "kind": e.kv_cache_spec_kind,
                        "medium": e.medium,
                        "block_size": e.block_size,
                    }
                )
    return out


def test_node_events_decode_with_vllms_classes_and_carry_its_extra_keys(node):
    daemon, replay = node
    client = node_client(daemon.name)
    spaces = {
        "plain": client.register_namespace(model_id=MODEL_ID, **LAYOUT),
        "salted": client.register_namespace(model_id=MODEL_ID, cache_salt="tenant-a", **LAYOUT),
        "lora": client.register_namespace(model_id=MODEL_ID, adapter_id="adapter-a", **LAYOUT),
    }
    chains = {name: tokens(3 * BLOCK, seed=500 + i) for i, name in enumerate(spaces)}
    for name, ns in spaces.items():
        put_chain(client, ns, chains[name])

    def first_blocks_seen(blocks) -> bool:
        seen = [b["tokens"] for b in blocks]
        return all(chain[2 * BLOCK :] in seen for chain in chains.values())

    deadline = time.monotonic() + 20
    while True:
        blocks = blocks_of(vllm_replay(replay))
        if first_blocks_seen(blocks) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert first_blocks_seen(blocks), blocks

    by_tokens = {tuple(b["tokens"]): b for b in blocks}
    for b in blocks:
        assert b["topic"] == f"kv@{POD}@{MODEL_ID}"
        assert (b["group_idx"], b["kind"], b["medium"], b["block_size"]) == (0, "full_attention", "CPU", BLOCK)
    for name, chain in chains.items():
        got = [by_tokens[tuple(chain[i * BLOCK : (i + 1) * BLOCK])] for i in range(3)]
        assert got[0]["parent"] is None and got[1]["parent"] == got[0]["hash"] and got[2]["parent"] == got[1]["hash"]
        extras = [b["extra"] for b in got]
        if name == "plain":
            assert extras == [None, None, None]
            assert all(b["lora_name"] is None for b in got)
        elif name == "salted":
            assert extras == [("tenant-a",), None, None], "the salt goes with a chain's first block only"
        else:
            assert extras == [("adapter-a",)] * 3, "the LoRA name goes with every block"
            assert all(b["lora_name"] == "adapter-a" for b in got)

    # Parents before children across the whole stream.
    announced = set()
    for b in blocks:
        assert b["parent"] is None or b["parent"] in announced, b
        announced.add(b["hash"])
