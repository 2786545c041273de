"""kvtier as a vLLM offloading spec: vLLM's own OffloadingConnector keeps its scheduling logic (which
blocks to store and when, asynchronous loads, its KV events and metrics) and kvtier is the tier
behind it: the node's shared host arena, with the node's SSD tier under that.

    KVTransferConfig(kv_connector="OffloadingConnector", kv_role="kv_both",
                     kv_connector_extra_config={"spec_name": "KvtierOffloadingSpec",
                                                "spec_module_path": "kvtier.vllm_offloading"})

docs/engines.md says when to pick this and when kvtier.vllm_connector.

Scheduler side (KvtierOffloadingManager, in the scheduler process): vLLM names blocks by its own
chained block hashes (OffloadKey: the hash and the KV-cache group); each becomes a 128-bit kvtier key
in a namespace of the model and its KV layout. lookup() leases a host-resident block at once (so
nothing can evict it before the worker reads it; the leases of blocks vLLM did not load are let go
at the end of the step) and, for a block on the node's SSD, asks the daemon to bring it up and
answers HIT_PENDING until it is there. prepare_load/prepare_store hand the worker arena offsets of
the leased blocks and of fresh reservations; complete_load/complete_store drop the leases and
commit (or abandon) the reservations.

Worker side (KvtierOffloadingWorker, one per rank): a kvtier.KvCopier over vLLM's KV tensors copies
between vLLM's blocks and the arena at those offsets (the arena is mapped in every process of the
node). Stores follow the compute stream; loads complete asynchronously (get_finished).

Limits (each refused with a clear error at start-up): one KV-cache group (no hybrid models), one
vLLM block per offloaded block (no blocks_per_chunk / block_size), one worker (no tensor or
pipeline parallelism: use kvtier.vllm_connector there).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import time
from collections.abc import Collection, Iterable
from typing import Any

import kvtier
from kvtier.vllm_connector import CPU_LAYOUT_TAG, EXTRA_MODEL_ID, EXTRA_SSD_WAIT, _on_cpu_platform, _open_client
from vllm.distributed.kv_transfer.kv_connector.v1.offloading.metrics import OffloadingConnectorStats
from vllm.v1.kv_offload.base import (
    CanonicalKVCaches,
    GPULoadStoreSpec,
    LoadStoreSpec,
    LookupResult,
    Medium,
    OffloadingCounterMetadata,
    OffloadingEvent,
    OffloadingManager,
    OffloadingMetricMetadata,
    OffloadingSpec,
    OffloadingWorker,
    OffloadKey,
    PrepareStoreOutput,
    ReqContext,
    RequestOffloadingContext,
    ScheduleEndContext,
    TransferResult,
    get_offload_group_idx,
)
from vllm.v1.kv_offload.config import OffloadingConfig
from vllm.v1.metrics.cache_hit_source import CacheHitSource

logger = logging.getLogger("kvtier.vllm_offloading")

# The parent recorded for a block whose predecessor this manager never saw (vLLM's local prefix
# cache held it): no block has this key, so the index links it to nothing.
UNKNOWN_PARENT = bytes(kvtier.KEY_BYTES)

# Schedule steps after a reset_cache before the blocks of jobs vLLM dropped are let go: vLLM makes
# its workers wait for those jobs in the next step (and async scheduling builds one step ahead).
RESET_GRACE_STEPS = 3
# Announced blocks take_events looks up again per step (vLLM drains it once a step): bounds the
# scheduler's cost; a block the node dropped is withdrawn within (announced / AUDIT_PER_STEP) steps.
AUDIT_PER_STEP = 64


class KvtierBlocks(LoadStoreSpec):
    """Blocks in the node's host arena, by offset: the same in every process that maps the node."""

    def __init__(self, offsets: list[int]):
        self.offsets = offsets

    def __repr__(self) -> str:
        return f"KvtierBlocks({self.offsets})"


@dataclasses.dataclass
class _SsdWait:
    """A block on the node's SSD tier that a lookup asked the daemon for."""

    key: bytes  # the kvtier key
    deadline: float
    load: kvtier.BlockLoad | None = None  # None until the step's loads are sent
    attempts: int = 1


