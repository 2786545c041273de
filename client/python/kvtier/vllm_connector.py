"""kvtier as a vLLM KV connector (KVConnectorBase_V1): vLLM loads prompt prefixes that the node's
host tier holds instead of computing them, and saves the blocks it computes there for every engine
on the node. docs/engines.md shows the --kv-transfer-config that enables it.

Scheduler side (the scheduler process): get_num_new_matched_tokens matches the prompt's keys in the
node's shared-memory index (no RPC); a prefix that goes on on the node's SSD tier is asked of the
daemon first (vLLM asks again in later steps until it is in host memory); the host prefix is then
acquired, so upkeep cannot evict it before the worker takes it, and let go two steps after its
allocation (or at once when vLLM does not allocate the request). update_state_after_alloc notes which
of the request's blocks the prefix goes into; build_connector_meta hands the worker the loads and
the blocks that become complete in this step.

Worker side (one process per GPU rank): register_kv_caches describes vLLM's paged KV tensors to a
kvtier.KvCopier (CUDA, registered host arena; or memcpy for tensors in host memory); start_load_kv
acquires the host blocks (a lease each) and starts one onboard copy per layer; wait_for_layer_load
makes the compute stream wait for that layer's copy; save_kv_layer reserves arena space once per
step and starts each layer's offload behind the compute stream; wait_for_save waits for the copies,
commits the blocks (with their token ids, for vLLM-format events) and drops the leases. A block
evicted between the scheduler's match and the worker's acquire is reported through
get_block_ids_with_load_errors, and vLLM recomputes it.

Keys are kvtier's native chain over the prompt's token ids, in a namespace of the model, its LoRA
adapter, the request's cache_salt and the rank's KV layout: tensor-parallel ranks hold different
heads, so each rank has its own namespace and the scheduler takes the prefix every rank holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import os
import time
from typing import Any

import kvtier
from kvtier.vllm_connector_events import ConnectorEvents
from kvtier.vllm_remote_prefix import RemotePrefixFetcher, remote_node_of

logger = logging.getLogger("kvtier.vllm_connector")

try:  # vLLM present: the real base classes
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (
        KVConnectorBase_V1,
        KVConnectorMetadata,
        KVConnectorRole,
    )
except ImportError:  # without vLLM (tests, tools): the same shape, so the connector stays importable

    class KVConnectorRole(enum.Enum):  # type: ignore[no-redef]
        SCHEDULER = 0
        WORKER = 1

    class KVConnectorMetadata:  # type: ignore[no-redef]
        pass

    class KVConnectorBase_V1:  # type: ignore[no-redef]
        def __init__(self, vllm_config: Any, role: KVConnectorRole, kv_cache_config: Any = None):
            self._connector_metadata: KVConnectorMetadata | None = None
            self._vllm_config = vllm_config
            self._kv_transfer_config = vllm_config.kv_transfer_config
            self._kv_cache_config = kv_cache_config
            self._role = role

        @property
        def role(self) -> KVConnectorRole:
            return self._role

        def bind_connector_metadata(self, connector_metadata: KVConnectorMetadata) -> None:
            self._connector_metadata = connector_metadata

        def clear_connector_metadata(self) -> None:
            self._connector_metadata = None

        def _get_connector_metadata(self) -> KVConnectorMetadata:
            assert self._connector_metadata is not None
            return self._connector_metadata


# kv_connector_extra_config keys (all optional): where the node is, when not in the environment.
EXTRA_NODE_NAME = "kvtier.node_name"  # else KVTIER_NODE_NAME
EXTRA_SHM_PREFIX = "kvtier.shm_prefix"  # else KVTIER_SHM_PREFIX, "kvtier"
EXTRA_CREATE = "kvtier.create_if_missing"  # embedded use without a kvtierd: create the segments
EXTRA_HOST_BYTES = "kvtier.host_bytes"  # with create_if_missing
EXTRA_MODEL_ID = "kvtier.model_id"  # else vLLM's model name (include a revision if weights change)
EXTRA_SAVE = "kvtier.save"  # false: load only (a consumer that never writes)
EXTRA_COPY_METHOD = "kvtier.copy_method"  # "kernel" (default) or "memcpy"
EXTRA_SSD_WAIT = "kvtier.ssd_load_wait_s"  # how long a request waits for its SSD blocks (default 5 s)
EXTRA_REMOTE_WAIT = "kvtier.remote_wait_s"  # how long a request waits for a prefix from another node (default 5 s)
EXTRA_REMOTE_READER = "kvtier.remote_reader"  # kvtier.RemoteReader's keyword options (TLS files, ...)


@dataclasses.dataclass
class _NamespaceArgs:
    """What picks a request's namespace besides the model and rank."""

    adapter_id: str = ""
    cache_salt: str = ""


