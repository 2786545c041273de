"""kvtierd's gRPC services from Python (Debian's python3-grpcio; stubs generated at build time).

Every kvtier.v1 RPC is called here against the real daemon: Locality, Events, Blocks, Admin, and
the standard health service."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.environ["KVTIER_PYTHON_STUBS"])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
import grpc  # noqa: E402
import xxhash  # noqa: E402
from loopback import free_port  # noqa: E402
from kvtier.v1 import (  # noqa: E402
    admin_pb2, admin_pb2_grpc, blocks_pb2, blocks_pb2_grpc, common_pb2, events_pb2, events_pb2_grpc, locality_pb2,
    locality_pb2_grpc)

BIN = os.environ["KVTIER_BIN_DIR"]
MODEL = "py-test/model"
BLOCK_BYTES = 16 * 2 * 8 * 64 * 2 * 2  # block_tokens × layers × kv heads × head dim × K,V × bf16


@contextlib.contextmanager
def running_kvtierd(path, name, sections):
    """kvtierd on `sections` (its tiers and server section), until the block ends; its segments
    and `path` are removed afterwards."""
    config = os.path.join(path, "node.yaml")
    with open(config, "w") as f:
        f.write(f"node: {{name: {name}, shm_prefix: kvtiertest}}\n{sections}\nnamespaces:\n  - model_id: {MODEL}\n"
                "    layout: {dtype: bf16, block_tokens: 16, num_layers: 2, num_kv_heads: 8, head_dim: 64, kv_planes: 2}\n")
    daemon = subprocess.Popen([os.path.join(BIN, "kvtierd"), "--config", config], stdout=subprocess.PIPE, text=True)
    try:
        line = daemon.stdout.readline()
        while line and "serving node" not in line:
            line = daemon.stdout.readline()
        assert "serving node" in line
        yield
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
        for part in ("index", "host", "loads"):
            try:
                os.unlink(f"/dev/shm/kvtiertest-{name}-{part}")
            except FileNotFoundError:
                pass
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node():
    path = tempfile.mkdtemp(prefix="kvtierd-py-", dir=os.getcwd())
    name = f"py{os.getpid()}"
    address = f"127.0.0.1:{free_port()}"
    sections = f"""index: {{capacity: 4096}}
host: {{bytes: 16MiB, slab_bytes: 4MiB}}
ssd: {{dir: {path}/ssd, bytes: 64MiB, region_bytes: 4MiB, admission: {{min_accesses: 1}}}}
server: {{grpc_address: "{address}", metrics_address: "127.0.0.1:{free_port()}"}}"""
    with running_kvtierd(path, name, sections):
        with grpc.insecure_channel(address) as channel:
            yield name, channel


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


def chain(n, seed):
    """n made-up 16-byte keys and payloads (a prefill node would send real ones)."""
    keys = [xxhash.xxh3_128_digest(bytes([seed, i])) for i in range(n)]
    payloads = [bytes([(seed * 31 + i * 7 + j) % 251 for j in range(256)]) * (BLOCK_BYTES // 256) for i in range(n)]
    return keys, payloads


def put_requests(keys, payloads, chunk):
    for i, (key, data) in enumerate(zip(keys, payloads)):
        for off in range(0, len(data), chunk):
            piece = data[off:off + chunk]
            last = off + len(piece) == len(data)
            yield blocks_pb2.PutBlocksRequest(
                namespace=common_pb2.NamespaceRef(model_id=MODEL) if i == 0 and off == 0 else None,
                chunk=blocks_pb2.BlockChunk(
                    key=key, parent=keys[i - 1] if i > 0 and off == 0 else b"", block_bytes=len(data), offset=off,
                    data=piece, chunk_xxh3=xxhash.xxh3_64_intdigest(piece), last=last,
                    block_xxh3=xxhash.xxh3_64_intdigest(data) if last else 0))


def get_blocks(channel, keys, include_ssd=False):
    """Reassembles a GetBlocks stream: {key: (bytes, tier)}, checking every checksum on the way."""
    got = {}
    stream = blocks_pb2_grpc.BlocksStub(channel).GetBlocks(
        blocks_pb2.GetBlocksRequest(keys=keys, include_ssd=include_ssd, chunk_bytes=8192), timeout=30)
    for c in stream:
        assert xxhash.xxh3_64_intdigest(c.data) == c.chunk_xxh3
        data, _ = got.get(c.key, (b"", c.tier))
        assert c.offset == len(data)
        got[c.key] = (data + c.data, c.tier)
    return got


def test_blocks_in_and_out_then_admin_from_python(node):
    name, channel = node
    keys, payloads = chain(4, 3)
    blocks = blocks_pb2_grpc.BlocksStub(channel)
    reply = blocks.PutBlocks(put_requests(keys[:3], payloads[:3], 30000), timeout=30)
    assert (reply.stored, reply.existed, reply.dropped) == (3, 0, 0)
    again = blocks.PutBlocks(put_requests(keys[:1], payloads[:1], 1 << 20), timeout=30)
    assert (again.stored, again.existed) == (0, 1)

    locality = locality_pb2_grpc.LocalityStub(channel)
    match = locality.MatchPrefix(locality_pb2.MatchPrefixRequest(keys=keys), timeout=10)
    assert match.matched_blocks == 3 and match.block_tokens == 0

    got = get_blocks(channel, keys)
    assert list(got) == keys[:3]
    assert all(got[k] == (p, common_pb2.TIER_HOST) for k, p in zip(keys[:3], payloads))

    admin = admin_pb2_grpc.AdminStub(channel)
    stats = admin.GetStats(admin_pb2.GetStatsRequest(), timeout=10)
    host = next(t for t in stats.tiers if t.tier == common_pb2.TIER_HOST)
    assert stats.node_id == name and host.blocks == 3 and host.bytes == 3 * BLOCK_BYTES
    assert stats.blocks_received == 4 and stats.blocks_served == 3  # one of them was held already

    evicted = admin.Evict(admin_pb2.EvictRequest(tier=common_pb2.TIER_HOST, bytes=64 << 20), timeout=30)
    assert evicted.blocks_demoted == 3
    assert get_blocks(channel, keys) == {}
    loaded = get_blocks(channel, keys, include_ssd=True)
    assert [loaded[k] for k in keys[:3]] == [(p, common_pb2.TIER_SSD) for p in payloads[:3]]

    cleared = admin.ClearNamespace(admin_pb2.ClearNamespaceRequest(namespace=common_pb2.NamespaceRef(model_id=MODEL)),
                                   timeout=30)
    assert (cleared.removed, cleared.busy) == (3, 0)
    assert locality.MatchPrefix(locality_pb2.MatchPrefixRequest(keys=keys), timeout=10).matched_blocks == 0

    with pytest.raises(grpc.RpcError) as err:
        admin.Evict(admin_pb2.EvictRequest(tier=common_pb2.TIER_HBM, bytes=1), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_broken_put_is_refused_and_events_follow_puts(node):
    _, channel = node
    events = events_pb2_grpc.EventsStub(channel)
    snap = events.Snapshot(events_pb2.SnapshotRequest(), timeout=10)
    stream = events.Subscribe(events_pb2.SubscribeRequest(epoch=snap.epoch, from_seq=snap.as_of_seq), timeout=30)
    keys, payloads = chain(2, 5)
    requests = list(put_requests(keys, payloads, 1 << 20))
    bad = blocks_pb2.PutBlocksRequest()
    bad.CopyFrom(requests[1])
    bad.chunk.chunk_xxh3 ^= 1
    blocks = blocks_pb2_grpc.BlocksStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        blocks.PutBlocks(iter([requests[0], bad]), timeout=30)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert "1 stored" in err.value.details()
    seen = []
    for batch in stream:
        assert not batch.resync
        seen += [(e.kind, e.key) for e in batch.events]
        if seen:
            break
    stream.cancel()
    assert seen == [(events_pb2.Event.KIND_STORED, keys[0])]


def test_standard_health_check(node):
    _, channel = node
    # grpc.health.v1.Health/Check without generated stubs: an empty request; the reply's field 1
    # is the status, SERVING = 1.
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    assert check(b"", timeout=10) == b"\x08\x01"


@pytest.fixture
def secure_node():
    """kvtierd with TLS that verifies client certificates when presented, a certificate identity
    granted read and a bearer token granted read and write (certificates made by kvtier-test-pki)."""
    path = tempfile.mkdtemp(prefix="kvtierd-py-tls-", dir=os.getcwd())
    subprocess.run([os.path.join(BIN, "kvtier-test-pki"), path], check=True)
    token = os.path.join(path, "writer-token")
    with open(token, "w") as f:
        f.write("py-wr1ter\n")
    address = f"127.0.0.1:{free_port()}"
    sections = f"""index: {{capacity: 4096}}