@dataclasses.dataclass
class _Request:
    """The manager's state of one request."""

    keys: dict[tuple[int, int], bytes] = dataclasses.field(default_factory=dict)  # (group, end token) → key
    pins: dict[OffloadKey, kvtier.HostBlock] = dataclasses.field(default_factory=dict)  # looked up this step
    loading: dict[OffloadKey, kvtier.HostBlock] = dataclasses.field(default_factory=dict)
    storing: dict[OffloadKey, kvtier.Reservation] = dataclasses.field(default_factory=dict)
    ssd: dict[OffloadKey, _SsdWait] = dataclasses.field(default_factory=dict)
    from_ssd: set[OffloadKey] = dataclasses.field(default_factory=set)
    finished: bool = False

    def idle(self) -> bool:
        return not (self.pins or self.loading or self.storing or self.ssd)


def register_namespace(
    client: kvtier.Client, *, model_id: str, dtype: str, layout: str, block_tokens: int, num_layers: int, block_bytes: int
) -> kvtier.Namespace:
    """The namespace the spec files a model's blocks under: a kvtier layout of exactly vLLM's bytes
    per block (kvtier sizes blocks from it), and in the model id what else sets those bytes (vLLM's
    dtype and cache layout), so that other layouts never share a key. Tests and tools call it with
    the engine's figures to find its blocks."""
    for layers in (num_layers, 1):
        if block_bytes % (layers * block_tokens) == 0 and block_bytes // (layers * block_tokens) <= 65536:
            return client.register_namespace(
                model_id=f"{model_id}#vllm-offload#{dtype}#{layout}",
                dtype="int8",
                block_tokens=block_tokens,
                num_layers=layers,
                num_kv_heads=1,
                head_dim=block_bytes // (layers * block_tokens),
                kv_planes=1,
            )
    raise ValueError(
        f"kvtier offloading spec: {block_bytes} bytes per block do not split into {block_tokens} tokens of at "
        "most 64 KiB: use kvtier.vllm_connector"
    )


def block_key(ns: kvtier.Namespace, offload_key: bytes) -> bytes:
    """The kvtier key of a vLLM OffloadKey (vLLM's chained block hash and the KV-cache group)."""
    return hashlib.blake2b(ns.root + offload_key, digest_size=kvtier.KEY_BYTES).digest()


# The manager's counters, which vLLM exports with its own metrics as vllm:kvtier_<name>.
COUNTERS = {
    "lookup_hits": "Blocks vLLM looked up that the node's host tier held",
    "ssd_blocks_requested": "Blocks asked of kvtierd to bring up from the node's SSD tier",
    "load_blocks": "Blocks handed to the worker to load from the node",
    "store_blocks": "Blocks stored in the node",
    "store_existing": "Blocks vLLM offered that some engine had stored already",
    "store_refused": "Blocks not stored: the node's host tier was full of pinned blocks",
    "store_not_admitted": "Blocks not stored: the node's put admission refused them (host.put_admission)",
}
METRIC_PREFIX = "vllm:kvtier_"


