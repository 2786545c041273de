"""A hybrid model's KV events, as vLLM's own code makes and sends them (its event classes, its
msgspec encoding, its ZmqEventPublisher, its sha256_cbor block hashes), followed by kvtier-indexer.
With vLLM's hybrid KV-cache manager the full-attention and the sliding-window group store the same
block hashes; the window's removals (blocks that slid out of it) must not take the prefix the
full-attention group still holds, and the window's stores must not claim a prefix it lacks."""

from __future__ import annotations

import time

import pytest

from engine_support import VllmIndexer, free_port, remove, tokens, workdir

MODEL_ID = "kvtier-test/hybrid"
BLOCK = 16


def vllm_hashes(token_ids: list[int]) -> list[bytes]:
    from vllm.utils.hashing import sha256_cbor
    from vllm.v1.core import kv_cache_utils

    kv_cache_utils.init_none_hash(sha256_cbor)  # seeded by PYTHONHASHSEED, set by the test
    out, parent = [], None
    for i in range(len(token_ids) // BLOCK):
        parent = kv_cache_utils.hash_block_tokens(sha256_cbor, parent, token_ids[i * BLOCK : (i + 1) * BLOCK])
        out.append(bytes(parent))
    return out


@pytest.fixture
def indexer_and_publisher():
    from vllm.distributed.kv_events import ZmqEventPublisher

    path = workdir("kvtier-engine-hybrid-")
    endpoint, replay = f"ipc://{path}/kv-events", f"tcp://127.0.0.1:{free_port()}"
    indexer = VllmIndexer(path, MODEL_ID, BLOCK, "hybrid-0", endpoint, replay)
    publisher = ZmqEventPublisher(0, endpoint=endpoint, replay_endpoint=replay)
    try:
        yield indexer, publisher
    finally:
        publisher.shutdown()
        indexer.stop()
        remove(path)


def test_a_sliding_window_groups_events_leave_the_full_attention_prefix_alone(indexer_and_publisher, monkeypatch):
    from vllm.distributed.kv_events import BlockRemoved, BlockStored, KVEventBatch

    monkeypatch.setenv("PYTHONHASHSEED", "0")  # the seed the indexer's key profile names
    indexer, publisher = indexer_and_publisher

    def send(*events) -> None:
        publisher.publish(KVEventBatch(ts=time.time(), events=list(events)))

    def stored(hashes, token_ids, group, kind):
        return BlockStored(
            block_hashes=hashes,
            parent_block_hash=None,
            token_ids=token_ids,
            block_size=BLOCK,
            lora_id=None,
            medium="GPU",
            lora_name=None,
            group_idx=group,
            kv_cache_spec_kind=kind,
            kv_cache_spec_sliding_window=4 * BLOCK if kind == "sliding_window" else None,
        )

    # The subscriber joins late (ZMQ drops what a PUB sends before): announce a block until the
    # indexer has it.
    warm = tokens(BLOCK, seed=60)
    deadline = time.monotonic() + 30
    while indexer.score(MODEL_ID, warm)["nodes"].get("hybrid-0", {}).get("prefix_blocks", 0) == 0:
        assert time.monotonic() < deadline, "the indexer never received the engine's events"
        send(stored(vllm_hashes(warm), warm, 0, "full_attention"))
        time.sleep(0.2)

    prompt = tokens(6 * BLOCK, seed=61)
    hashes = vllm_hashes(prompt)
    send(
        stored(hashes, prompt, 0, "full_attention"),
        stored(hashes, prompt, 1, "sliding_window"),
        BlockRemoved(block_hashes=hashes[:4], medium="GPU", group_idx=1),  # slid out of the window
    )
    other = tokens(3 * BLOCK, seed=62)
    send(stored(vllm_hashes(other), other, 1, "sliding_window"))  # only the window group holds these
    send(BlockRemoved(block_hashes=hashes[5:], medium="GPU", group_idx=0))  # the full group drops its last

    deadline = time.monotonic() + 10
    while True:
        got = indexer.score(MODEL_ID, prompt)
        if got["nodes"].get("hybrid-0", {}).get("prefix_blocks") == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got["nodes"]["hybrid-0"]["prefix_blocks"] == 5, got  # 6 stored, the full group's last removed
    assert got["engines"]["hybrid-0"]["malformed"] == 0 and got["engines"]["hybrid-0"]["unknown_events"] == 0
    assert indexer.score(MODEL_ID, other)["nodes"].get("hybrid-0", {}).get("prefix_blocks", 0) == 0, "no prefix from a window"
