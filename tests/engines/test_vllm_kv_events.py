"""The real engine's own KV events (vLLM's ZMQ publisher, sha256_cbor hashes, PYTHONHASHSEED fixed)
followed by kvtier-indexer: ScoreNodes for a prompt shows exactly the blocks the engine holds, by the
hashes the engine computed, and a prompt sharing only its first blocks scores only those."""

from __future__ import annotations

import os
import time

from engine_support import BLOCK, EngineJob, VllmIndexer, free_port, prompt, remove, tokens, workdir

MODEL_ID = "kvtier-test/llama-tiny"
def test_scores_follow_the_engines_own_events(model_dir):
    path = workdir("kvtier-engine-events-")
    # vLLM binds its PUB socket only for a wildcard or an ipc endpoint (tcp://HOST:PORT makes it
    # connect to a consumer that binds): ipc keeps it off the network.
    pub, replay = f"ipc://{path}/kv-events", f"tcp://127.0.0.1:{free_port()}"
    indexer = VllmIndexer(path, MODEL_ID, BLOCK, "vllm-0", pub, replay)

    def score(token_ids: list[int]) -> dict:
        return indexer.score(MODEL_ID, token_ids)

    served = tokens(200, seed=40)
    shares_three = served[: 3 * BLOCK] + tokens(100, seed=41)
    release = os.path.join(path, "release")
    engine = EngineJob(
        path,
        "events",
        {
            "model": model_dir,
            "mode": "alone",
            "hash_algo": "sha256_cbor",
            "kv_events": {"endpoint": pub, "replay_endpoint": replay},
            "phases": [
                {"prompts": [prompt(served, 4)], "signal": os.path.join(path, "served")},
                {"wait_for": release, "prompts": []},  # stays up while the scores are read
            ],
        },
        env={"PYTHONHASHSEED": "0"},
    )
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(os.path.join(path, "served")):
            assert engine.proc.poll() is None, engine.tail()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while True:
            got = score(served)
            if got["nodes"].get("vllm-0", {}).get("prefix_blocks") == len(served) // BLOCK or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got["blocks"] == len(served) // BLOCK
        assert got["nodes"]["vllm-0"]["prefix_blocks"] == len(served) // BLOCK, got
        assert got["nodes"]["vllm-0"]["hbm_blocks"] == len(served) // BLOCK, "the engine's own blocks are its GPU tier"
        assert score(shares_three)["nodes"]["vllm-0"]["prefix_blocks"] == 3
        assert score(tokens(200, seed=42))["nodes"]["vllm-0"]["prefix_blocks"] == 0
    finally:
        open(release, "w").close()
        try:
            engine.result(timeout=120)
        finally:
            indexer.stop()
            remove(path)