class KvtierOffloadingManager(OffloadingManager):
    def __init__(self, spec: KvtierOffloadingSpec):
        self._spec = spec
        self._client = spec.client()
        self._ns = spec.namespace()
        self._tokens_per_block = spec.tokens_per_block[0]
        self._ssd_wait_s = float(spec.extra_config.get(EXTRA_SSD_WAIT, 5.0))
        self._requests: dict[str, _Request] = {}
        self._events: list[OffloadingEvent] | None = [] if spec.kv_events_config.enable_kv_cache_events else None
        # Blocks this engine stored that its event stream announced, with the node's key and the
        # medium announced: take_events looks a slice of them up again for moves and removals.
        self._announced: collections.OrderedDict[OffloadKey, tuple[bytes, Medium]] = collections.OrderedDict()
        # (steps left, leases and reservations of jobs dropped by reset_cache)
        self._retired: list[tuple[int, list[Any]]] = []
        self.stats = dict.fromkeys(COUNTERS, 0)
        self._reported = dict.fromkeys(COUNTERS, 0)  # what get_stats has handed vLLM

    # ---------------------------------------------------------------- keys

    def _state(self, ctx: ReqContext) -> _Request:
        state = self._requests.get(ctx.req_id)
        if state is None:
            state = self._requests[ctx.req_id] = _Request()
        return state

    def _key(self, key: OffloadKey, ctx: ReqContext, state: _Request) -> bytes:
        kv_key = block_key(self._ns, key)
        end = ctx.get_offload_key_position(key)
        if end is not None:
            state.keys[(get_offload_group_idx(key), end)] = kv_key
        return kv_key

    def _parent(self, key: OffloadKey, ctx: ReqContext, state: _Request) -> bytes:
        end = ctx.get_offload_key_position(key)
        if end is None:
            return UNKNOWN_PARENT
        if end <= self._tokens_per_block:
            return self._ns.root
        return state.keys.get((get_offload_group_idx(key), end - self._tokens_per_block), UNKNOWN_PARENT)

    # ---------------------------------------------------------------- lookups and loads

    def on_new_request(self, req_context: ReqContext) -> RequestOffloadingContext:
        self._state(req_context)
        return RequestOffloadingContext()

    def lookup(self, key: OffloadKey, req_context: ReqContext) -> LookupResult:
        state = self._state(req_context)
        if key in state.pins:
            return LookupResult.HIT
        kv_key = self._key(key, req_context, state)
        held = self._client.acquire([kv_key])
        if held:
            state.pins[key] = held[0]  # leased: upkeep cannot take it before the worker reads it
            if state.ssd.pop(key, None) is not None:
                state.from_ssd.add(key)
            self.stats["lookup_hits"] += 1
            return LookupResult.HIT
        return self._lookup_ssd(key, kv_key, state)

    def _lookup_ssd(self, key: OffloadKey, kv_key: bytes, state: _Request) -> LookupResult:
        wait = state.ssd.get(key)
        if wait is None:
            if self._client.match([kv_key]).ssd == 0:
                return LookupResult.MISS
            state.ssd[key] = _SsdWait(key=kv_key, deadline=time.monotonic() + self._ssd_wait_s)
            return LookupResult.HIT_PENDING  # sent with the step's other SSD blocks at on_schedule_end
        if time.monotonic() >= wait.deadline:
            del state.ssd[key]
            return LookupResult.MISS
        if wait.load is None or not wait.load.done():
            return LookupResult.HIT_PENDING
        # Done, but not in host memory: upkeep dropped it again (a host copy of an SSD block is the
        # cheapest to drop), or the daemon could not read it. Ask again, a few times.
        if wait.attempts >= 3 or self._client.match([kv_key]).ssd == 0:
            del state.ssd[key]
            return LookupResult.MISS
        wait.load, wait.attempts = None, wait.attempts + 1
        return LookupResult.HIT_PENDING

    def get_load_source(self, key: OffloadKey, req_context: ReqContext) -> CacheHitSource:
        state = self._requests.get(req_context.req_id)
        return CacheHitSource.DISK if state is not None and key in state.from_ssd else CacheHitSource.HOST

    def prepare_load(self, keys: Collection[OffloadKey], req_context: ReqContext) -> LoadStoreSpec:
        state = self._state(req_context)
        offsets = []
        for key in keys:
            lease = state.pins.pop(key, None)
            if lease is None:  # vLLM loads only what lookup() found, in the same step: leased then
                held = self._client.acquire([self._key(key, req_context, state)])
                if not held:
                    raise RuntimeError(f"kvtier offloading: block {key.hex()} was not leased by lookup()")
                lease = held[0]
            state.loading[key] = lease
            offsets.append(self._client.arena_offset(lease))
        self.stats["load_blocks"] += len(offsets)
        return KvtierBlocks(offsets)

    def complete_load(self, keys: Collection[OffloadKey], req_context: ReqContext) -> None:
        state = self._requests.get(req_context.req_id)
        if state is None:
            return
        for key in keys:
            lease = state.loading.pop(key, None)
            if lease is not None:
                lease.release()
        self._forget_if_done(req_context.req_id, state)

    # ---------------------------------------------------------------- stores

    def prepare_store(self, keys: Collection[OffloadKey], req_context: ReqContext) -> PrepareStoreOutput | None:
        state = self._state(req_context)
        stored, offsets = [], []
        keys = list(keys)
        for i, key in enumerate(keys):
            kv_key = self._key(key, req_context, state)
            try:
                r = self._client.reserve(self._ns, kv_key, self._parent(key, req_context, state))
            except kvtier.Error as e:  # not admitted, or the arena full of pinned blocks: the rest waits
                refused = "store_not_admitted" if getattr(e, "code", "") == "not_admitted" else "store_refused"
                self.stats[refused] += len(keys) - i
                logger.debug("kvtier offloading: store of %s stopped at %d: %s", req_context.req_id, i, e)
                break
            if r.exists:
                self.stats["store_existing"] += 1
                continue
            state.storing[key] = r
            stored.append(key)
            offsets.append(self._client.arena_offset(r))
        return PrepareStoreOutput(keys_to_store=stored, store_spec=KvtierBlocks(offsets), evicted_keys=[])

    def complete_store(self, keys: Collection[OffloadKey], req_context: ReqContext, success: bool = True) -> None:
        state = self._requests.get(req_context.req_id)
        if state is None:
            return
        committed = []
        for key in keys:
            r = state.storing.pop(key, None)
            if r is None:
                continue
            if success:
                r.commit()
                committed.append(key)
                if self._events is not None and key not in self._announced:
                    self._announced[key] = (block_key(self._ns, key), Medium.CPU)
            else:
                r.abandon()
        self.stats["store_blocks"] += len(committed)
        if committed and self._events is not None:
            self._events.append(OffloadingEvent(keys=committed, medium=Medium.CPU, removed=False))
        self._forget_if_done(req_context.req_id, state)

    # ---------------------------------------------------------------- steps and requests

    def on_schedule_end(self, context: ScheduleEndContext) -> None:
        for state in self._requests.values():
            # Leases of blocks vLLM did not load this step: it looks them up again when it next tries.
            for lease in state.pins.values():
                lease.release()
            state.pins.clear()
        self._send_ssd_loads()
        self._age_retired()
        for req_id, state in list(self._requests.items()):
            self._forget_if_done(req_id, state)

    def _send_ssd_loads(self) -> None:
        for req_id, state in self._requests.items():
            waiting = [(key, wait) for key, wait in state.ssd.items() if wait.load is None]
            if not waiting:
                continue
            try:
                load = self._client.load([wait.key for _, wait in waiting])
            except kvtier.Error as e:  # no daemon serves an SSD tier here: these are misses
                logger.debug("kvtier offloading: no SSD load for %s: %s", req_id, e)
                for key, _ in waiting:
                    state.ssd.pop(key, None)
                continue
            self.stats["ssd_blocks_requested"] += len(load)
            for _, wait in waiting:
                wait.load = load

    def has_pending_work(self) -> bool:
        return bool(self._retired) or any(state.ssd for state in self._requests.values())

    def on_request_finished(self, req_context: ReqContext) -> None:
        state = self._requests.get(req_context.req_id)
        if state is None:
            return
        state.finished = True
        for lease in state.pins.values():
            lease.release()
        state.pins.clear()
        state.ssd.clear()
        self._forget_if_done(req_context.req_id, state)

    def _forget_if_done(self, req_id: str, state: _Request) -> None:
        if state.finished and state.idle():
            self._requests.pop(req_id, None)

    def reset_cache(self) -> None:
        # The node's blocks are every engine's: a reset forgets this engine's requests, not the
        # node's cache. vLLM drops the jobs in flight without completing them; their blocks are let
        # go once the workers have waited for them.
        held: list[Any] = []
        for state in self._requests.values():
            held += state.pins.values()
            held += state.loading.values()
            held += state.storing.values()
        self._requests.clear()
        if held:
            self._retired.append((RESET_GRACE_STEPS, held))

    def _age_retired(self) -> None:
        still = []
        for steps, held in self._retired:
            if steps > 1:
                still.append((steps - 1, held))
                continue
            for item in held:
                if isinstance(item, kvtier.Reservation):
                    item.abandon()  # maybe half written when vLLM dropped it: never published
                else:
                    item.release()
        self._retired = still

    def get_stats(self) -> OffloadingConnectorStats | None:
        stats = OffloadingConnectorStats()
        for name, value in self.stats.items():
            if value != self._reported[name]:
                stats.increase_counter(METRIC_PREFIX + name, value - self._reported[name])
                self._reported[name] = value
        return None if stats.is_empty() else stats

    def take_events(self) -> Iterable[OffloadingEvent]:
        if self._events is None:
            return
        self._audit_announced()
        events, self._events = self._events, []
        yield from events

    def _audit_announced(self) -> None:
        """Looks up to AUDIT_PER_STEP announced blocks up again in the node's index (round robin):
        a block the daemon demoted to SSD is stored there and removed from CPU, one it dropped is
        removed; each once, as vLLM's event tracker and consumers count them."""
        for _ in range(min(AUDIT_PER_STEP, len(self._announced))):
            key, (kv_key, medium) = self._announced.popitem(last=False)
            found = self._client.match([kv_key])
            if found.overall == 0:
                self._events.append(OffloadingEvent(keys=[key], medium=medium, removed=True))
                continue
            now = Medium.CPU if found.host else Medium.STORAGE
            if now != medium:  # gain first, then loss
                self._events.append(OffloadingEvent(keys=[key], medium=now, removed=False))
                self._events.append(OffloadingEvent(keys=[key], medium=medium, removed=True))
            self._announced[key] = (kv_key, now)

    def shutdown(self) -> None:
        for state in self._requests.values():
            for lease in list(state.pins.values()) + list(state.loading.values()):
                lease.release()
            for r in state.storing.values():
                r.abandon()
        self._requests.clear()
        self._retired = [(1, held) for _, held in self._retired]
        self._age_retired()


