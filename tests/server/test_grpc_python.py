"""kvtierd's gRPC services from Python (Debian's python3-grpcio; stubs generated at build time)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.environ["KVTIER_PYTHON_STUBS"])
import grpc  # noqa: E402
from kvtier.v1 import common_pb2, events_pb2, events_pb2_grpc, locality_pb2, locality_pb2_grpc  # noqa: E402

BIN = os.environ["KVTIER_BIN_DIR"]
MODEL = "py-test/model"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node():
    path = tempfile.mkdtemp(prefix="kvtierd-py-", dir=os.getcwd())
    name = f"py{os.getpid()}"
    address = f"127.0.0.1:{free_port()}"
    config = os.path.join(path, "node.yaml")
    with open(config, "w") as f:
        f.write(f"""
node: {{name: {name}, shm_prefix: kvtiertest}}
index: {{capacity: 4096}}
host: {{bytes: 16MiB, slab_bytes: 4MiB}}
ssd: {{dir: {path}/ssd, bytes: 64MiB, region_bytes: 4MiB}}
server: {{grpc_address: "{address}", metrics_address: "127.0.0.1:{free_port()}"}}
namespaces:
  - model_id: {MODEL}
    layout: {{dtype: bf16, block_tokens: 16, num_layers: 2, num_kv_heads: 8, head_dim: 64, kv_planes: 2}}
""")
    daemon = subprocess.Popen([os.path.join(BIN, "kvtierd"), "--config", config], stdout=subprocess.PIPE, text=True)
    line = daemon.stdout.readline()
    while line and "serving node" not in line:
        line = daemon.stdout.readline()
    assert "serving node" in line
    channel = grpc.insecure_channel(address)
    try:
        yield name, channel
    finally:
        channel.close()
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
        for part in ("index", "host", "loads"):
            try:
                os.unlink(f"/dev/shm/kvtiertest-{name}-{part}")
            except FileNotFoundError:
                pass
        shutil.rmtree(path, ignore_errors=True)


def test_match_prefix_from_python(node):
    _, channel = node
    stub = locality_pb2_grpc.LocalityStub(channel)
    request = locality_pb2.MatchPrefixRequest(
        namespace=common_pb2.NamespaceRef(model_id=MODEL), token_ids=list(range(100)))
    reply = stub.MatchPrefix(request, timeout=10)
    assert reply.blocks_asked == 6 and reply.block_tokens == 16
    assert reply.matched_blocks == 0  # an empty node
    assert {t.tier for t in reply.per_tier} == {common_pb2.TIER_HBM, common_pb2.TIER_HOST, common_pb2.TIER_SSD}
    batch = stub.MatchPrefixBatch(locality_pb2.MatchPrefixBatchRequest(requests=[request, request]), timeout=10)
    assert len(batch.responses) == 2


def test_bad_input_is_invalid_argument(node):
    _, channel = node
    stub = locality_pb2_grpc.LocalityStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.MatchPrefix(locality_pb2.MatchPrefixRequest(keys=[b"short"]), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "16" in err.value.details()


def test_snapshot_and_subscribe_from_python(node):
    name, channel = node
    stub = events_pb2_grpc.EventsStub(channel)
    snap = stub.Snapshot(events_pb2.SnapshotRequest(), timeout=10)
    assert snap.node_id == name and snap.epoch != 0
    assert sorted(t.tier for t in snap.tiers) == [common_pb2.TIER_HBM, common_pb2.TIER_HOST, common_pb2.TIER_SSD]
    stream = stub.Subscribe(events_pb2.SubscribeRequest(epoch=snap.epoch + 1), timeout=10)
    first = next(stream)
    assert first.resync and first.epoch == snap.epoch
    stream.cancel()