@dataclasses.dataclass
class _Transfer:
    """Blocks [first_block, first_block + len(block_ids)) of a request's chain, and the vLLM block
    ids they are in. `tokens` covers the chain up to the last of them (the keys need the prefix)."""

    req_id: str
    ns: _NamespaceArgs
    tokens: list[int]
    first_block: int
    block_ids: list[int]


@dataclasses.dataclass
class KvtierConnectorMetadata(KVConnectorMetadata):
    loads: list[_Transfer] = dataclasses.field(default_factory=list)
    saves: list[_Transfer] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Tracked:
    """Scheduler-side state of a running request, for its saves."""

    request: Any
    ns: _NamespaceArgs
    block_ids: list[int]
    saved_blocks: int


def _kv_events_enabled(vllm_config: Any) -> bool:
    """Whether the engine publishes KV events (vLLM's --kv-events-config)."""
    config = getattr(vllm_config, "kv_events_config", None)
    return bool(config is not None and getattr(config, "enable_kv_cache_events", False))


def _extra(vllm_config: Any) -> dict[str, Any]:
    cfg = getattr(vllm_config, "kv_transfer_config", None)
    return dict(getattr(cfg, "kv_connector_extra_config", None) or {})


def _dtype_name(dtype: Any, cache_dtype: str) -> str:
    if cache_dtype and cache_dtype != "auto":
        return {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}.get(cache_dtype, cache_dtype)
    name = str(dtype).replace("torch.", "")
    return {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}.get(name, name)


class _Model:
    """The per-rank KV layout of the served model, from vLLM's configuration."""

    def __init__(self, vllm_config: Any, extra: dict[str, Any]):
        model = vllm_config.model_config
        parallel = vllm_config.parallel_config
        cache = vllm_config.cache_config
        self.model_id = str(extra.get(EXTRA_MODEL_ID) or model.model)
        self.block_tokens = int(cache.block_size)
        self.tp_size = int(getattr(parallel, "tensor_parallel_size", 1) or 1)
        self.num_layers = int(model.get_num_layers(parallel))
        self.mla = bool(getattr(model, "use_mla", False))
        self.num_kv_heads = 1 if self.mla else int(model.get_num_kv_heads(parallel))
        self.head_dim = int(model.get_head_size())
        self.dtype = _dtype_name(model.dtype, str(getattr(cache, "cache_dtype", "auto")))
        self.cpu_layout = _on_cpu_platform()

    def model_id_of_rank(self, rank: int) -> str:
        # Ranks hold different heads: each has its own namespace (MLA's latent is replicated).
        model_id = self.model_id
        if self.tp_size > 1 and not self.mla:
            model_id = f"{model_id}#tp{rank}of{self.tp_size}"
        # vLLM's CPU attention keeps a block head-major ([heads, K|V, tokens, dim]), other bytes than
        # the token-major chunks of the GPU layouts: blocks of the two never share a key.
        if self.cpu_layout:
            model_id = f"{model_id}#{CPU_LAYOUT_TAG}"
        return model_id


# Loads of one request's SSD prefix asked of the daemon at most (within kvtier.ssd_load_wait_s).
SSD_LOAD_ATTEMPTS = 3

# The namespace tag of blocks in the layout of vLLM's CPU attention backend.
CPU_LAYOUT_TAG = "kv=cpu-hkvnd"


def _on_cpu_platform() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except ImportError:
        return False


def _open_client(extra: dict[str, Any]) -> kvtier.Client:
    name = extra.get(EXTRA_NODE_NAME) or os.environ.get("KVTIER_NODE_NAME")
    if not name:
        raise ValueError(
            "kvtier connector: the node is unknown: set KVTIER_NODE_NAME (as kvtierd's node.name) "
            f"or kv_connector_extra_config['{EXTRA_NODE_NAME}']"
        )
    prefix = extra.get(EXTRA_SHM_PREFIX) or os.environ.get("KVTIER_SHM_PREFIX") or "kvtier"
    kwargs: dict[str, Any] = {"shm_prefix": prefix, "engine_id": os.environ.get("KVTIER_ENGINE_ID", "")}
    if extra.get(EXTRA_CREATE):
        kwargs["create_if_missing"] = True
        if extra.get(EXTRA_HOST_BYTES):
            kwargs["host_bytes"] = int(extra[EXTRA_HOST_BYTES])
    return kvtier.Client(name, **kwargs)


