"""kvtier.RemoteReader from Python against a real kvtierd: a chain put through kvtier.Client comes
back into a numpy array over UCX (and over GetBlocks when UCX is off), bytes equal to what the
node holds, with kvtier.fetch_remote as the function form."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
import kvtier  # noqa: E402
from kvtierd_node import SHM_PREFIX, kvtierd_node  # noqa: E402

MODEL = "py-remote/model"
LAYOUT = dict(num_layers=2, num_kv_heads=8, head_dim=64)  # 64 KiB blocks of bf16


def kvtierd(ucx_enabled=True):
    return kvtierd_node(
        "index: {capacity: 4096}\nhost: {bytes: 16MiB, slab_bytes: 1MiB}\nssd: {enabled: false}\n"
        f"server: {{{{server}}, ucx: {{enabled: {'true' if ucx_enabled else 'false'}}}}}",
        f"namespaces:\n  - model_id: {MODEL}\n"
        "    layout: {dtype: bf16, block_tokens: 16, num_layers: 2, num_kv_heads: 8, head_dim: 64}\n")


def put_chain(name, blocks, seed):
    client = kvtier.Client(name, shm_prefix=SHM_PREFIX)
    ns = client.register_namespace(model_id=MODEL, **LAYOUT)
    keys = client.keys(ns, np.arange(seed, seed + blocks * 16, dtype=np.uint32))
    rng = np.random.default_rng(seed)
    payloads = [rng.integers(0, 255, ns.block_bytes, dtype=np.uint8) for _ in keys]
    parent = ns.root
    for key, data in zip(keys, payloads):
        client.put(ns, key, parent, data)
        parent = key
    return client, ns, keys, payloads


@pytest.mark.parametrize("tls", ["tcp", "sm,self"])
def test_fetch_remote_reads_a_chain_over_ucx(tls, monkeypatch):
    monkeypatch.setenv("UCX_TLS", tls)  # the daemon started below and this process
    with kvtierd() as (name, address):
        client, ns, keys, payloads = put_chain(name, 6, 100)
        reader = kvtier.RemoteReader(address)
        assert reader.path == "ucx", reader.fallback_reason
        dest = np.zeros(8 * ns.block_bytes, dtype=np.uint8)
        got = kvtier.fetch_remote(reader, keys + [b"\x01" * 16, b"\x02" * 16], dest)
        assert got["path"] == "ucx" and got["blocks"] == 6 and got["held"] == 6 and got["corrupt"] == 0
        assert got["tiers"] == ["host"] * 6
        assert np.array_equal(dest[:6 * ns.block_bytes], np.concatenate(payloads))
        # A destination with room for two blocks gets two.
        small = bytearray(2 * ns.block_bytes + 10)
        assert reader.fetch(keys, small)["blocks"] == 2
        assert bytes(small[:ns.block_bytes]) == payloads[0].tobytes()
        assert reader.stats()["ucx_fetches"] == 2
        with pytest.raises(TypeError, match="unknown RemoteReader option 'no_such_option'"):
            kvtier.RemoteReader(address, no_such_option=1)
        with pytest.raises(TypeError, match="'timeout_ms' has the wrong type: str"):
            kvtier.RemoteReader(address, timeout_ms="soon")
        with pytest.raises(kvtier.Error) as bad:
            kvtier.RemoteReader("")  # the library's own refusal, as kvtier.Error
        assert bad.value.code == "invalid_argument"
        with pytest.raises(BufferError):
            reader.fetch(keys, b"read-only bytes")
        del client


def test_fetch_remote_falls_back_to_getblocks():
    with kvtierd(ucx_enabled=False) as (name, address):
        client, ns, keys, payloads = put_chain(name, 3, 200)
        reader = kvtier.RemoteReader(address, timeout_ms=5000)
        dest = bytearray(3 * ns.block_bytes)
        got = reader.fetch(keys, dest)
        assert got["path"] == "grpc" and got["blocks"] == 3
        assert bytes(dest) == b"".join(p.tobytes() for p in payloads)
        assert "server.ucx.enabled" in reader.fallback_reason
        assert reader.path == "grpc"
        del client
