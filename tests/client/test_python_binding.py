"""kvtier's Python binding (kvtier._native) against real shared-memory segments, from this process
and from a second one. Run by ctest (python_binding) with PYTHONPATH at build/python."""

import os
import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest

import kvtier

LAYOUT = dict(num_layers=2, num_kv_heads=2, head_dim=64, block_tokens=16)  # 16 KiB blocks


@pytest.fixture
def node():
    name = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    client = kvtier.Client(name, create_if_missing=True, index_capacity=4096, host_bytes=32 << 20,
                           slab_bytes=1 << 20)
    yield name, client
    del client
    kvtier.Client.destroy_node(name)


def chain(client, ns, n_blocks, first_token=0):
    return client.keys(ns, np.arange(first_token, first_token + n_blocks * ns.block_tokens, dtype=np.uint32))


def test_keys_are_the_chain_of_the_native_library(node):
    _, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    tokens = list(range(40))  # two whole blocks and a partial one
    keys = c.keys(ns, tokens)
    assert len(keys) == 2 and all(isinstance(k, bytes) and len(k) == kvtier.KEY_BYTES for k in keys)
    assert keys == c.keys(ns, np.array(tokens, dtype=np.uint32))
    other = c.register_namespace(model_id="m", cache_salt="tenant-b", **LAYOUT)
    assert c.keys(other, tokens)[0] != keys[0], "a salt changes every key"
    assert ns.block_bytes == 2 * 2 * 2 * 64 * 16 * 2 and ns.block_tokens == 16 and len(ns.root) == 16


def test_put_match_acquire_and_get_copy(node):
    _, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    keys = chain(c, ns, 4)
    parent = ns.root
    for i, k in enumerate(keys[:3]):
        c.put(ns, k, parent, np.full(ns.block_bytes, i + 1, dtype=np.uint8))
        parent = k
    m = c.match(keys)
    assert (m.overall, m.host, m.ssd, m.hbm) == (3, 3, 0, 0)
    blocks = c.acquire(keys)
    assert [b.key for b in blocks] == keys[:3]
    for i, b in enumerate(blocks):
        view = np.asarray(b)
        assert view.shape == (ns.block_bytes,) and not view.flags.writeable
        assert (view == i + 1).all()
    copied = c.get_copy(ns, keys)
    assert len(copied) == 3 * ns.block_bytes and copied[ns.block_bytes] == 2
    out = np.zeros(2 * ns.block_bytes, dtype=np.uint8)
    assert c.get_copy(ns, keys, out) == 2 and out[-1] == 2
    stats = c.stats()
    assert stats["puts"] == 3 and stats["host_blocks"] == 3 and stats["not_admitted"] == 0


def test_views_are_zero_copy_and_keep_the_lease(node):
    _, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    (key,) = chain(c, ns, 1)
    r = c.reserve(ns, key, ns.root)
    assert not r.exists and len(r) == ns.block_bytes
    w = np.asarray(r)  # the arena itself: write in place
    w[:] = 42
    with pytest.raises(BufferError):
        r.commit()  # a view is alive
    del w
    r.commit()
    with pytest.raises(ValueError):
        r.commit()
    (a,) = c.acquire([key])
    (b,) = c.acquire([key])
    va, vb = np.asarray(a), np.asarray(b)
    assert va.__array_interface__["data"][0] == vb.__array_interface__["data"][0], "both views are the arena's bytes"
    mv = memoryview(a)
    assert mv.readonly and mv[0] == 42
    with pytest.raises(BufferError):
        a.release()
    del va, mv
    a.release()
    assert a.released
    with pytest.raises(BufferError):
        memoryview(a)
    with b:
        assert bytes(vb[:2]) == b"\x2a\x2a"
        del vb
    assert b.released
    assert c.reserve(ns, key, ns.root).exists, "a cached block needs no second write"


