"""kvtier-indexer ingesting unmodified vLLM engines' KV events: two engines (vllm_publisher.py,
written from vLLM's documented format) publish in both encodings, one with int hashes, one with
byte digests; ScoreNodes with token ids turns the prompt into the same vLLM sha256_cbor hashes
(computed here independently by profile_reference.py) and finds the engines' prefixes per tier.
Then the failure cases: malformed msgpack, truncated frames and unknown event types are counted
and skipped; a sequence gap is filled from the replay socket; an engine restart drops its blocks."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ["KVTIER_PYTHON_STUBS"])
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "keys"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
import grpc  # noqa: E402
import profile_reference  # noqa: E402
from loopback import free_port  # noqa: E402
from kvtier.v1 import scheduler_pb2, scheduler_pb2_grpc  # noqa: E402
from vllm_publisher import VllmPublisher, cleared, removed, stored  # noqa: E402

BIN = os.environ["KVTIER_BIN_DIR"]
MODEL = "vllm-test/model"
SEED = "0"


def chain(seed, blocks):
    tokens = [seed * 1000 + i for i in range(blocks * 16)]
    digests = profile_reference.vllm_digests(tokens, 16, SEED)
    return tokens, digests, [profile_reference.vllm_wire(d) for d in digests]


@pytest.fixture
def cluster():
    a, b = VllmPublisher(), VllmPublisher()
    workdir = tempfile.mkdtemp(prefix="kvtier-vllm-", dir=os.getcwd())
    address = f"127.0.0.1:{free_port()}"
    metrics = f"127.0.0.1:{free_port()}"
    config = os.path.join(workdir, "indexer.yaml")
    with open(config, "w") as f:
        f.write(f"""
grpc_address: "{address}"
metrics_address: "{metrics}"
engine_namespaces:
  - {{model_id: {MODEL}, key_profile: vllm_sha256_cbor, hash_seed: "{SEED}", block_tokens: 16,
      lora_paths: {{sql-lora: /models/sql-lora}}}}
vllm_engines:
  - {{name: vllm-a, endpoint: "{a.endpoint}", replay_endpoint: "{a.replay_endpoint}", model_id: {MODEL}}}
  - {{name: vllm-b, endpoint: "{b.endpoint}", replay_endpoint: "{b.replay_endpoint}", model_id: {MODEL}}}
""")
    log = open(os.path.join(workdir, "indexer.log"), "w+")
    proc = subprocess.Popen([os.path.join(BIN, "kvtier-indexer"), "--config", config], stdout=log,
                            stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=20)
    a.wait_for_subscriber()
    b.wait_for_subscriber()
    try:
        yield a, b, scheduler_pb2_grpc.SchedulerStub(channel), log, f"http://{metrics}/metrics"
    finally:
        channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        a.close()
        b.close()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def score(stub, tokens):
    req = scheduler_pb2.ScoreNodesRequest(token_ids=tokens)
    req.namespace.model_id = MODEL
    return {n.node: n for n in stub.ScoreNodes(req, timeout=10).nodes}


def engines(stub):
    return {n.node: n for n in stub.ListNodes(scheduler_pb2.ListNodesRequest(), timeout=10).nodes}


def metrics(url):
    """The indexer's /metrics as {sample name with labels: value}."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def eventually(check, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_both_encodings_feed_scores_with_the_engines_own_hashes(cluster):
    a, b, stub, log, _ = cluster
    tokens, digests, wire = chain(1, 4)
    # Engine A: tagged arrays, int hashes, GPU. Engine B: maps, byte digests, CPU, a map batch.
    a.publish([stored(wire, None, tokens, medium="GPU")])
    b.publish([stored([digests[0], digests[1]], None, tokens[:32], medium="CPU", encoding="map")], as_map=True)
    assert eventually(lambda: score(stub, tokens)["vllm-a"].prefix_blocks == 4), log.read()
    assert eventually(lambda: score(stub, tokens)["vllm-b"].prefix_blocks == 2)
    s = score(stub, tokens)
    assert s["vllm-a"].hbm_blocks == 4 and s["vllm-b"].host_blocks == 2
    assert s["vllm-b"].remote_blocks == 2
    assert s["vllm-a"].score > s["vllm-b"].score
    assert s["vllm-a"].address == a.endpoint

    # Removal and "all blocks cleared" follow.
    b.publish([removed([digests[1]], medium="CPU", encoding="map")])
    assert eventually(lambda: score(stub, tokens)["vllm-b"].prefix_blocks == 1)
    a.publish([cleared()])
    assert eventually(lambda: score(stub, tokens)["vllm-a"].prefix_blocks == 0)
    listed = engines(stub)
    assert listed["vllm-a"].kind == "vllm" and listed["vllm-a"].events >= 2

    # A LoRA adapter or a cache_salt changes vLLM's hashes, so the same tokens match nothing.
    req = scheduler_pb2.ScoreNodesRequest(token_ids=tokens)
    req.namespace.model_id = MODEL
    req.namespace.cache_salt = "tenant-a"
    assert all(n.prefix_blocks == 0 for n in stub.ScoreNodes(req, timeout=10).nodes)


