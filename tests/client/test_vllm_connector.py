"""kvtier.vllm_connector driven the way vLLM drives a KVConnectorBase_V1, without vLLM (it cannot be
installed here): a stand-in engine with vLLM's objects (Request, KVCacheBlocks, SchedulerOutput with
new and cached requests) and its call order per step:

  scheduler: get_num_new_matched_tokens → (allocate) update_state_after_alloc → build_connector_meta
  worker:    bind_connector_metadata → start_load_kv → per layer { wait_for_layer_load, attention,
             save_kv_layer } → wait_for_save → get_finished → get_block_ids_with_load_errors →
             clear_connector_metadata
  scheduler: request_finished when a request ends.

The "GPU" cache is numpy arrays in vLLM's layouts, copied by the connector's host-memory copier (the
same chunk arithmetic as the CUDA kernel). Every KV value is a function of the token prefix, so the
attention step checks that whatever the connector loaded is exactly what the engine would have
computed. Run by ctest (vllm_connector) with PYTHONPATH at build/python."""

import os
import sys
import time
import types
import uuid
from dataclasses import dataclass, field

import numpy as np
import pytest

import kvtier
from kvtier.vllm_connector import KVConnectorRole, KvtierConnector, _NamespaceArgs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from kvtierd_node import SHM_PREFIX, kvtierd_node  # noqa: E402
from loopback import free_port  # noqa: E402

BLOCK = 16
LAYERS = 3
HEADS = 4  # KV heads of the whole model
DIM = 32
GPU_BLOCKS = 64


# ------------------------------------------------------------------ vLLM's objects, as the connector sees them


@dataclass
class ModelConfig:
    model: str = "test/llama-mini"
    dtype: str = "torch.bfloat16"
    use_mla: bool = False

    def get_num_layers(self, parallel):
        return LAYERS

    def get_num_kv_heads(self, parallel):
        return HEADS // parallel.tensor_parallel_size

    def get_head_size(self):
        return DIM


@dataclass
class ParallelConfig:
    tensor_parallel_size: int = 1


@dataclass
class CacheConfig:
    block_size: int = BLOCK
    cache_dtype: str = "auto"


@dataclass
class KVTransferConfig:
    kv_connector: str = "KvtierConnector"
    kv_connector_module_path: str = "kvtier.vllm_connector"
    kv_role: str = "kv_both"
    kv_connector_extra_config: dict = field(default_factory=dict)


@dataclass
class VllmConfig:
    model_config: ModelConfig
    parallel_config: ParallelConfig
    cache_config: CacheConfig
    kv_transfer_config: KVTransferConfig


@dataclass
class Request:
    request_id: str
    prompt_token_ids: list
    cache_salt: str = ""
    lora_request: object = None
    output_token_ids: list = field(default_factory=list)
    mm_features: list | None = None  # vLLM's MultiModalFeatureSpec list: an image's identifier, its placeholder range
    prompt_embeds: object = None
    kv_transfer_params: dict | None = None  # from the API request; a scheduler may name a node here

    @property
    def all_token_ids(self):
        return self.prompt_token_ids + self.output_token_ids


@dataclass
class KVCacheBlocks:
    ids: list

    def get_block_ids(self):
        return (list(self.ids),)


@dataclass
class NewRequestData:
    req_id: str
    prompt_token_ids: list
    block_ids: tuple
    num_computed_tokens: int


@dataclass
class CachedRequestData:
    req_ids: list = field(default_factory=list)
    resumed_req_ids: set = field(default_factory=set)
    new_block_ids: list = field(default_factory=list)
    num_computed_tokens: list = field(default_factory=list)


@dataclass
class SchedulerOutput:
    scheduled_new_reqs: list
    scheduled_cached_reqs: CachedRequestData
    num_scheduled_tokens: dict
    finished_req_ids: set = field(default_factory=set)


# ------------------------------------------------------------------ the model's KV: a function of the prefix


def prefix_hashes(tokens):
    h, out = 0, []
    for t in tokens:
        h = (h * 1000003 + t + 1) & 0xFFFFFFFF
        out.append(h)
    return out


def kv_of(prefix_hash, layer, kv, heads, head_offset):
    """The KV a model stores for a token: [heads, DIM] uint16 (bf16's size)."""
    base = (prefix_hash ^ (layer * 7919) ^ (kv * 104729)) & 0xFFFF
    grid = np.arange(heads * DIM, dtype=np.uint32).reshape(heads, DIM) + head_offset * DIM
    return ((grid * 40503 + base) & 0xFFFF).astype(np.uint16)