def test_a_second_process_sees_the_blocks(node):
    name, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    code = f"""
import numpy as np, kvtier
c = kvtier.Client({name!r})
ns = c.register_namespace(model_id="m", num_layers=2, num_kv_heads=2, head_dim=64, block_tokens=16)
keys = c.keys(ns, np.arange(64, dtype=np.uint32))
parent = ns.root
for i, k in enumerate(keys):
    c.put(ns, k, parent, bytes([i + 10]) * ns.block_bytes)
    parent = k
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=dict(os.environ))
    keys = chain(c, ns, 4)
    blocks = c.acquire(keys)
    assert [np.asarray(b)[0] for b in blocks] == [10, 11, 12, 13]


def test_bad_input_is_a_clear_error(node):
    _, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    (key,) = chain(c, ns, 1)
    with pytest.raises(kvtier.Error) as e:
        c.put(ns, key, ns.root, b"too short")
    assert e.value.code == "invalid_argument" and "must be 16384 bytes" in str(e.value)
    with pytest.raises(ValueError, match="16 bytes"):
        c.match([b"short"])
    with pytest.raises(ValueError, match="uint32"):
        c.keys(ns, [-1])
    with pytest.raises(ValueError, match="uint32"):
        c.keys(ns, np.arange(32, dtype=np.int64))
    strided = np.zeros(2 * ns.block_bytes, dtype=np.uint8)[::2]
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        c.put(ns, key, ns.root, strided)
    with pytest.raises(kvtier.Error, match="dtype"):
        c.register_namespace(model_id="m", dtype="fp64", **LAYOUT)
    with pytest.raises(kvtier.Error) as e:
        kvtier.Client(f"no-such-node-{uuid.uuid4().hex[:8]}")
    assert e.value.code == "not_found"
    assert c.match(chain(c, ns, 2)).overall == 0, "nothing was stored by the failed calls"


def test_hbm_residency(node):
    _, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    keys = chain(c, ns, 3)
    blocks = [(k, keys[i - 1] if i else ns.root, 40 + i) for i, k in enumerate(keys)]
    assert c.hbm_stored(ns, blocks) == 3
    m = c.match(keys)
    assert (m.overall, m.hbm, m.host) == (3, 3, 0)
    assert c.hbm_evicted(blocks[2:]) == 1
    assert c.match(keys).hbm == 2
    stats = c.stats()
    assert (stats["hbm_recorded"], stats["hbm_withdrawn"], stats["hbm_dropped"]) == (3, 1, 0)
    with pytest.raises(kvtier.Error, match="exceeds"):
        c.hbm_stored(ns, [(keys[2], keys[1], 1 << 24)])
    with pytest.raises(ValueError, match="block_id"):
        c.hbm_stored(ns, [(keys[2], keys[1])])


def test_from_env_reads_the_pods_variables(node, monkeypatch):
    name, c = node
    monkeypatch.setenv("KVTIER_NODE_NAME", name)
    monkeypatch.setenv("KVTIER_VERIFY_READS", "1")
    env_client = kvtier.Client.from_env()
    ns = env_client.register_namespace(model_id="m", **LAYOUT)
    (key,) = chain(env_client, ns, 1)
    c.put(ns, key, ns.root, bytes(ns.block_bytes))
    assert env_client.match([key]).host == 1
    monkeypatch.setenv("KVTIER_VERIFY_READS", "maybe")
    with pytest.raises(kvtier.Error, match="KVTIER_VERIFY_READS"):
        kvtier.Client.from_env()


def test_client_and_from_env_take_the_same_options(monkeypatch):
    name = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KVTIER_NODE_NAME", name)
    sizes = dict(index_capacity=2048, host_bytes=8 << 20, slab_bytes=1 << 20)
    try:
        created = kvtier.Client.from_env(create_if_missing=True, huge_pages=True, verify_reads=True, **sizes)
        ns = created.register_namespace(model_id="m", **LAYOUT)
        stats = created.stats()
        assert (stats["host_bytes"], stats["index_capacity"]) == (8 << 20, 2048), "created at the sizes given"
        (key,) = chain(created, ns, 1)
        created.put(ns, key, ns.root, bytes(ns.block_bytes))
        opened = kvtier.Client(name, shm_prefix="kvtier", engine_id="10.0.0.7", verify_reads=True, room_wait_ms=5)
        assert opened.match([key]).host == 1
        with pytest.raises(TypeError, match="unknown client option 'host_byte' .*options: shm_prefix create_if_missing"):
            kvtier.Client(name, host_byte=1 << 20)
        with pytest.raises(TypeError, match="unknown client option 'host_byte'"):
            kvtier.Client.from_env(host_byte=1 << 20)
        with pytest.raises(TypeError, match="unknown client option 'node_name'"):
            kvtier.Client.from_env(node_name="other")  # KVTIER_NODE_NAME names the node
        with pytest.raises(TypeError, match="'host_bytes' has the wrong type: str"):
            kvtier.Client(name, host_bytes="8MiB")
        with pytest.raises(TypeError, match="'slab_bytes' has the wrong type: int"):
            kvtier.Client.from_env(slab_bytes=-1)
    finally:
        kvtier.Client.destroy_node(name)


def test_puts_from_threads(node):
    _, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    errors = []

    def writer(t):
        try:
            keys = chain(c, ns, 8, first_token=100000 * (t + 1))
            parent = ns.root
            for k in keys:
                c.put(ns, k, parent, np.full(ns.block_bytes, t, dtype=np.uint8))
                parent = k
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for t in range(4):
        keys = chain(c, ns, 8, first_token=100000 * (t + 1))
        assert c.match(keys).host == 8
        assert all(np.asarray(b)[0] == t for b in c.acquire(keys))


def test_pins_and_a_load_with_nothing_on_ssd(node):
    _, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    keys = chain(c, ns, 3)
    c.put(ns, keys[0], ns.root, np.zeros(ns.block_bytes, np.uint8))
    c.put(ns, keys[1], keys[0], np.zeros(ns.block_bytes, np.uint8))
    assert c.pins(keys) == [0, 0, 0]
    blocks = c.acquire(keys)
    assert c.pins(keys) == [1, 1, 0], "one process pins the two cached blocks; the third is not cached"
    for b in blocks:
        b.release()
    assert c.pins(keys) == [0, 0, 0]
    load = c.load(keys)  # the cached prefix is all in host memory: nothing to ask of a daemon
    assert len(load) == 0 and load.done() and load.wait(0.1) == 0


def test_copies_by_arena_offset_from_another_process(node):
    """What vLLM's offloading spec does: one process holds a reservation or a lease, another copies
    at its arena offset (the arena is mapped at different addresses in each)."""
    name, c = node
    ns = c.register_namespace(model_id="m", **LAYOUT)
    keys = chain(c, ns, 2)
    r = c.reserve(ns, keys[0], ns.root)
    offset = c.arena_offset(r)
    assert 0 <= offset < c.host_memory()[1]
    code = f"""