class KvtierOffloadingWorker(OffloadingWorker):
    """Copies between vLLM's KV blocks and arena offsets, one job per kvtier.KvCopy."""

    def __init__(self, client: kvtier.Client, kv_caches: CanonicalKVCaches, block_bytes: int):
        tensors = []
        num_blocks, device = None, None
        for ref in kv_caches.group_data_refs[0]:
            tensor = kv_caches.tensors[ref.tensor_idx].tensor  # (num_blocks, page bytes), int8
            tensor_device = tensor.device.index if tensor.is_cuda else -1
            if tensor.is_cuda and tensor_device is None:
                tensor_device = 0
            if num_blocks is not None and (tensor.shape[0] != num_blocks or tensor_device != device):
                raise ValueError("kvtier offloading: the KV tensors differ in block count or device")
            num_blocks, device = tensor.shape[0], tensor_device
            tensors.append((tensor.data_ptr(), tensor.stride(0) * tensor.element_size(), ref.page_size_bytes))
        if num_blocks is None:
            raise ValueError("kvtier offloading: no KV cache tensors")
        self._cuda = device >= 0
        self._copier = kvtier.KvCopier(tensors, num_blocks, device=device, client=client)
        if self._copier.block_bytes > block_bytes:
            raise ValueError(
                f"kvtier offloading: vLLM's pages take {self._copier.block_bytes} bytes per block, more than the "
                f"{block_bytes} vLLM reported to the scheduler"
            )
        self._block_bytes = self._copier.block_bytes
        self._jobs: dict[int, tuple[kvtier.KvCopy | None, int, float]] = {}
        logger.info(
            "kvtier offloading: %d layers, %d blocks of %d bytes, copies by %s",
            len(tensors),
            num_blocks,
            self._block_bytes,
            self._copier.method,
        )

    def _stream(self) -> int:
        if not self._cuda:
            return 0
        import torch

        return int(torch.cuda.current_stream().cuda_stream)

    def _submit(self, job_id: int, direction: str, gpu: GPULoadStoreSpec, host: LoadStoreSpec) -> bool:
        assert isinstance(host, KvtierBlocks)
        ids = [int(b) for b in gpu.block_ids]
        if len(ids) != len(host.offsets):
            logger.error("kvtier offloading: job %d has %d vLLM blocks for %d arena blocks", job_id, len(ids), len(host.offsets))
            return False
        copy = None
        if ids:
            # A store follows the compute stream (the step that filled the blocks); a load is async:
            # vLLM schedules the request once get_finished reports it.
            copy = self._copier.start(direction, ids, host.offsets, after_stream=self._stream())
        self._jobs[job_id] = (copy, len(ids) * self._block_bytes, time.perf_counter())
        return True

    def submit_store(self, job_id: int, src_spec: GPULoadStoreSpec, dst_spec: LoadStoreSpec) -> bool:
        return self._submit(job_id, "offload", src_spec, dst_spec)

    def submit_load(self, job_id: int, src_spec: LoadStoreSpec, dst_spec: GPULoadStoreSpec) -> bool:
        return self._submit(job_id, "onboard", dst_spec, src_spec)

    def _finish(self, job_id: int) -> TransferResult:
        copy, size, began = self._jobs.pop(job_id)
        success = True
        if copy is not None:
            try:
                copy.wait()
            except kvtier.Error as e:
                logger.error("kvtier offloading: job %d failed: %s", job_id, e)
                success = False
        return TransferResult(job_id=job_id, success=success, transfer_size=size, transfer_time=time.perf_counter() - began)

    def get_finished(self) -> list[TransferResult]:
        return [self._finish(job_id) for job_id, (copy, _, _) in list(self._jobs.items()) if copy is None or copy.done()]

    def wait(self, job_ids: set[int]) -> None:
        for job_id in job_ids:
            copy = self._jobs.get(job_id, (None,))[0]
            if copy is not None:
                copy.wait()  # reported by the next get_finished

    def shutdown(self) -> None:
        for job_id in list(self._jobs):
            self._finish(job_id)