def test_salted_and_adapter_prompts_score_by_vllms_tagged_extra_keys(cluster):
    # vLLM 0.32 hashes ("cache_salt", salt) into a chain's first block and ("lora", name, path)
    # into every block of an adapter's request: the indexer computes the same from the request's
    # salt, its adapter and the adapter's path in lora_paths.
    a, _, stub, log, _ = cluster
    tokens = [7000 + i for i in range(48)]

    def wire(**extra):
        return [profile_reference.vllm_wire(d) for d in profile_reference.vllm_digests(tokens, 16, SEED, **extra)]

    a.publish([stored(wire(cache_salt="tenant-a"), None, tokens, medium="GPU")])
    a.publish([stored(wire(lora_name="sql-lora", lora_path="/models/sql-lora"), None, tokens, medium="GPU")])

    def scored(adapter="", salt=""):
        req = scheduler_pb2.ScoreNodesRequest(token_ids=tokens)
        req.namespace.model_id = MODEL
        req.namespace.adapter_id = adapter
        req.namespace.cache_salt = salt
        return {n.node: n.prefix_blocks for n in stub.ScoreNodes(req, timeout=10).nodes}

    assert eventually(lambda: scored(salt="tenant-a").get("vllm-a") == 3), log.read()
    assert eventually(lambda: scored(adapter="sql-lora").get("vllm-a") == 3)
    assert scored().get("vllm-a", 0) == 0
    req = scheduler_pb2.ScoreNodesRequest(token_ids=tokens)
    req.namespace.model_id = MODEL
    req.namespace.adapter_id = "unknown-lora"
    with pytest.raises(grpc.RpcError) as e:
        stub.ScoreNodes(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lora_paths" in e.value.details()


def test_bad_input_is_counted_and_skipped_never_fatal(cluster):
    a, _, stub, log, metrics_url = cluster
    tokens, _, wire = chain(2, 2)
    a.publish_payload(b"\xc1\xc1 not msgpack")                          # malformed msgpack
    a.publish_payload(a.payload([stored(wire, None, tokens)])[:-7])     # truncated payload
    a.send_raw([b"", b"\x00\x01"])                                      # truncated frames: no payload, short seq
    a.publish([["BlockTeleported", [1, 2]], stored(wire, None, tokens), ["BlockRemoved", "not a list"]])
    assert eventually(lambda: score(stub, tokens)["vllm-a"].prefix_blocks == 2), log.read()
    e = engines(stub)["vllm-a"]
    assert e.unknown_events == 1
    assert e.malformed >= 4  # two bad payloads, the bad frames, the bad event
    # The same counts on the indexer's /metrics, for a Prometheus alert rather than a ListNodes call.
    m = metrics(metrics_url)
    assert m['kvtier_indexer_engine_malformed_total{engine="vllm-a"}'] == e.malformed
    assert m['kvtier_indexer_engine_events_total{engine="vllm-a"}'] == e.events
    assert m['kvtier_indexer_engine_receiving{engine="vllm-a"}'] == 1
    assert m['kvtier_requests_total{rpc="ScoreNodes",outcome="ok"}'] >= 1
    assert m['kvtier_requests_total{rpc="ListNodes",outcome="ok"}'] == 1
    assert m["kvtier_indexer_keys"] >= 2


def test_a_gap_is_filled_from_the_replay_socket(cluster):
    a, _, stub, log, _ = cluster
    t1, _, w1 = chain(3, 2)
    t2, _, w2 = chain(4, 3)
    a.publish([stored(w1, None, t1)])
    a.publish([stored(w2, None, t2)], send=False)  # lost on the PUB socket, kept for replay
    a.publish([removed([w1[1]])])
    assert eventually(lambda: score(stub, t2)["vllm-a"].prefix_blocks == 3), log.read()
    assert eventually(lambda: score(stub, t1)["vllm-a"].prefix_blocks == 1)
    e = engines(stub)["vllm-a"]
    assert e.gaps >= 1 and e.replayed >= 1


def test_an_engine_restart_drops_what_it_reported_before(cluster):
    a, _, stub, log, _ = cluster
    old_tokens, _, old = chain(5, 3)
    new_tokens, _, new = chain(6, 2)
    a.publish([stored(old, None, old_tokens)])
    a.publish([stored([], None, [])])
    assert eventually(lambda: score(stub, old_tokens)["vllm-a"].prefix_blocks == 3), log.read()
    a.restart()
    a.publish([stored(new, None, new_tokens)])  # seq 0 again
    assert eventually(lambda: score(stub, new_tokens)["vllm-a"].prefix_blocks == 2), log.read()
    assert score(stub, old_tokens)["vllm-a"].prefix_blocks == 0
    assert engines(stub)["vllm-a"].restarts == 1