import numpy as np, kvtier
c = kvtier.Client({name!r})
cache = np.arange(4 * {ns.block_bytes} // 8, dtype=np.uint64).view(np.uint8).reshape(4, -1)
copier = kvtier.KvCopier([(cache.ctypes.data, cache.strides[0], cache.shape[1])], 4, client=c)
copier.start("offload", [2], [{offset}]).wait()
try:
    copier.start("offload", [2], [c.host_memory()[1] - 1])
except ValueError as e:
    assert "outside the arena" in str(e), e
else:
    raise AssertionError("an offset past the arena was taken")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=dict(os.environ))
    expected = np.arange(4 * ns.block_bytes // 8, dtype=np.uint64).view(np.uint8).reshape(4, -1)[2]
    assert (np.asarray(r) == expected).all()
    r.commit()
    [held] = c.acquire(keys[:1])
    assert c.arena_offset(held) == offset
    with pytest.raises(ValueError, match="need a KvCopier made with a client"):
        kvtier.KvCopier([(expected.ctypes.data, len(expected), len(expected))], 1).start("onboard", [0], [offset])
    with pytest.raises(TypeError):
        c.arena_offset(b"not a block")


def test_processes_creating_one_node_at_once_all_open_it():
    """Engines started together each open the node with create_if_missing: the ones that lose the
    race attach while the winner is still writing the segments' headers (and reserving the arena's
    pages), and must wait for it rather than fail (vLLM's scheduler and worker processes did)."""
    code = """
import os, sys, time, kvtier
go = sys.argv[2]
while not os.path.exists(go):
    pass
kvtier.Client(sys.argv[1], create_if_missing=True, host_bytes=256 << 20, index_capacity=65536)
"""
    for round_ in range(4):
        name = f"pytest-race-{os.getpid()}-{round_}"
        go = f"/tmp/{name}.go"
        procs = [subprocess.Popen([sys.executable, "-c", code, name, go], env=dict(os.environ),
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        try:
            import time
            time.sleep(0.5)  # every child waiting on the file
            open(go, "w").close()
            errors = [p.communicate(timeout=60)[1] for p in procs]
            assert [p.returncode for p in procs] == [0] * len(procs), "\n".join(e for e in errors if e)
        finally:
            os.unlink(go)
            kvtier.Client.destroy_node(name)