class KvtierOffloadingSpec(OffloadingSpec):
    @classmethod
    def build_metric_definitions(cls, extra_config: dict[str, Any]) -> dict[str, OffloadingMetricMetadata]:
        return {METRIC_PREFIX + name: OffloadingCounterMetadata(documentation=doc) for name, doc in COUNTERS.items()}

    def __init__(self, config: OffloadingConfig):
        super().__init__(config)
        if len(config.groups) != 1:
            raise ValueError(
                f"kvtier offloading spec: the model has {len(config.groups)} KV-cache groups; one is supported"
            )
        if self.blocks_per_chunk != 1:
            raise ValueError("kvtier offloading spec: offload blocks of one vLLM block (drop block_size/blocks_per_chunk)")
        if config.parallel.world_size != 1:
            raise ValueError(
                "kvtier offloading spec: one worker only; with tensor or pipeline parallelism use kvtier.vllm_connector"
            )
        self._client: kvtier.Client | None = None
        self._namespace: kvtier.Namespace | None = None
        self._manager: KvtierOffloadingManager | None = None
        self._worker: KvtierOffloadingWorker | None = None

    def client(self) -> kvtier.Client:
        if self._client is None:  # opened in the process that needs it (scheduler or worker)
            self._client = _open_client(dict(self.extra_config))
        return self._client

    def namespace(self) -> kvtier.Namespace:
        if self._namespace is None:
            config = self.config
            self._namespace = register_namespace(
                self.client(),
                model_id=str(self.extra_config.get(EXTRA_MODEL_ID) or config.model.name),
                dtype=config.model.dtype,
                layout=CPU_LAYOUT_TAG if _on_cpu_platform() else f"kv={config.kv_cache_layout or 'NHD'}",
                block_tokens=config.groups[0].tokens_per_block,
                num_layers=len(config.groups[0].layer_names) or 1,
                block_bytes=config.worker_kv_bytes_per_block,
            )
        return self._namespace

    def get_manager(self) -> OffloadingManager:
        if self._manager is None:
            self._manager = KvtierOffloadingManager(self)
        return self._manager

    def get_worker(self, kv_caches: CanonicalKVCaches) -> OffloadingWorker:
        if self._worker is None:
            self._worker = KvtierOffloadingWorker(self.client(), kv_caches, self.namespace().block_bytes)
        return self._worker