# ------------------------------------------------------------------ the stand-in engine


@dataclass
class Running:
    request: Request
    blocks: list
    computed: int
    new_blocks: list = field(default_factory=list)
    first_step: bool = True


class Engine:
    """One vLLM engine (one rank of it per worker): a scheduler connector, worker connectors, a
    paged KV cache per worker and vLLM's step loop."""

    def __init__(self, node, layout="flash_attn", tp=1, extra=None, chunk=10_000):
        self.tp = tp
        self.chunk = chunk
        extra = {"kvtier.node_name": node, **(extra or {})}
        self.config = VllmConfig(ModelConfig(), ParallelConfig(tp), CacheConfig(), KVTransferConfig(kv_connector_extra_config=extra))
        self.scheduler = KvtierConnector(self.config, KVConnectorRole.SCHEDULER)
        self.workers, self.caches = [], []
        heads = HEADS // tp
        for rank in range(tp):
            cfg = VllmConfig(ModelConfig(), ParallelConfig(tp), CacheConfig(),
                             KVTransferConfig(kv_connector_extra_config={**extra, "kvtier.tp_rank": rank}))
            worker = KvtierConnector(cfg, KVConnectorRole.WORKER)
            if layout == "flash_attn":  # [2, num_blocks, block, heads, dim]
                cache = {f"model.layers.{l}.self_attn.attn": np.zeros((2, GPU_BLOCKS, BLOCK, heads, DIM), np.uint16)
                         for l in range(LAYERS)}
            else:  # flashinfer: [num_blocks, 2, block, heads, dim]
                cache = {f"model.layers.{l}.self_attn.attn": np.zeros((GPU_BLOCKS, 2, BLOCK, heads, DIM), np.uint16)
                         for l in range(LAYERS)}
            worker.register_kv_caches(cache)
            self.workers.append(worker)
            self.caches.append(cache)
        self.layout = layout
        self.free = list(range(GPU_BLOCKS))
        self.running: dict[str, Running] = {}
        self.loaded_tokens: dict[str, int] = {}
        self.load_errors: set = set()
        self.mismatches = 0

    def slot(self, rank, name, kv, block, offset):
        c = self.caches[rank][name]
        return c[kv, block, offset] if self.layout == "flash_attn" else c[block, kv, offset]

    def write(self, rank, name, kv, block, offset, value):
        c = self.caches[rank][name]
        if self.layout == "flash_attn":
            c[kv, block, offset] = value
        else:
            c[block, kv, offset] = value

    def add(self, request):
        ext, load_async = self.scheduler.get_num_new_matched_tokens(request, 0)
        for _ in range(1000):  # None: not yet (SSD or remote blocks on their way); vLLM asks again next step
            if ext is not None:
                break
            time.sleep(0.01)
            ext, load_async = self.scheduler.get_num_new_matched_tokens(request, 0)
        assert load_async is False and ext is not None
        need = -(-len(request.prompt_token_ids) // BLOCK)
        blocks = [self.free.pop(0) for _ in range(need)]
        self.scheduler.update_state_after_alloc(request, KVCacheBlocks(blocks), ext)
        self.running[request.request_id] = Running(request, blocks, computed=ext)
        self.loaded_tokens[request.request_id] = ext
        return ext

    def step(self, decode_token=None):
        """One scheduler step + forward pass for every running request."""
        new, cached, scheduled = [], CachedRequestData(), {}
        for rid, r in self.running.items():
            total = len(r.request.all_token_ids)
            todo = min(total - r.computed, self.chunk)
            if todo == 0:  # decode: the model emits a token, which the next step computes
                r.request.output_token_ids.append(decode_token(r.request))
                total += 1
                todo = 1
            while len(r.blocks) * BLOCK < r.computed + todo:
                b = self.free.pop(0)
                r.blocks.append(b)
                r.new_blocks.append(b)
            scheduled[rid] = todo
            if r.first_step:
                new.append(NewRequestData(rid, list(r.request.prompt_token_ids), (list(r.blocks),), r.computed))
            else:
                cached.req_ids.append(rid)
                cached.new_block_ids.append((list(r.new_blocks),) if r.new_blocks else None)
                cached.num_computed_tokens.append(r.computed)
            r.new_blocks = []
        out = SchedulerOutput(new, cached, scheduled)
        meta = self.scheduler.build_connector_meta(out)
        wrong = set()  # blocks whose KV attention found different from the model's
        errors = set()
        for rank, worker in enumerate(self.workers):
            worker.bind_connector_metadata(meta)
            worker.start_load_kv(forward_context=None)
            for l, name in enumerate(self.caches[rank]):
                worker.wait_for_layer_load(name)
                wrong |= self.attention(rank, l, name, scheduled)
                worker.save_kv_layer(name, self.caches[rank][name], attn_metadata=None)
            worker.wait_for_save()
            assert worker.get_finished(set()) == (None, None)
            errors |= worker.get_block_ids_with_load_errors()
            worker.clear_connector_metadata()
        # Blocks that failed to load hold garbage: vLLM learns it after the step and recomputes from
        # the first of them. Anything else wrong is the connector's fault.
        self.mismatches += len(wrong - errors)
        self.load_errors |= errors
        for rid, todo in scheduled.items():
            r = self.running[rid]
            r.computed += todo
            r.first_step = False
            failed = [i for i, b in enumerate(r.blocks) if b in errors and i * BLOCK < r.computed]
            if failed:
                r.computed = failed[0] * BLOCK

    def attention(self, rank, layer, name, scheduled):
        """Checks the KV of every token already computed (loaded ones included), then writes the KV
        of the tokens scheduled now, as attention would."""
        heads = HEADS // self.tp
        wrong = set()
        for rid, todo in scheduled.items():
            r = self.running[rid]
            tokens = r.request.all_token_ids
            hashes = prefix_hashes(tokens[: r.computed + todo])
            for p in range(r.computed):
                block, offset = r.blocks[p // BLOCK], p % BLOCK
                for kv in (0, 1):
                    if not np.array_equal(self.slot(rank, name, kv, block, offset), kv_of(hashes[p], layer, kv, heads, rank * heads)):
                        wrong.add(block)
            for p in range(r.computed, r.computed + todo):
                for kv in (0, 1):
                    self.write(rank, name, kv, r.blocks[p // BLOCK], p % BLOCK, kv_of(hashes[p], layer, kv, heads, rank * heads))
        return wrong

    def run(self, request, decode_tokens=0):
        loaded = self.add(request)
        while self.running[request.request_id].computed < len(request.prompt_token_ids):
            self.step()
        for _ in range(decode_tokens):
            self.step(decode_token=lambda req: (len(req.all_token_ids) * 7) % 32000)
        self.finish(request.request_id)
        return loaded

    def finish(self, rid):
        r = self.running.pop(rid)
        assert self.scheduler.request_finished(r.request, r.blocks) == (False, None)
        self.free.extend(r.blocks)

    def close(self):
        for w in self.workers:
            w.shutdown()


@pytest.fixture
def node():
    name = f"pytest-vllm-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # The node's segments, made the way kvtierd would (the engines only attach).
    owner = kvtier.Client(name, create_if_missing=True, index_capacity=8192, host_bytes=64 << 20, slab_bytes=1 << 20)
    yield name
    del owner
    kvtier.Client.destroy_node(name)


def tokens(n, seed=1):
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(0, 32000, n)]


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("layout", ["flash_attn", "flashinfer"])
def test_a_second_engine_loads_the_prefix_the_first_saved(node, layout):
    prompt = tokens(100)
    a = Engine(node)
    assert a.run(Request("a-1", prompt)) == 0, "nothing is cached before the first engine runs"
    assert a.mismatches == 0
    assert a.workers[0].stats["save_blocks"] == 6  # 100 tokens: six whole blocks

    b = Engine(node, layout=layout)  # another engine (another layout) on the same node
    follow_up = prompt + tokens(40, seed=2)
    assert b.run(Request("b-1", follow_up)) == 6 * BLOCK
    assert b.mismatches == 0, "the loaded KV is exactly what the engine would have computed"
    assert b.workers[0].stats["load_blocks"] == 6 and not b.load_errors
    a.close()
    b.close()


def test_a_fully_cached_prompt_leaves_its_last_token_to_compute(node):
    prompt = tokens(96)
    Engine(node).run(Request("a", prompt))
    b = Engine(node)
    assert b.run(Request("b", prompt)) == 5 * BLOCK, "vLLM must compute at least one token"
    assert b.mismatches == 0


def test_cache_salt_separates_tenants(node):
    prompt = tokens(64)
    Engine(node).run(Request("a", prompt, cache_salt="tenant-a"))
    b = Engine(node)
    assert b.add(Request("other", prompt, cache_salt="tenant-b")) == 0
    assert b.add(Request("unsalted", prompt)) == 0
    assert b.add(Request("same", prompt, cache_salt="tenant-a")) == 3 * BLOCK


def test_chunked_prefill_and_decode_blocks_are_saved_as_they_fill(node):
    prompt = tokens(90)
    a = Engine(node, chunk=40)  # prefill in three chunks
    a.run(Request("a", prompt), decode_tokens=40)  # 130 tokens computed: eight whole blocks
    assert a.mismatches == 0
    assert a.workers[0].stats["save_blocks"] == 8
    turn_two = Request("b", prompt + [(p * 7) % 32000 for p in range(90, 130)] + tokens(20, seed=3))
    b = Engine(node)
    assert b.run(turn_two) == 8 * BLOCK, "the next turn finds the prompt and the answer"
    assert b.mismatches == 0


def fill_arena(node, seed, until=None):
    """Other traffic fills the 64 MiB arena (the blocks are 24 KiB), evicting what it can; with
    `until`, goes on (up to three arenas' worth) until it holds: which blocks the sampled eviction
    takes first depends on their ages, so on timing."""
    filler = kvtier.Client(node)
    ns = filler.register_namespace(model_id=f"filler{seed}", num_layers=3, num_kv_heads=4, head_dim=32, block_tokens=16)
    payload = np.zeros(ns.block_bytes, np.uint8)
    for i in range(9000 if until else 3000):
        keys = filler.keys(ns, [i, i + 1] * 8)
        filler.put(ns, keys[0], ns.root, payload)
        if until is not None and i >= 3000 and i % 100 == 0 and until():
            return


def test_the_matched_prefix_is_pinned_until_the_worker_has_it(node):
    prompt = tokens(80)
    Engine(node).run(Request("a", prompt))
    b = Engine(node)
    assert b.add(Request("b", prompt + tokens(8, seed=4))) == 5 * BLOCK
    fill_arena(node, 1)  # between the scheduler's match and the worker's acquire
    b.step()
    assert not b.load_errors and b.workers[0].stats["load_blocks"] == 5
    for _ in range(3):  # let go two steps after the allocation
        b.step(decode_token=lambda req: 1)
    assert b.scheduler._scheduler_pins == {}
    assert b.mismatches == 0


def test_blocks_evicted_after_the_match_are_reported_and_recomputed(node):
    prompt = tokens(80)
    Engine(node).run(Request("a", prompt))
    b = Engine(node)
    assert b.add(Request("b", prompt + tokens(8, seed=4))) == 5 * BLOCK
    # The scheduler's pins gone before the worker acquires (vLLM's async scheduling ran ahead), and
    # other traffic fills the arena.
    b.scheduler._unpin("b")
    c = kvtier.Client(node)
    keys = c.keys(b.scheduler._namespace(0, _NamespaceArgs()), prompt)
    fill_arena(node, 2, until=lambda: c.match(keys).host < len(keys))
    b.step()
    lost = b.load_errors
    assert lost, "the arena was refilled: some of the prefix is gone"
    assert lost <= set(b.running["b"].blocks[:5]), "only blocks the scheduler asked to load are reported"
    assert b.workers[0].stats["load_errors"] == len(lost)
    while b.running["b"].computed < 88:  # vLLM recomputes from the first lost block
        b.step()
    b.step(decode_token=lambda req: 1)  # and attention then reads the right KV everywhere
    assert b.mismatches == 0


def test_tensor_parallel_ranks_have_their_own_blocks(node):
    prompt = tokens(70)
    a = Engine(node, tp=2)
    a.run(Request("a", prompt))
    assert [w.stats["save_blocks"] for w in a.workers] == [4, 4]
    b = Engine(node, tp=2)
    assert b.run(Request("b", prompt + tokens(10, seed=5))) == 4 * BLOCK
    assert b.mismatches == 0, "each rank loaded its own heads"
    single = Engine(node, tp=1)
    assert single.add(Request("c", prompt + [1])) == 0, "a TP=1 engine has other blocks (all heads in one)"


def test_a_load_only_engine_saves_nothing(node):
    prompt = tokens(48)
    reader = Engine(node, extra={"kvtier.save": "false"})
    reader.run(Request("r", prompt))
    assert reader.workers[0].stats["save_blocks"] == 0
    assert Engine(node).add(Request("w", prompt + [1])) == 0


def test_bad_setups_are_refused_clearly(node, monkeypatch):
    monkeypatch.delenv("KVTIER_NODE_NAME", raising=False)
    cfg = VllmConfig(ModelConfig(), ParallelConfig(), CacheConfig(), KVTransferConfig())
    with pytest.raises(ValueError, match="KVTIER_NODE_NAME"):
        KvtierConnector(cfg, KVConnectorRole.WORKER)
    cfg.kv_transfer_config.kv_connector_extra_config = {"kvtier.node_name": node}
    worker = KvtierConnector(cfg, KVConnectorRole.WORKER)
    wrong_heads = {"layer.0": np.zeros((2, GPU_BLOCKS, BLOCK, HEADS + 1, DIM), np.uint16)}
    with pytest.raises(ValueError, match="bytes per block"):
        worker.register_kv_caches(wrong_heads)
    strided = np.zeros((2, GPU_BLOCKS, BLOCK, HEADS, 2 * DIM), np.uint16)[..., :DIM]
    with pytest.raises(ValueError, match="not contiguous"):
        KvtierConnector(cfg, KVConnectorRole.WORKER).register_kv_caches({"layer.0": strided})
    hybrid = types.SimpleNamespace(kv_cache_groups=[object(), object()])  # full attention + sliding window
    with pytest.raises(ValueError, match="2 KV-cache groups"):
        KvtierConnector(cfg, KVConnectorRole.SCHEDULER, hybrid)


def test_a_copy_in_flight_holds_its_blocks(node):
    c = kvtier.Client(node)
    ns = c.register_namespace(model_id="copy", num_layers=1, num_kv_heads=1, head_dim=8, block_tokens=4)
    cache = np.arange(2 * 4 * 4 * 8, dtype=np.uint16).reshape(2, 4, 4, 1, 8)
    base = cache.__array_interface__["data"][0]
    chunk = 4 * 8 * 2
    copier = kvtier.KvCopier([(base, chunk, chunk), (base + 4 * chunk, chunk, chunk)], 4)
    assert copier.method == "host" and copier.block_bytes == ns.block_bytes
    keys = c.keys(ns, list(range(4)))
    r = c.reserve(ns, keys[0], ns.root)
    copy = copier.start("offload", [2], [r])
    with pytest.raises(BufferError, match="in flight"):
        r.commit()
    copy.wait()
    r.commit()
    with c.acquire(keys)[0] as block:
        got = np.frombuffer(block.tobytes(), np.uint16)
        assert np.array_equal(got, np.concatenate([cache[0, 2].ravel(), cache[1, 2].ravel()]))
    with pytest.raises(kvtier.Error, match="block id"):
        copier.start("onboard", [4], c.acquire(keys))
    with pytest.raises(TypeError):
        copier.start("offload", [0], c.acquire(keys))  # an offload writes into reservations only
    # A CUDA copier of host-memory tensors: no CUDA in the build or no device (unavailable), or a
    # device that refuses memory that is not its own (invalid_argument).
    with pytest.raises(kvtier.Error) as refused:
        kvtier.KvCopier([(base, chunk, chunk)], 4, device=0, client=c)
    assert refused.value.code in ("unavailable", "invalid_argument")


def test_a_worker_killed_mid_step_leaves_no_pin_or_reservation(node):
    """SIGKILL of a vLLM worker between start_load_kv/save_kv_layer and wait_for_save: its leases
    and reservations are reclaimed, and the next engine loads and saves as if it never ran."""
    prompt = tokens(64)
    Engine(node).run(Request("a", prompt))  # four blocks cached
    watcher = kvtier.Client(node)
    used_before = watcher.stats()["host_used_bytes"]

    pid = os.fork()
    if pid == 0:  # the doomed engine: loads four blocks and reserves room for three more, then dies
        try:
            e = Engine(node)
            e.add(Request("b", prompt + tokens(56, seed=6)))
            r = e.running["b"]
            new, cached, scheduled = [NewRequestData("b", list(r.request.prompt_token_ids), (list(r.blocks),), r.computed)], CachedRequestData(), {"b": 56}
            meta = e.scheduler.build_connector_meta(SchedulerOutput(new, cached, scheduled))
            w = e.workers[0]
            w.bind_connector_metadata(meta)
            w.start_load_kv(forward_context=None)
            for name, layer in e.caches[0].items():
                w.save_kv_layer(name, layer, attn_metadata=None)
            assert len(w._held) == 4 and sum(len(rs) for rs, _ in w._saving) == 3
            os.kill(os.getpid(), 9)
        finally:
            os._exit(3)  # never reached unless the setup above failed
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9, "the child died by SIGKILL mid-step"
    assert watcher.stats()["host_used_bytes"] > used_before, "its reservations hold arena space"
    reclaimed = watcher.stats()["processes_reclaimed"]
    watcher.maintain()
    assert watcher.stats()["processes_reclaimed"] > reclaimed, "the dead worker's pins were cleared"
    assert watcher.stats()["host_used_bytes"] == used_before, "maintain() freed what the dead worker reserved"

    b = Engine(node)
    assert b.run(Request("b", prompt + tokens(56, seed=6))) == 4 * BLOCK
    assert b.mismatches == 0 and b.workers[0].stats["save_blocks"] == 3, "its blocks were not left half-written"


def test_multimodal_and_embedding_prompts_neither_load_nor_save(node):
    """Two prompts with the same image placeholder tokens but different images have the same token
    ids: keyed by tokens they would load each other's KV. They are not cached at all."""
    prompt = tokens(64)
    image_a = [types.SimpleNamespace(identifier="image-a", mm_position=types.SimpleNamespace(offset=0, length=32))]
    image_b = [types.SimpleNamespace(identifier="image-b", mm_position=types.SimpleNamespace(offset=0, length=32))]
    writer = Engine(node)
    writer.run(Request("a", prompt, mm_features=image_a))
    assert writer.workers[0].stats["save_blocks"] == 0, "the image's KV is not saved under token keys"
    assert writer.scheduler.stats["unkeyable_requests"] >= 1
    reader = Engine(node)
    assert reader.add(Request("b", prompt, mm_features=image_b)) == 0, "another image loads nothing"
    assert reader.add(Request("e", prompt, prompt_embeds=object())) == 0, "nor do prompt embeddings"
    Engine(node).run(Request("plain", prompt))
    assert Engine(node).add(Request("plain-again", prompt + [1])) > 0, "the same tokens without an image still hit"


@pytest.mark.parametrize("ucx", [True, False])
def test_a_prefix_another_node_holds_is_fetched_when_the_scheduler_names_it(node, ucx):
    """An engine on node B computes a prompt; a scheduler sends its follow-up to an engine on node A,
    naming B in kv_transfer_params (as ScoreNodes' remote_blocks would suggest): A's connector fetches
    the prefix from B (UCX, or GetBlocks when B serves no UCX reads) into A's host tier while vLLM
    waits, then loads it, and the KV is exactly what A would have computed."""
    prompt = tokens(100, seed=7)
    sections = ("index: {capacity: 8192}\nhost: {bytes: 64MiB, slab_bytes: 1MiB}\nssd: {enabled: false}\n"
                f"server: {{{{server}}, ucx: {{enabled: {str(ucx).lower()}}}}}")
    with kvtierd_node(sections) as (remote_name, address):
        b = Engine(remote_name, extra={"kvtier.shm_prefix": SHM_PREFIX})
        assert b.run(Request("b-1", prompt)) == 0
        assert b.workers[0].stats["save_blocks"] == 6
        a = Engine(node, extra={"kvtier.remote_reader": {"timeout_ms": 2000}})
        follow_up = prompt + tokens(40, seed=8)
        # Without the scheduler's word, node A has nothing.
        assert a.run(Request("a-0", tokens(50, seed=9))) == 0
        loaded = a.run(Request("a-1", follow_up, kv_transfer_params={"kvtier_remote_node": address}))
        assert loaded == 6 * BLOCK
        assert a.mismatches == 0, "the fetched KV is exactly what the engine would have computed"
        stats = a.scheduler.stats
        assert stats["remote_fetches"] == 1 and stats["remote_blocks"] == 6 and stats["remote_failures"] == 0
        # Now local: the next request naming B gets its prefix from A itself (B has nothing past it).
        again = prompt + tokens(20, seed=10)
        assert a.run(Request("a-2", again, kv_transfer_params={"kvtier_remote_node": address})) == 6 * BLOCK
        assert a.scheduler.stats["remote_blocks"] == 6
        # A request A holds whole is not fetched at all.
        before = a.scheduler.stats["remote_fetches"]
        assert a.run(Request("a-4", prompt[:97], kv_transfer_params={"kvtier_remote_node": address})) == 6 * BLOCK
        assert a.scheduler.stats["remote_fetches"] == before
        # A node that cannot be reached costs the request only its prefix.
        lost = tokens(64, seed=11)
        assert a.run(Request("a-3", lost, kv_transfer_params={"kvtier_remote_node": f"127.0.0.1:{free_port()}"})) == 0
        assert a.scheduler.stats["remote_failures"] == 1
        a.close()
        b.close()