host: {{bytes: 16MiB, slab_bytes: 4MiB}}
ssd: {{enabled: false}}
server:
  grpc_address: "{address}"
  metrics_address: "127.0.0.1:{free_port()}"
  tls: {{cert_file: {path}/server.crt, key_file: {path}/server.key, client_ca_file: {path}/ca.crt,
        require_client_cert: false}}
  access:
    grants:
      - {{identity: "spiffe://kvtier.test/reader", roles: [read]}}
      - {{token_file: {token}, roles: [read, write]}}"""
    with running_kvtierd(path, f"pytls{os.getpid()}", sections):
        yield address, path, token


def test_tls_certificates_and_tokens_from_python(secure_node):
    from kvtier.grpc_channel import node_channel
    address, pki, token = secure_node
    match = locality_pb2.MatchPrefixRequest(namespace=common_pb2.NamespaceRef(model_id=MODEL), token_ids=list(range(64)))
    evict = admin_pb2.EvictRequest(tier=common_pb2.TIER_HOST, bytes=1)

    with node_channel(address, ca_file=f"{pki}/ca.crt", cert_file=f"{pki}/reader.crt",
                      key_file=f"{pki}/reader.key") as reader:
        assert locality_pb2_grpc.LocalityStub(reader).MatchPrefix(match, timeout=10).blocks_asked == 4
        with pytest.raises(grpc.RpcError) as refused:
            admin_pb2_grpc.AdminStub(reader).Evict(evict, timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with node_channel(address, ca_file=f"{pki}/ca.crt", token_file=token) as writer:
        assert admin_pb2_grpc.AdminStub(writer).GetStats(admin_pb2.GetStatsRequest(), timeout=10).node_id

    wrong = os.path.join(pki, "wrong-token")
    with open(wrong, "w") as f:
        f.write("py-wr1ter-not")
    with node_channel(address, ca_file=f"{pki}/ca.crt", token_file=wrong) as stranger:
        with pytest.raises(grpc.RpcError) as refused:
            locality_pb2_grpc.LocalityStub(stranger).MatchPrefix(match, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    for channel in (grpc.insecure_channel(address),
                    node_channel(address, ca_file=f"{pki}/other-ca.crt"),
                    node_channel(address, ca_file=f"{pki}/ca.crt", cert_file=f"{pki}/expired.crt",
                                 key_file=f"{pki}/expired.key")):
        with channel, pytest.raises(grpc.RpcError) as refused:
            locality_pb2_grpc.LocalityStub(channel).MatchPrefix(match, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
