"""The kvtier connector's part of the engine's own KV-event stream (vLLM's connector hook
`take_events`, scheduler side): the blocks the node holds for this engine, by vLLM's own block
hashes, with the CPU medium while they are in the node's host memory and STORAGE once only its SSD
has them, so a consumer of the engine's stream (llm-d, Dynamo, kvtier-indexer's vLLM follower)
sees the engine's CPU tier as it sees vLLM's own CPU offloading.

- A block is announced once the node holds it: the connector notes the blocks it plans to save and
  the ones it loads; each call of `take` looks the noted ones up in the node's index (shared memory,
  no RPC) and announces those there (a planned save the node never got is dropped after a few calls).
- Each announcement is withdrawn once: every call looks up a bounded slice of the announced blocks
  (round robin) and sends BlockRemoved for those the node no longer holds, or moves them between
  CPU and STORAGE. Consumers may reference-count repeated stores of a hash, so nothing is sent twice.

Checked against vLLM 0.32.0 (`distributed/kv_events.py`, the scheduler's call of the connector's
`take_events` in `v1/core/sched/scheduler.py`, `v1/core/kv_cache_utils.py`)."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import kvtier

# Announced blocks looked up per call (one call per engine step): bounds the scheduler's cost; a
# block the node dropped is withdrawn within (announced / AUDIT_PER_CALL) steps.
AUDIT_PER_CALL = 64
# Calls a noted block is looked for before it counts as never stored (a refused save).
NOTED_CALLS = 4

MEDIUM_CPU = "CPU"
MEDIUM_STORAGE = "STORAGE"


@dataclasses.dataclass
class _Block:
    key: bytes  # the node's key of the block (rank 0's namespace)
    block_hash: Any  # vLLM's, in its event form
    parent_hash: Any  # the previous block's, or None for a chain's first
    token_ids: list[int]
    lora_id: int | None
    lora_name: str | None
    extra_keys: tuple[Any, ...] | None
    medium: str | None = None  # as announced; None until then


class ConnectorEvents:
    def __init__(self, client: kvtier.Client, block_tokens: int, kv_cache_config: Any):
        from vllm.v1.kv_cache_interface import get_kv_cache_spec_kind

        self._client = client
        self._block_tokens = block_tokens
        groups = getattr(kv_cache_config, "kv_cache_groups", None) or ()
        self._spec_kind = get_kv_cache_spec_kind(groups[0].kv_cache_spec).value if groups else None
        self._noted: list[tuple[list[_Block], int]] = []  # (consecutive blocks of a chain, calls left)
        self._noted_keys: set[bytes] = set()
        self._announced: collections.OrderedDict[bytes, _Block] = collections.OrderedDict()

    def note(self, request: Any, keys: list[bytes], first: int, end: int) -> None:
        """Blocks [first, end) of the request's chain, whose node keys are keys[first:end], are
        being saved to the node or loaded from it."""
        from vllm.v1.core.kv_cache_utils import generate_block_hash_extra_keys, maybe_convert_block_hash

        hashes = getattr(request, "block_hashes", None)
        tokens = getattr(request, "all_token_ids", None) or getattr(request, "prompt_token_ids", None)
        if not hashes or tokens is None or len(hashes) < end or len(keys) < end:
            return  # not the live Request (no vLLM hashes to name the blocks by)
        lora = getattr(request, "lora_request", None)
        bs = self._block_tokens
        run: list[_Block] = []
        for i in range(first, end):
            if keys[i] in self._announced or keys[i] in self._noted_keys:
                if run:
                    self._noted.append((run, NOTED_CALLS))
                    run = []
                continue
            # vLLM's own extra keys of the block (LoRA name, the salt on a first block), untagged
            # as its events carry them; connector requests have no multimodal inputs.
            extra, _ = generate_block_hash_extra_keys(request, i * bs, (i + 1) * bs, 0)
            run.append(
                _Block(
                    key=keys[i],
                    block_hash=maybe_convert_block_hash(hashes[i]),
                    parent_hash=maybe_convert_block_hash(hashes[i - 1]) if i > 0 else None,
                    token_ids=list(tokens[i * bs : (i + 1) * bs]),
                    lora_id=getattr(lora, "adapter_id", None) if lora is not None else None,
                    lora_name=getattr(lora, "name", None) if lora is not None else None,
                    extra_keys=extra,
                )
            )
            self._noted_keys.add(keys[i])
        if run:
            self._noted.append((run, NOTED_CALLS))

    def take(self) -> list[Any]:
        """The events since the last call: announcements of noted blocks the node now holds, then
        what the look-ups of announced blocks found changed."""
        out: list[Any] = []
        self._announce_noted(out)
        self._audit(out)
        return out

    # ------------------------------------------------------------------------------------------

    def _stored(self, blocks: list[_Block], medium: str) -> Any:
        from vllm.distributed.kv_events import BlockStored
        from vllm.v1.core.kv_cache_utils import to_event_extra_keys

        extra = [b.extra_keys for b in blocks]
        return BlockStored(
            block_hashes=[b.block_hash for b in blocks],
            parent_block_hash=blocks[0].parent_hash,
            token_ids=[t for b in blocks for t in b.token_ids],
            block_size=self._block_tokens,
            lora_id=blocks[0].lora_id,
            medium=medium,
            lora_name=blocks[0].lora_name,
            extra_keys=to_event_extra_keys(extra),
            group_idx=0,
            kv_cache_spec_kind=self._spec_kind,
            locality="LOCAL",
        )

    @staticmethod
    def _removed(blocks: list[_Block], medium: str) -> Any:
        from vllm.distributed.kv_events import BlockRemoved

        return BlockRemoved(block_hashes=[b.block_hash for b in blocks], medium=medium, group_idx=0, locality="LOCAL")

    def _announce_noted(self, out: list[Any]) -> None:
        still: list[tuple[list[_Block], int]] = []
        for blocks, calls in self._noted:
            found = self._client.match([b.key for b in blocks])
            held = blocks[: found.overall]
            # One BlockStored per medium run, parents first: the host prefix, then what only SSD has.
            for part, medium in ((held[: found.host], MEDIUM_CPU), (held[found.host :], MEDIUM_STORAGE)):
                if part:
                    out.append(self._stored(part, medium))
                for b in part:
                    b.medium = medium
                    self._announced[b.key] = b
                    self._noted_keys.discard(b.key)
            rest = blocks[found.overall :]
            if rest and calls > 1:
                still.append((rest, calls - 1))
            else:
                for b in rest:
                    self._noted_keys.discard(b.key)
        self._noted = still

    def _audit(self, out: list[Any]) -> None:
        for _ in range(min(AUDIT_PER_CALL, len(self._announced))):
            key, block = self._announced.popitem(last=False)
            found = self._client.match([key])
            if found.overall == 0:
                out.append(self._removed([block], block.medium))
                continue
            medium = MEDIUM_CPU if found.host else MEDIUM_STORAGE
            if medium != block.medium:  # demoted to SSD, or promoted back: gain first, then loss
                out.append(self._stored([block], medium))
                out.append(self._removed([block], block.medium))
                block.medium = medium
            self._announced[key] = block  # back of the round