def _tensor_chunks(tensor: Any) -> tuple[list[tuple[int, int, int]], int, int]:
    """(tensors for KvCopier, num_blocks, CUDA device or -1) of one layer's KV cache: vLLM's
    FlashAttention layout [2, num_blocks, block, heads, dim], FlashInfer's [num_blocks, 2, block,
    heads, dim], MLA's [num_blocks, block, dim], or the CPU backend's [num_blocks, heads, block,
    2 * dim] (a whole block is one chunk). Works on torch tensors and numpy arrays."""
    if hasattr(tensor, "data_ptr"):  # torch
        shape = tuple(tensor.shape)
        item = tensor.element_size()
        strides = tuple(s * item for s in tensor.stride())
        base = tensor.data_ptr()
        device = tensor.device.index if tensor.is_cuda else -1
        if tensor.is_cuda and device is None:
            device = 0
    else:  # numpy (a cache in host memory)
        shape = tuple(tensor.shape)
        item = tensor.itemsize
        strides = tuple(tensor.strides)
        base = tensor.__array_interface__["data"][0]
        device = -1

    def contiguous_from(dim: int) -> int:
        """Bytes of one chunk made of dims [dim:], which must be laid out densely."""
        size = item
        for d in range(len(shape) - 1, dim - 1, -1):
            if strides[d] != size:
                raise ValueError(f"KV cache tensor of shape {shape} strides {strides}: a block is not contiguous")
            size *= shape[d]
        return size

    if len(shape) == 5 and shape[0] == 2:  # [2, num_blocks, ...]
        chunk = contiguous_from(2)
        return [(base, strides[1], chunk), (base + strides[0], strides[1], chunk)], shape[1], device
    if len(shape) == 5 and shape[1] == 2:  # [num_blocks, 2, ...]
        chunk = contiguous_from(2)
        return [(base, strides[0], chunk), (base + strides[1], strides[0], chunk)], shape[0], device
    if len(shape) in (3, 4):  # MLA [num_blocks, block, dim]; CPU [num_blocks, heads, block, 2 * dim]
        chunk = contiguous_from(1)
        return [(base, strides[0], chunk)], shape[0], device
    raise ValueError(f"unsupported KV cache tensor shape {shape}")


