"""kvtier against Dynamo's own code, from the ai-dynamo-runtime package on the Python index (its
compiled router library, `dynamo._core`):

- the `dynamo_xxh3` key profile (`kvtier keys --profile dynamo_xxh3`) gives the block hashes
  Dynamo's `compute_block_hash_for_seq` gives, with and without a LoRA name and a cache salt;
- Dynamo's standalone KV indexer (`run_kv_indexer`, the `dynamo.indexer` service) follows a real
  kvtierd's vLLM-format stream, as it follows a vLLM engine's, and answers /query with the node's
  blocks in host memory, then on disk after a demotion, then nowhere after an eviction; a LoRA
  adapter's blocks match only requests for that adapter."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request

import pytest

from engine_support import (
    BIN,
    ROOT,
    Kvtierd,
    free_port,
    node_client,
    publishing_node_config,
    put_chain,
    remove,
    tokens,
    workdir,
)

import dynamo._core as dynamo_core  # noqa: E402  (ai-dynamo-runtime, in the engine virtualenv)

MODEL_ID = "kvtier-test/dynamo"
BLOCK = 16
LAYOUT = {"dtype": "bf16", "block_tokens": BLOCK, "num_layers": 2, "num_kv_heads": 2, "head_dim": 16}
EVICT_NODE = os.path.join(ROOT, "tests", "engines", "evict_node.py")


def kvtier_keys(token_ids: list[int], block: int, lora: str, salt: str) -> dict:
    out = subprocess.run(
        [os.path.join(BIN, "kvtier"), "keys", "--profile", "dynamo_xxh3", "--block-tokens", str(block),
         "--lora-name", lora, "--salt", salt, "--tokens", "-", "--json"],
        input=" ".join(map(str, token_ids)), capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def test_dynamo_profile_gives_dynamos_own_block_hashes():
    rng = random.Random(2026)
    for case in range(24):
        block = rng.choice([1, 4, 16, 64])
        lora = rng.choice(["", "sql-lora", "adapter-ü"])
        salt = rng.choice(["", "tenant-a"])
        prompt = [rng.choice([rng.getrandbits(32), rng.randint(0, 300)]) for _ in range(rng.randint(0, 5 * block + 3))]
        ours = kvtier_keys(prompt, block, lora, salt)
        theirs = dynamo_core.compute_block_hash_for_seq(prompt, block, lora_name=lora or None,
                                                        cache_namespace=salt or None)
        assert ours["block_hashes"] == theirs, (case, block, lora, salt)
        # The chained sequence hash starts at the first block's own hash.
        assert ours["hashes"][:1] == theirs[:1]
        assert len(ours["hashes"]) == len(theirs)


class DynamoIndexer:
    """Dynamo's standalone KV indexer following one worker's ZMQ stream (worker 1 = the node)."""

    def __init__(self, path: str, pub_endpoint: str):
        self.port = free_port()
        self.log_path = os.path.join(path, "dynamo-indexer.log")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from dynamo._core import run_kv_indexer; run_kv_indexer(sys.argv[1:])",
             "--block-size", str(BLOCK), "--port", str(self.port), "--threads", "1", "--workers",
             f"1={pub_endpoint}", "--model-name", MODEL_ID],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                workers = json.loads(self.get("/workers"))
                if workers and all(l["status"] == "active" for w in workers for l in w["listeners"].values()):
                    break
            except OSError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, self.read_log()
            time.sleep(0.1)

    def get(self, path: str) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10).read().decode()

    def query(self, token_ids: list[int], lora_name: str | None = None) -> dict:
        body = {"token_ids": token_ids, "model_name": MODEL_ID}
        if lora_name:
            body["lora_name"] = lora_name
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/query", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(request, timeout=10).read())["instances"].get("1", {})

    def read_log(self) -> str:
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def node_and_dynamo():
    path = workdir("kvtier-engine-dynamo-")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    extra = publishing_node_config(endpoint, "", "10.0.0.9:8000", MODEL_ID, LAYOUT, ["", "adapter_id: sql-lora"])
    daemon = Kvtierd(path, "dynamoevents", extra_config=extra)  # kvtierd's default media: CPU, STORAGE
    indexer = None
    try:
        indexer = DynamoIndexer(path, endpoint)
        yield daemon, indexer
    finally:
        if indexer is not None:
            indexer.stop()
        daemon.stop()
        remove(path)


def until(what, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def evict(daemon, tier: str) -> dict:
    out = subprocess.run(["/usr/bin/python3", EVICT_NODE, daemon.address, tier, str(1 << 30)], check=True,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def test_dynamos_indexer_follows_the_nodes_stream_per_tier(node_and_dynamo):
    daemon, dynamo = node_and_dynamo
    client = node_client(daemon.name)
    plain = client.register_namespace(model_id=MODEL_ID, **LAYOUT)
    lora = client.register_namespace(model_id=MODEL_ID, adapter_id="sql-lora", **LAYOUT)

    # ZMQ PUB drops what it sends before the subscription reaches it: store throwaway chains until
    # Dynamo has one.
    seed = 900
    def joined():
        nonlocal seed
        chain = tokens(BLOCK, seed=seed)
        put_chain(client, plain, chain)
        seed += 1
        time.sleep(0.2)
        return dynamo.query(chain).get("cpu", 0) == BLOCK
    assert until(joined, 20), dynamo.read_log()

    a, b = tokens(3 * BLOCK, seed=1), tokens(3 * BLOCK, seed=2)
    put_chain(client, plain, a)
    put_chain(client, lora, b)
    assert until(lambda: dynamo.query(a).get("cpu") == 3 * BLOCK), dynamo.query(a)
    assert until(lambda: dynamo.query(b, "sql-lora").get("cpu") == 3 * BLOCK), dynamo.query(b, "sql-lora")
    assert dynamo.query(b) == {}, "an adapter's blocks match only that adapter's requests"
    assert dynamo.query(a, "sql-lora") == {}
    assert dynamo.query(a).get("gpu") == 0, "host memory is not the engine's GPU"

    # Demoted to SSD: STORAGE, Dynamo's disk tier; the host copies withdrawn.
    assert evict(daemon, "host")["blocks_demoted"] >= 6
    assert until(lambda: dynamo.query(a).get("disk") == 3 * BLOCK and dynamo.query(a).get("cpu") == 0), dynamo.query(a)
    assert until(lambda: dynamo.query(b, "sql-lora").get("disk") == 3 * BLOCK), dynamo.query(b, "sql-lora")

    # Evicted from SSD: gone from the node, gone from Dynamo's index.
    evict(daemon, "ssd")
    assert until(lambda: dynamo.query(a) == {}), dynamo.query(a)
    assert until(lambda: dynamo.query(b, "sql-lora") == {})
    # Every store carried its token ids (Dynamo computes its keys from them and drops a store without).
    assert "token_ids too short" not in dynamo.read_log()