class KvtierConnector(KVConnectorBase_V1):
    def __init__(self, vllm_config: Any, role: KVConnectorRole, kv_cache_config: Any = None):
        if kv_cache_config is None:
            super().__init__(vllm_config, role)  # vLLM before kv_cache_config was passed
        else:
            super().__init__(vllm_config, role, kv_cache_config)
        groups = getattr(kv_cache_config, "kv_cache_groups", None) or ()
        if len(groups) > 1:
            # vLLM turns its hybrid KV-cache manager off for connectors without SupportsHMA, so
            # several groups mean a model that needs it (a hybrid state-space model).
            raise ValueError(
                f"kvtier connector: the model has {len(groups)} KV-cache groups (a hybrid model: sliding window, "
                "Mamba); the connector keys one group of full attention. Serve it without the connector"
            )
        extra = _extra(vllm_config)
        self._model = _Model(vllm_config, extra)
        self._save_enabled = str(extra.get(EXTRA_SAVE, "true")).lower() not in ("0", "false", "no")
        self._copy_method = str(extra.get(EXTRA_COPY_METHOD, "kernel"))
        self._client = _open_client(extra)
        self._namespaces: dict[tuple[int, str, str], kvtier.Namespace] = {}
        # Scheduler side.
        self._ssd_wait_s = float(extra.get(EXTRA_SSD_WAIT, 5.0))
        self._matched: dict[str, tuple[int, int]] = {}  # req_id → (local tokens, hit tokens)
        # req_id → (leases on its matched host prefix, steps built since its allocation)
        self._scheduler_pins: dict[str, tuple[list[kvtier.HostBlock], int]] = {}
        self._allocated: set[str] = set()  # requests given blocks to load into since the last step
        # req_id → (loads in flight, deadline, attempts made)
        self._ssd_loads: dict[str, tuple[list[kvtier.BlockLoad], float, int]] = {}

        self._requests: dict[str, Any] = {}  # req_id → vLLM's Request, until its first step is built
        self._loads: list[_Transfer] = []
        self._loaded_through: dict[str, int] = {}  # req_id → blocks loaded from the node
        self._tracked: dict[str, _Tracked] = {}
        # The engine's own KV-event stream reports the blocks the node holds for it (take_events).
        self._events: ConnectorEvents | None = None
        if role == KVConnectorRole.SCHEDULER and _kv_events_enabled(vllm_config):
            self._events = ConnectorEvents(self._client, self._model.block_tokens, kv_cache_config)
        # Worker side.
        self._rank = self._worker_rank(extra) if role == KVConnectorRole.WORKER else 0
        self._copier: kvtier.KvCopier | None = None
        self._layers: dict[str, int] = {}
        self._tensors_per_layer = 0
        self._cuda = False
        self._layer_loads: list[list[kvtier.KvCopy]] = []
        self._held: list[kvtier.HostBlock] = []
        self._saving: list[tuple[list[Any], list[int]]] | None = None  # per save: reservations, block ids
        self._save_copies: list[kvtier.KvCopy] = []
        self._load_errors: set[int] = set()
        self.stats = {
            "load_blocks": 0,  # worker: blocks copied from the host tier into vLLM's cache
            "load_errors": 0,  # worker: blocks evicted between match and acquire (vLLM recomputed them)
            "save_blocks": 0,  # worker: blocks written to the host tier
            "save_existing": 0,  # worker: blocks another engine had written already
            "save_refused": 0,  # worker: blocks not saved, the arena full of pinned blocks
            "save_not_admitted": 0,  # worker: blocks the node's put admission refused (host.put_admission)
            "ssd_load_requests": 0,  # scheduler: prompts whose cached prefix went on on SSD
            "ssd_blocks_requested": 0,  # scheduler: blocks asked of the daemon
            "load_us": 0,  # worker: time in start_load_kv and the layer waits
            "save_us": 0,  # worker: time in save_kv_layer and wait_for_save
            "unkeyable_requests": 0,  # scheduler: multimodal or prompt-embedding requests, not cached
        }
        # Prefixes a scheduler says another node holds (kv_transfer_params: kvtier_remote_node);
        # its counters join these (remote_fetches, remote_blocks, remote_failures, remote_timeouts).
        self._remote: RemotePrefixFetcher | None = None
        if role == KVConnectorRole.SCHEDULER:
            self._remote = RemotePrefixFetcher(
                self._client, float(extra.get(EXTRA_REMOTE_WAIT, 5.0)), extra.get(EXTRA_REMOTE_READER), self.stats
            )

    # ---------------------------------------------------------------- vLLM's questions to connectors

    @classmethod
    def get_required_kvcache_layout(cls, vllm_config: Any) -> str | None:
        # Host blocks hold each chunk in token-major order; an HND cache would store other bytes
        # under the same keys. The CPU backend has one layout of its own, in its own namespace.
        return None if _on_cpu_platform() else "NHD"

    @classmethod
    def requires_piecewise_for_cudagraph(cls, extra_config: dict[str, Any]) -> bool:
        return True  # layer-by-layer loads and saves run between the graph's pieces

    # ---------------------------------------------------------------- shared

    @staticmethod
    def _worker_rank(extra: dict[str, Any]) -> int:
        if "kvtier.tp_rank" in extra:
            return int(extra["kvtier.tp_rank"])
        try:
            from vllm.distributed.parallel_state import get_tensor_model_parallel_rank

            return int(get_tensor_model_parallel_rank())
        except (ImportError, AssertionError, RuntimeError):
            return 0

    def _namespace(self, rank: int, ns: _NamespaceArgs) -> kvtier.Namespace:
        key = (rank, ns.adapter_id, ns.cache_salt)
        handle = self._namespaces.get(key)
        if handle is None:
            m = self._model
            handle = self._client.register_namespace(
                model_id=m.model_id_of_rank(rank),
                adapter_id=ns.adapter_id,
                cache_salt=ns.cache_salt,
                dtype=m.dtype,
                block_tokens=m.block_tokens,
                num_layers=m.num_layers,
                num_kv_heads=m.num_kv_heads,
                head_dim=m.head_dim,
                kv_planes=1 if m.mla else 2,
            )
            self._namespaces[key] = handle
        return handle

    @staticmethod
    def _namespace_args(request: Any) -> _NamespaceArgs:
        lora = getattr(request, "lora_request", None)
        return _NamespaceArgs(
            adapter_id=str(getattr(lora, "lora_name", "") or ""),
            cache_salt=str(getattr(request, "cache_salt", "") or ""),
        )

    # ---------------------------------------------------------------- scheduler side

    @staticmethod
    def _keyable(request: Any) -> bool:
        """Whether the prompt's token ids say everything its KV depends on (the keys are made of
        them): not so when placeholder tokens stand for an image or audio (multimodal features),
        or when positions hold prompt embeddings. vLLM hashes those inputs into its own block
        hashes; kvtier's chain does not, so such requests neither load nor save."""
        return (
            getattr(request, "prompt_token_ids", None) is not None
            and not getattr(request, "mm_features", None)
            and getattr(request, "prompt_embeds", None) is None
        )

    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int) -> tuple[int | None, bool]:
        if not self._keyable(request):
            self.stats["unkeyable_requests"] += 1
            return 0, False
        tokens = list(request.prompt_token_ids)
        bs = self._model.block_tokens
        usable = (len(tokens) - 1) // bs  # vLLM computes at least the prompt's last token
        if usable * bs <= num_computed_tokens:
            return 0, False
        req_id = request.request_id
        self._requests[req_id] = request  # its salt, adapter and growing token list
        ns = self._namespace_args(request)
        rank_keys = [
            self._client.keys(self._namespace(rank, ns), tokens[: usable * bs])
            for rank in range(1 if self._model.mla else self._model.tp_size)
        ]
        if self._wait_for_ssd(req_id, rank_keys, num_computed_tokens // bs):
            return None, False  # vLLM asks again in a later step; the engine runs other requests meanwhile
        remote = remote_node_of(request) if self._remote is not None else None
        if remote is not None and self._remote.wait(
            req_id, remote, [(self._namespace(rank, ns), keys) for rank, keys in enumerate(rank_keys)]
        ):
            return None, False  # the rest of the prefix is on its way from the node the scheduler named
        # Pin the host prefix now, so the daemon's upkeep (which drops host copies of SSD blocks
        # first, just-loaded ones included) cannot take it before the worker acquires it.
        self._unpin(req_id)
        pins: list[kvtier.HostBlock] = []
        held = usable
        for keys in rank_keys:
            blocks = self._client.acquire(keys)
            pins.extend(blocks)
            held = min(held, len(blocks))
            if held * bs <= num_computed_tokens:
                break
        if held * bs <= num_computed_tokens:
            for block in pins:
                block.release()
            return 0, False
        self._scheduler_pins[req_id] = (pins, 0)
        self._matched[req_id] = (num_computed_tokens, held * bs)
        return held * bs - num_computed_tokens, False

    def _unpin(self, req_id: str) -> None:
        pinned = self._scheduler_pins.pop(req_id, None)
        for block in pinned[0] if pinned else ():
            block.release()

    def _age_scheduler_pins(self, allocated: set[str]) -> None:
        """Called once a step: a request matched but not allocated lets go now (it is matched again
        when vLLM tries it next); an allocated one keeps its pins for two more steps, until its
        worker has acquired the blocks itself (with async scheduling a step is built while the
        previous one runs)."""
        for req_id, (pins, steps) in list(self._scheduler_pins.items()):
            if req_id not in allocated and steps == 0:
                self._unpin(req_id)
            elif steps >= 2:
                self._unpin(req_id)
            else:
                self._scheduler_pins[req_id] = (pins, steps + 1)

    def _wait_for_ssd(self, req_id: str, rank_keys: list[list[bytes]], local_blocks: int) -> bool:
        """Whether the request should wait for its prefix to come up from the node's SSD tier. The
        first call asks the daemon for the SSD-resident part of every rank's cached prefix (past
        what vLLM holds itself); later calls wait until the daemon is done or the deadline passes."""
        pending = self._ssd_loads.get(req_id)
        if pending is not None:
            loads, deadline, attempts = pending
            if time.monotonic() >= deadline:
                del self._ssd_loads[req_id]
                return False
            if not all(load.done() for load in loads):
                return True
            del self._ssd_loads[req_id]
            if attempts >= SSD_LOAD_ATTEMPTS:
                return False
            # Up, unless upkeep dropped some of it again before this poll (the daemon samples its
            # victims, and a host copy of an SSD block is the cheapest to drop): ask again.
            return self._request_ssd_loads(req_id, rank_keys, local_blocks, deadline, attempts + 1)
        return self._request_ssd_loads(req_id, rank_keys, local_blocks, time.monotonic() + self._ssd_wait_s, 1)

    def _request_ssd_loads(
        self, req_id: str, rank_keys: list[list[bytes]], local_blocks: int, deadline: float, attempt: int
    ) -> bool:
        loads = []
        for keys in rank_keys:
            found = self._client.match(keys)
            if found.overall <= max(found.host, local_blocks):
                continue
            try:
                load = self._client.load(keys[: found.overall])
            except kvtier.Error as e:  # no daemon serves an SSD tier (embedded use): host blocks only
                logger.debug("kvtier connector: no SSD load for %s: %s", req_id, e)
                continue
            if len(load):
                loads.append(load)
                self.stats["ssd_blocks_requested"] += len(load)
        if not loads:
            return False
        self.stats["ssd_load_requests"] += 1
        self._ssd_loads[req_id] = (loads, deadline, attempt)
        return True

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int) -> None:
        self._requests[request.request_id] = request
        matched = self._matched.pop(request.request_id, None)
        if num_external_tokens == 0 or matched is None:
            self._unpin(request.request_id)
            return
        self._allocated.add(request.request_id)
        local, _ = matched
        bs = self._model.block_tokens
        block_ids = list(blocks.get_block_ids()[0])
        first, end = local // bs, (local + num_external_tokens) // bs
        self._loaded_through[request.request_id] = end  # blocks the node has: not saved again
        self._note_held(request, self._namespace_args(request), list(request.prompt_token_ids[: end * bs]), first, end)
        self._loads.append(
            _Transfer(
                req_id=request.request_id,
                ns=self._namespace_args(request),
                tokens=list(request.prompt_token_ids[: end * bs]),
                first_block=first,
                block_ids=block_ids[first:end],
            )
        )

    def build_connector_meta(self, scheduler_output: Any) -> KvtierConnectorMetadata:
        meta = KvtierConnectorMetadata(loads=self._loads)
        self._loads = []
        self._age_scheduler_pins(self._allocated)
        self._allocated = set()
        if not self._save_enabled:
            return meta
        scheduled = scheduler_output.num_scheduled_tokens
        for new in scheduler_output.scheduled_new_reqs:
            request = self._request_of(new)
            if not self._keyable(request):
                continue  # its KV depends on more than its token ids
            tracked = _Tracked(
                request=request,
                ns=self._namespace_args(request),
                block_ids=list(new.block_ids[0]),
                saved_blocks=self._loaded_through.pop(new.req_id, 0),
            )
            self._tracked[new.req_id] = tracked
            self._plan_save(meta, new.req_id, tracked, new.num_computed_tokens + scheduled.get(new.req_id, 0))
        for req_id, new_block_ids, computed, resumed in self._cached_requests(scheduler_output.scheduled_cached_reqs):
            tracked = self._tracked.get(req_id)
            if tracked is None:
                continue
            if resumed:  # preempted and rescheduled: vLLM gave it a fresh block table
                tracked.block_ids = []
            if new_block_ids:
                tracked.block_ids.extend(new_block_ids[0])
            self._plan_save(meta, req_id, tracked, computed + scheduled.get(req_id, 0))
        for req_id in getattr(scheduler_output, "finished_req_ids", ()) or ():
            self._tracked.pop(req_id, None)
        return meta

    def request_finished(self, request: Any, block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        self._unpin(request.request_id)
        for state in (self._tracked, self._matched, self._requests, self._ssd_loads, self._loaded_through):
            state.pop(request.request_id, None)
        if self._remote is not None:
            self._remote.forget(request.request_id)
        return False, None  # saves finish inside the step (wait_for_save): vLLM may free the blocks

    def _request_of(self, new: Any) -> Any:
        """The live Request the scheduler showed us (its cache_salt, LoRA and a token list that grows
        with the output); the NewRequestData (prompt only, no salt) if it never did."""
        return self._requests.pop(new.req_id, new)

    @staticmethod
    def _cached_requests(cached: Any):
        """(req_id, new_block_ids, num_computed_tokens, resumed) of vLLM's CachedRequestData, in
        its one-object form (parallel lists) or the older list of per-request objects."""
        if cached is None:
            return
        if hasattr(cached, "req_ids"):
            resumed = set(getattr(cached, "resumed_req_ids", ()) or ())
            flags = getattr(cached, "resumed_from_preemption", None)
            for i, req_id in enumerate(cached.req_ids):
                was_resumed = req_id in resumed or bool(flags[i] if flags else False)
                yield req_id, cached.new_block_ids[i], cached.num_computed_tokens[i], was_resumed
        else:
            for c in cached:
                yield c.req_id, c.new_block_ids, c.num_computed_tokens, bool(getattr(c, "resumed_from_preemption", False))

    def _plan_save(self, meta: KvtierConnectorMetadata, req_id: str, tracked: _Tracked, computed_after: int) -> None:
        tokens = getattr(tracked.request, "all_token_ids", None) or tracked.request.prompt_token_ids
        bs = self._model.block_tokens
        full = min(computed_after, len(tokens)) // bs
        full = min(full, len(tracked.block_ids))
        if full <= tracked.saved_blocks:
            return
        meta.saves.append(
            _Transfer(
                req_id=req_id,
                ns=tracked.ns,
                tokens=list(tokens[: full * bs]),
                first_block=tracked.saved_blocks,
                block_ids=tracked.block_ids[tracked.saved_blocks : full],
            )
        )
        self._note_held(tracked.request, tracked.ns, meta.saves[-1].tokens, tracked.saved_blocks, full)
        tracked.saved_blocks = full

    def _note_held(self, request: Any, ns: _NamespaceArgs, tokens: list[int], first: int, end: int) -> None:
        """Blocks [first, end) of the request go to the node or come from it: once the node holds
        them, the engine's KV-event stream says so (take_events)."""
        if self._events is not None and end > first:
            self._events.note(request, self._client.keys(self._namespace(0, ns), tokens[: end * self._model.block_tokens]), first, end)

    def take_events(self) -> Any:
        """vLLM's connector event hook (scheduler side, once a step): BlockStored / BlockRemoved of the
        blocks the node holds for this engine, by vLLM's block hashes, medium CPU or STORAGE."""
        if self._events is None:
            return ()
        return self._events.take()

    # ---------------------------------------------------------------- worker side

    def register_kv_caches(self, kv_caches: dict[str, Any]) -> None:
        tensors: list[tuple[int, int, int]] = []
        num_blocks, device = None, None
        for index, (name, tensor) in enumerate(kv_caches.items()):
            chunks, blocks, dev = _tensor_chunks(tensor)
            if num_blocks is not None and (blocks != num_blocks or dev != device):
                raise ValueError(f"KV cache layer {name}: {blocks} blocks on device {dev}, others {num_blocks} on {device}")
            num_blocks, device = blocks, dev
            self._layers[name] = index
            self._tensors_per_layer = len(chunks)
            tensors.extend(chunks)
        if num_blocks is None:
            raise ValueError("register_kv_caches: no KV cache tensors")
        self._cuda = device >= 0
        self._copier = kvtier.KvCopier(
            tensors, num_blocks, device=device, client=self._client if self._cuda else None, method=self._copy_method
        )
        expected = self._namespace(self._rank, _NamespaceArgs()).block_bytes
        if self._copier.block_bytes != expected:
            raise ValueError(
                f"kvtier connector: vLLM's KV cache holds {self._copier.block_bytes} bytes per block but the model's "
                f"layout gives {expected}: check the dtype, heads and block size"
            )
        logger.info(
            "kvtier connector: rank %d, %d layers, %d blocks of %d bytes, copies by %s",
            self._rank,
            len(self._layers),
            num_blocks,
            expected,
            self._copier.method,
        )

    @contextlib.contextmanager
    def _timed(self, stat: str):
        """Adds the block's duration to stats[stat], in microseconds."""
        began = time.perf_counter_ns()
        try:
            yield
        finally:
            self.stats[stat] += (time.perf_counter_ns() - began) // 1000

    def _stream(self) -> int:
        if not self._cuda:
            return 0
        import torch

        return int(torch.cuda.current_stream().cuda_stream)

    def start_load_kv(self, forward_context: Any, **kwargs: Any) -> None:
        with self._timed("load_us"):
            self._start_load_kv()

    def _start_load_kv(self) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, KvtierConnectorMetadata) and self._copier is not None
        self._layer_loads = [[] for _ in self._layers]
        ids: list[int] = []
        blocks: list[kvtier.HostBlock] = []
        for load in meta.loads:
            handle = self._namespace(self._rank, load.ns)
            keys = self._client.keys(handle, load.tokens)
            held = self._client.acquire(keys)
            usable = held[load.first_block :]
            for extra_block in held[: load.first_block]:
                extra_block.release()  # the engine has these already; only the chain needed them
            if len(usable) < len(load.block_ids):
                # Evicted since the scheduler matched: vLLM recomputes what did not load.
                missing = load.block_ids[len(usable) :]
                self._load_errors.update(missing)
                self.stats["load_errors"] += len(missing)
            ids.extend(load.block_ids[: len(usable)])
            blocks.extend(usable)
        if not ids:
            return
        self._held = blocks
        tpl = self._tensors_per_layer
        for layer in range(len(self._layers)):
            self._layer_loads[layer].append(
                self._copier.start("onboard", ids, blocks, first=layer * tpl, count=tpl)
            )
        self.stats["load_blocks"] += len(ids)

    def wait_for_layer_load(self, layer_name: str) -> None:
        index = self._layers.get(layer_name)
        if index is None or index >= len(self._layer_loads):
            return
        for copy in self._layer_loads[index]:
            if self._cuda:
                copy.order_before(self._stream())  # the attention kernel waits, the CPU does not
            else:
                copy.wait()

    def save_kv_layer(self, layer_name: str, kv_layer: Any, attn_metadata: Any, **kwargs: Any) -> None:
        with self._timed("save_us"):
            self._save_kv_layer(layer_name)

    def _save_kv_layer(self, layer_name: str) -> None:
        if not self._save_enabled or self._copier is None:
            return
        meta = self._get_connector_metadata()
        if not isinstance(meta, KvtierConnectorMetadata) or not meta.saves:
            return
        if self._saving is None:
            self._saving = self._reserve(meta.saves)
        index = self._layers.get(layer_name)
        if index is None:
            return
        tpl = self._tensors_per_layer
        stream = self._stream()
        for reservations, ids in self._saving:
            if ids:
                self._save_copies.append(
                    self._copier.start(
                        "offload", ids, reservations, first=index * tpl, count=tpl, after_stream=stream
                    )
                )

    def _reserve(self, saves: list[_Transfer]) -> list[tuple[list[Any], list[int]]]:
        out = []
        bs = self._model.block_tokens
        for save in saves:
            handle = self._namespace(self._rank, save.ns)
            keys = self._client.keys(handle, save.tokens)
            reservations, ids = [], []
            for offset, block_id in enumerate(save.block_ids):
                i = save.first_block + offset
                parent = keys[i - 1] if i > 0 else handle.root
                try:
                    r = self._client.reserve(handle, keys[i], parent, save.tokens[i * bs : (i + 1) * bs])
                except kvtier.Error as e:  # not admitted, or the arena full of pinned blocks: the rest waits
                    refused = "save_not_admitted" if getattr(e, "code", "") == "not_admitted" else "save_refused"
                    self.stats[refused] += len(save.block_ids) - offset
                    logger.debug("kvtier connector: save of %s stopped at block %d: %s", save.req_id, i, e)
                    break
                if r.exists:
                    self.stats["save_existing"] += 1
                    continue
                reservations.append(r)
                ids.append(block_id)
            out.append((reservations, ids))
        return out

    def wait_for_save(self) -> None:
        with self._timed("save_us"):
            self._wait_for_save()

    def _wait_for_save(self) -> None:
        errors = []
        for copy in self._save_copies:
            try:
                copy.wait()
            except kvtier.Error as e:
                errors.append(e)
        self._save_copies = []
        for reservations, _ in self._saving or ():
            for r in reservations:
                if errors:
                    r.abandon()  # a failed copy: publish nothing of this step
                else:
                    r.commit()
                    self.stats["save_blocks"] += 1
        self._saving = None
        self._finish_loads()
        if errors:
            logger.warning("kvtier connector: %d save copies failed: %s", len(errors), errors[0])

    def _finish_loads(self) -> None:
        for copies in self._layer_loads:
            for copy in copies:
                copy.wait()
        self._layer_loads = []
        for block in self._held:
            block.release()
        self._held = []

    def clear_connector_metadata(self) -> None:
        # A step without saves still holds its load leases until here.
        if self._layer_loads or self._held:
            self._finish_loads()
        super().clear_connector_metadata()

    def get_finished(self, finished_req_ids: set[str]) -> tuple[set[str] | None, set[str] | None]:
        return None, None  # loads and saves complete within the step

    def get_block_ids_with_load_errors(self) -> set[int]:
        errors, self._load_errors = self._load_errors, set()
        return errors

    def shutdown(self) -> None:
        for req_id in list(self._scheduler_pins):
            self._unpin(req_id)
        if self._remote is not None:
            self._remote.shutdown()
        if self._saving is not None or self._save_copies:
            self._wait_for_save()
        self._finish_loads()
